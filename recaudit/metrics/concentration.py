"""Concentration of item exposure (Deldjoo 2024): Gini, HHI, Shannon entropy, coverage, recency.

The input is an *exposure vector*: how often each catalogue item was recommended, over all
users' lists, one entry per catalogue item (zeros for items never recommended). The exposure
share of item i is s_i = e_i / Σ e.

- Gini coefficient of exposure (↓): the standard G = Σ_i (2i − n − 1) e_(i) / (n Σ e) over the
  n items sorted ascending. Whether never-recommended catalogue items take part is an explicit
  choice (``include_unexposed``): with them, a recommender that shows 10 of 1,682 items scores
  near 1, without them near 0. Deldjoo's numbers (TopPop 0.995) include them. Upper bound
  (n − 1) / n, reached when all exposure is on one item.
- HHI = Σ s_i² (↓): 1/n for uniform exposure, 1 for all on one item.
- Shannon entropy H = −Σ s_i ln s_i (↑, natural log, as the published numbers): ln n for uniform.
- Coverage: the fraction of catalogue items recommended at least once.
- Recency: median and standard deviation (ddof=0) of the release years of recommended items,
  each recommendation counted once (exposure-weighted).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np


def exposure_matrix(item_lists: Sequence[Sequence[str]], item_ids: Sequence[str]) -> np.ndarray:
    """Per-list exposure counts over ``item_ids``, shape (n_lists, n_items); unknown ids are an error."""
    index = {item: j for j, item in enumerate(item_ids)}
    out = np.zeros((len(item_lists), len(index)), dtype=float)
    for r, items in enumerate(item_lists):
        for item in items:
            j = index.get(item)
            if j is None:
                raise ValueError(f"recommended item {item!r} is not in the catalogue given to exposure_matrix")
            out[r, j] += 1.0
    return out


def _exposure(values: Sequence[float] | np.ndarray, include_unexposed: bool) -> np.ndarray:
    e = np.asarray(values, dtype=float).ravel()
    if np.any(e < 0):
        raise ValueError("exposure counts must be non-negative")
    return e if include_unexposed else e[e > 0]


def gini(exposure: Sequence[float] | np.ndarray, *, include_unexposed: bool) -> float:
    """Gini coefficient of item exposure; NaN when nothing was exposed."""
    e = np.sort(_exposure(exposure, include_unexposed))
    n, total = e.size, e.sum()
    if n == 0 or total <= 0:
        return float("nan")
    ranks = np.arange(1, n + 1)
    return float(np.sum((2 * ranks - n - 1) * e) / (n * total))


def shares(exposure: Sequence[float] | np.ndarray) -> np.ndarray:
    """Exposure shares s_i = e_i / Σ e (NaN when nothing was exposed)."""
    e = _exposure(exposure, include_unexposed=True)
    total = e.sum()
    return e / total if total > 0 else np.full(e.shape, np.nan)


def hhi(exposure: Sequence[float] | np.ndarray) -> float:
    """Herfindahl–Hirschman index Σ s_i² of exposure shares."""
    return float(np.sum(shares(exposure) ** 2))


def entropy(exposure: Sequence[float] | np.ndarray) -> float:
    """Shannon entropy −Σ s_i ln s_i of exposure shares (natural log; 0·ln 0 = 0)."""
    s = shares(exposure)
    if np.isnan(s).any():
        return float("nan")
    s = s[s > 0]
    return float(-np.sum(s * np.log(s)))


def coverage(exposure: Sequence[float] | np.ndarray) -> float:
    """Fraction of catalogue items with non-zero exposure (the vector must span the catalogue)."""
    e = _exposure(exposure, include_unexposed=True)
    return float(np.mean(e > 0)) if e.size else float("nan")


def lorenz_curve(
    exposure: Sequence[float] | np.ndarray, *, include_unexposed: bool, n_points: int | None = 101
) -> tuple[np.ndarray, np.ndarray]:
    """Lorenz curve: x = cumulative share of items (least exposed first), y = cumulative share of exposure.

    Starts at (0, 0), ends at (1, 1); ``n_points`` resamples it on an even x grid (None: every item).
    """
    e = np.sort(_exposure(exposure, include_unexposed))
    if e.size == 0 or e.sum() <= 0:
        return np.array([0.0, 1.0]), np.array([float("nan"), float("nan")])
    x = np.arange(e.size + 1) / e.size
    y = np.r_[0.0, np.cumsum(e) / e.sum()]
    if n_points is None:
        return x, y
    grid = np.linspace(0.0, 1.0, n_points)
    return grid, np.interp(grid, x, y)


@dataclass(frozen=True)
class RecencyStats:
    """Release-year summary of recommended items (exposure-weighted)."""

    median_year: float
    std_year: float
    n: int


def recency_stats(years: Iterable[int | float | None]) -> RecencyStats:
    """Median and population std of release years; items without a year are skipped."""
    y = np.asarray([float(v) for v in years if v is not None and np.isfinite(v)], dtype=float)
    if y.size == 0:
        return RecencyStats(float("nan"), float("nan"), 0)
    return RecencyStats(float(np.median(y)), float(np.std(y)), int(y.size))


def recency_from_exposure(exposure: Sequence[float] | np.ndarray, years: Sequence[float | None]) -> RecencyStats:
    """``recency_stats`` of an exposure vector: item i's year counted e_i times (integer counts)."""
    e = np.asarray(exposure, dtype=float).ravel()
    y = np.asarray([np.nan if v is None else float(v) for v in years], dtype=float)
    if e.shape != y.shape:
        raise ValueError(f"exposure has {e.size} items but years has {y.size}")
    keep = np.isfinite(y) & (e > 0)
    return recency_stats(np.repeat(y[keep], np.rint(e[keep]).astype(int)).tolist())


def item_years(item_lists: Sequence[Sequence[str]], year_of: Mapping[str, int | None]) -> list[list[int | None]]:
    """Release year of every recommended item, per list (None where unknown)."""
    return [[year_of.get(i) for i in items] for items in item_lists]
