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


# --- row-wise statistics, intervals and tests for pooled exposure ------------------------------
#
# The pooled statistics are functions of the summed exposure of n users, and they depend on n
# itself (coverage and entropy grow, Gini and HHI fall as more users are pooled). So the
# estimand is named: θ_n = E[T(n users' pooled lists)], the value this recommender gives at the
# audit's sample size. Resampling users with replacement does not estimate its spread: a
# bootstrap sample of n users holds only ~0.63 n distinct ones, so its coverage/entropy sit below
# T and its Gini/HHI above (the CIs missed their own estimate in 60 of 60 cells). The delete-one
# jackknife never duplicates a user; its variance of a symmetric statistic of iid users is
# conservative in expectation (Efron & Stein 1981) and consistent for smooth ones, and T is
# centred on θ_n, so T ± t_{n−1} · SE_jack targets θ_n directly (no bias correction: the bias of
# T against the infinite-population value is part of θ_n, not an error). Coverage of this
# interval was checked by simulation (tests/test_validity_itemfair.py,
# benchmarks/validity_itemfair.py). Bounds are clipped to the statistic's range.

STAT_NAMES = ("gini", "hhi", "entropy", "coverage")


def row_stats(totals: np.ndarray, stat: str, *, include_unexposed: bool = True) -> np.ndarray:
    """``stat`` (gini/hhi/entropy/coverage) of every row of pooled exposure counts, vectorised."""
    e = np.asarray(totals, dtype=float)
    if e.ndim == 1:
        e = e[None, :]
    n_items = e.shape[1]
    tot = e.sum(axis=1)
    safe = np.where(tot > 0, tot, 1.0)
    if stat == "coverage":
        return np.where(n_items > 0, np.mean(e > 0, axis=1), np.nan)
    if stat == "hhi":
        return np.where(tot > 0, np.sum((e / safe[:, None]) ** 2, axis=1), np.nan)
    if stat == "entropy":
        s = e / safe[:, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            h = -np.sum(np.where(s > 0, s * np.log(np.where(s > 0, s, 1.0)), 0.0), axis=1)
        return np.where(tot > 0, h, np.nan)
    if stat == "gini":
        srt = np.sort(e, axis=1)
        w = 2 * np.arange(1, n_items + 1) - n_items - 1
        num = srt @ w
        if include_unexposed:
            return np.where(tot > 0, num / (n_items * safe), np.nan)
        zeros = np.sum(e <= 0, axis=1)
        n_pos = n_items - zeros
        # dropping the m leading zeros shifts every rank by m: Σ(2(i−m) − n' − 1)e = num − m·Σe
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((tot > 0) & (n_pos > 0), (num - zeros * tot) / (np.maximum(n_pos, 1) * safe), np.nan)
    raise ValueError(f"unknown statistic {stat!r}; one of {STAT_NAMES}")


def stat_range(stat: str, n_items: int, *, include_unexposed: bool = True) -> tuple[float, float]:
    """The range a statistic can take over ``n_items`` items (interval bounds are clipped to it)."""
    if stat == "entropy":
        return 0.0, float(np.log(max(n_items, 1)))
    if stat == "gini":
        return 0.0, (n_items - 1) / n_items if n_items else 1.0
    return 0.0, 1.0


# Why delete-d for Gini and coverage: the delete-one jackknife-t covered θ_n 94-96% at 10 users but
# 97.8% at 40 for these two (validity_itemfair.json). They are not smooth in the users' lists: coverage
# counts items shown at all, Gini ranks them, and removing one user moves only the items that user
# alone showed, so the delete-one variance is dominated by the Efron-Stein upward bias of the
# interactions between users, which grows with n. Deleting d users (Shao & Wu 1989: the delete-d
# jackknife is consistent for non-smooth statistics when d/n stays fixed) sees those overlaps; with
# d = n/10 (d = 1, the ordinary jackknife, up to 14 users) their coverage is 0.945-0.965 at 40 users.
# HHI and entropy are smooth functions of the exposure shares, where delete-one is the consistent
# choice (entropy 0.95-0.97 at 10 and 40 users; HHI 0.94 at 10, 0.92-0.94 at 40 over two studies, the
# one cell at the edge: its skew, not d, a log-scale interval gave 0.93) and delete-d was no better for
# HHI (0.92 at 40): they keep d = 1. The t quantile keeps
# n − 1 df. A seeded Monte Carlo draw of ``DELETE_D_SUBSETS`` subsets is used when C(n, d) is larger.
# The bootstrap of users is not used at all: resampled users duplicate whole lists, and pooled
# statistics depend on how many distinct users are drawn.
NON_SMOOTH = frozenset({"gini", "coverage"})
DELETE_D_FRACTION = 0.1
DELETE_D_SUBSETS = 500


@dataclass(frozen=True)
class JackknifeInterval:
    """A point estimate, its delete-d jackknife SE and the t-interval for θ_n (clipped to the range)."""

    value: float
    se: float
    low: float
    high: float
    level: float
    n: int
    method: str = "jackknife-t"


def delete_d(n: int, stat: str = "gini") -> int:
    """Users deleted per jackknife subset at n users: round(n/10), at least 1, for Gini and coverage; 1 otherwise."""
    return max(1, int(round(n * DELETE_D_FRACTION))) if stat in NON_SMOOTH else 1


def jackknife_method(n: int, stat: str) -> str:
    """The ``ci_method`` name of the jackknife interval of ``stat`` at n users."""
    d = delete_d(n, stat)
    return "jackknife-t" if d == 1 else f"delete-{d}-jackknife-t"


def delete_d_keep(n: int, stat: str = "gini", seed: int = 0) -> tuple[np.ndarray, int]:
    """(keep, d): a 0/1 matrix whose rows keep all users but d (every subset, or DELETE_D_SUBSETS drawn)."""
    import math
    from itertools import combinations

    d = delete_d(n, stat)
    if math.comb(n, d) <= DELETE_D_SUBSETS:
        drop = np.array(list(combinations(range(n), d)), dtype=int).reshape(-1, d)
    else:
        rng = np.random.default_rng([seed, n, d])
        drop = np.argsort(rng.random((DELETE_D_SUBSETS, n)), axis=1)[:, :d]
    keep = np.ones((drop.shape[0], n))
    np.put_along_axis(keep, drop, 0.0, axis=1)
    return keep, d


def _t_interval(value: float, deleted: np.ndarray, d: int, n: int, level: float, lo: float, hi: float) -> JackknifeInterval:
    from scipy.stats import t as student_t

    method = "jackknife-t" if d == 1 else f"delete-{d}-jackknife-t"
    if n < 2 or not np.isfinite(value) or not np.all(np.isfinite(deleted)):
        return JackknifeInterval(value, float("nan"), float("nan"), float("nan"), level, n, method)
    # delete-d variance: (n − d)/d × the mean squared deviation of the subset statistics (d = 1: (n−1)/n Σ)
    se = float(np.sqrt((n - d) / d * np.mean((deleted - deleted.mean()) ** 2)))
    half = float(student_t.ppf(0.5 + level / 2, n - 1)) * se
    return JackknifeInterval(value, se, float(np.clip(value - half, lo, hi)), float(np.clip(value + half, lo, hi)),
                             level, n, method)


def jackknife_interval(mat: np.ndarray, stat: str, level: float = 0.95, *, include_unexposed: bool = True) -> JackknifeInterval:
    """Delete-d jackknife t-interval of ``stat`` of the pooled exposure of the rows (users) of ``mat``."""
    mat = np.asarray(mat, dtype=float)
    value = float(row_stats(mat.sum(axis=0), stat, include_unexposed=include_unexposed)[0])
    keep, d = delete_d_keep(mat.shape[0], stat)
    deleted = row_stats(keep @ mat, stat, include_unexposed=include_unexposed)
    lo, hi = stat_range(stat, mat.shape[1], include_unexposed=include_unexposed)
    return _t_interval(value, deleted, d, mat.shape[0], level, lo, hi)


def jackknife_change(a: np.ndarray, b: np.ndarray, stat: str, level: float = 0.95, *, include_unexposed: bool = True) -> JackknifeInterval:
    """Delete-d jackknife t-interval of T(b) − T(a) for paired rows (the same users under two conditions)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    f = lambda m: row_stats(m, stat, include_unexposed=include_unexposed)  # noqa: E731
    value = float(f(b.sum(axis=0))[0] - f(a.sum(axis=0))[0])
    keep, d = delete_d_keep(a.shape[0], stat)  # the same users deleted from both conditions: paired
    deleted = f(keep @ b) - f(keep @ a)
    _, hi = stat_range(stat, a.shape[1], include_unexposed=include_unexposed)
    return _t_interval(value, deleted, d, a.shape[0], level, -hi, hi)


@dataclass(frozen=True)
class SwapTest:
    """Two-sided paired label-swap test of T(b) − T(a) = 0 over users."""

    observed: float
    p_value: float
    null_sd: float
    n_users: int
    n_flips: int
    exact: bool


def swap_test(a: np.ndarray, b: np.ndarray, stat: str, n_permutations: int = 2000, seed: int = 0, *,
              include_unexposed: bool = True) -> SwapTest:  # fmt: skip
    """Swap each user's two lists (role/strategy labels) at random; p of |ΔT| under the null of no change.

    Under the null the condition does not change a user's list distribution, so each user's pair is
    exchangeable; all 2^n swaps are enumerated when they fit in ``n_permutations``."""
    from recaudit.metrics.group import sign_flips

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n = a.shape[0]
    f = lambda m: row_stats(m, stat, include_unexposed=include_unexposed)  # noqa: E731
    observed = float(f(b.sum(axis=0))[0] - f(a.sum(axis=0))[0])
    flips, exact = sign_flips(n, n_permutations, seed)
    keep = 1.0 - flips
    null = f(keep @ b + flips @ a) - f(keep @ a + flips @ b)
    add = 0 if exact else 1
    p = (np.sum(np.abs(null) >= abs(observed) - 1e-12) + add) / (null.size + add)
    return SwapTest(observed, float(min(p, 1.0)), float(np.std(null)), n, int(flips.shape[0]), exact)


# Simulated power of the two-sided Gini-change swap test (α 0.05, 20 seeds, benchmarks/validity_itemfair.py):
# a role-blind popularity sampler whose second role swaps 20% of its titles to the 20 most popular items.
# A 20% swap into the top popularity fifth (120 of 600 items) moves Gini far less: 0.10 at 10 users, 0.55 at 40.
GINI_CHANGE_POWER: dict[int, float] = {10: 0.50, 20: 0.65, 30: 0.90, 40: 1.00}
GINI_CHANGE_POWER_N = 40  # the fewest simulated users with power ≥ 0.95


def planted_power_note(stat: str, n: int) -> str:
    """The simulated power of the Gini-change test at n users, for its power note ('' for other statistics)."""
    if stat != "gini":
        return ""
    near = max((m for m in GINI_CHANGE_POWER if m <= n), default=min(GINI_CHANGE_POWER))
    return (f" (simulated power at a 20% swap to the 20 most popular items: {GINI_CHANGE_POWER[near]:.2f} at {near} "
            f"users; ≥ 0.95 needs {GINI_CHANGE_POWER_N})")


# --- Deldjoo 2024's prompting-side measures: temporal stability and genre dominance -----------


def list_jaccard(a: Sequence[str], b: Sequence[str]) -> float:
    """Jaccard overlap of two recommendation lists as sets (1 when both are empty)."""
    sa, sb = set(a), set(b)
    return 1.0 if not sa and not sb else len(sa & sb) / len(sa | sb)


def temporal_stability(runs: Sequence[Sequence[Sequence[str]]]) -> np.ndarray:
    """Per-user stability over repeated runs of the same prompts: the mean Jaccard overlap of the user's
    lists over all pairs of runs (``runs[r][u]`` = user u's list in run r); 1 = the same items every run."""
    r = len(runs)
    if r < 2:
        raise ValueError("temporal stability needs at least two runs of the same prompts")
    n = len(runs[0])
    if any(len(run) != n for run in runs):
        raise ValueError("every run must hold one list per user")
    pairs = [(i, j) for i in range(r) for j in range(i + 1, r)]
    return np.array([np.mean([list_jaccard(runs[i][u], runs[j][u]) for i, j in pairs]) for u in range(n)])


def genre_shares(item_lists: Sequence[Sequence[str]], genres_of: Mapping[str, Sequence[str]], genres: Sequence[str]) -> np.ndarray:
    """Share of each genre among the item–genre incidences of all lists pooled (NaN when there are none)."""
    col = {g: j for j, g in enumerate(genres)}
    counts = np.zeros(len(genres))
    for items in item_lists:
        for i in items:
            for g in genres_of.get(i, ()):
                if g in col:
                    counts[col[g]] += 1
    total = counts.sum()
    return counts / total if total else np.full(len(genres), np.nan)


def genre_dominance(shares_: np.ndarray) -> tuple[int, float]:
    """(index, share) of the dominant genre: the one with the largest share of recommendations."""
    s = np.asarray(shares_, dtype=float)
    if not np.isfinite(s).any():
        return -1, float("nan")
    j = int(np.nanargmax(s))
    return j, float(s[j])
