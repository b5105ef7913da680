"""Distances between category distributions, and the gap between group means (for U-NDCG / U-MRR).

Used by the implicit-name probe (Xu et al., arXiv 2311.07054): the categories recommended to two
name groups are compared as distributions (Jensen–Shannon divergence, total variation), and the
gap in ranking quality between groups is U-NDCG@K / U-MRR@K = the absolute difference of the
groups' mean NDCG@K / MRR@K (for more than two groups: max − min of the group means); the
per-user NDCG@K / MRR@K themselves are in ``recaudit.metrics.ranking``.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable, Hashable, Mapping, Sequence

import numpy as np


def category_distribution(labels: Sequence[Hashable], categories: Sequence[Hashable]) -> np.ndarray:
    """Share of each category (in ``categories`` order) among ``labels``; labels outside are ignored."""
    index = {c: i for i, c in enumerate(categories)}
    counts = np.zeros(len(categories), dtype=float)
    for lab in labels:
        i = index.get(lab)
        if i is not None:
            counts[i] += 1
    total = counts.sum()
    return counts / total if total > 0 else counts


def _as_distributions(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p, q = np.asarray(p, dtype=float), np.asarray(q, dtype=float)
    if p.shape != q.shape or p.ndim != 1:
        raise ValueError(f"p and q must be 1-d of equal length, got shapes {p.shape} and {q.shape}")
    if (p < 0).any() or (q < 0).any():
        raise ValueError("p and q must be non-negative")
    sp, sq = p.sum(), q.sum()
    if sp <= 0 or sq <= 0:
        raise ValueError("p and q must each have positive mass")
    return p / sp, q / sq


def js_divergence(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray, base: float = 2.0) -> float:
    """Jensen–Shannon divergence (not its square root); in [0, 1] for base 2. Inputs are renormalised."""
    p, q = _as_distributions(p, q)
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / b[mask])))

    return max(0.0, (kl(p, m) + kl(q, m)) / 2 / np.log(base))


def total_variation(p: Sequence[float] | np.ndarray, q: Sequence[float] | np.ndarray) -> float:
    """Total variation distance ½·Σ|p − q|, in [0, 1]. Inputs are renormalised."""
    p, q = _as_distributions(p, q)
    return float(0.5 * np.abs(p - q).sum())


DISTANCES: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "js": js_divergence,
    "tv": total_variation,
}


def max_pairwise_distance(
    distributions: Mapping[Hashable, np.ndarray], distance: str = "js"
) -> tuple[float, tuple[Hashable, Hashable] | None]:
    """Largest distance between any two groups' distributions, and the pair that attains it."""
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {sorted(DISTANCES)}, got {distance!r}")
    fn = DISTANCES[distance]
    best, pair = 0.0, None
    for a, b in combinations(distributions, 2):
        d = fn(distributions[a], distributions[b])
        if pair is None or d > best:
            best, pair = d, (a, b)
    return best, pair


def group_gap(values: Sequence[float] | np.ndarray, groups: Sequence[Hashable] | np.ndarray) -> float:
    """max − min of the per-group means (= |mean_A − mean_B| for two groups): U-NDCG, U-MRR."""
    values, groups = np.asarray(values, dtype=float), np.asarray(groups)
    if values.shape[0] != groups.shape[0]:
        raise ValueError(f"values and groups differ in length ({values.shape[0]} vs {groups.shape[0]})")
    means = [values[groups == g].mean() for g in np.unique(groups)]
    if len(means) < 2:
        return float("nan")
    return float(max(means) - min(means))
