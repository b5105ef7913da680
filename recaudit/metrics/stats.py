"""Uncertainty for every audit number: bootstrap confidence intervals and permutation tests.

All functions are deterministic for a given seed (numpy Generator), so reports reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval."""

    value: float
    low: float
    high: float
    level: float = 0.95
    n: int = 0


def bootstrap_ci(
    data: Sequence | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
) -> Interval:
    """Percentile bootstrap CI of ``statistic`` over the first axis of ``data`` (resampling units = rows)."""
    arr = np.asarray(data)
    n = arr.shape[0]
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), level, 0)
    value = float(statistic(arr))
    if n == 1:
        return Interval(value, value, value, level, 1)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_resamples, n))
    stats = np.array([statistic(arr[i]) for i in idx], dtype=float)
    alpha = (1 - level) / 2
    lo, hi = np.nanquantile(stats, [alpha, 1 - alpha])
    return Interval(value, float(lo), float(hi), level, n)


def permutation_pvalue(observed: float, null_stats: np.ndarray) -> float:
    """One-sided p-value P(null >= observed) with the +1 correction (never exactly 0)."""
    null_stats = np.asarray(null_stats, dtype=float)
    return float((1 + np.sum(null_stats >= observed - 1e-12)) / (1 + len(null_stats)))


def permutation_test(
    statistic: Callable[[np.ndarray], float],
    labels: np.ndarray,
    n_permutations: int = 1000,
    seed: int = 0,
    blocks: np.ndarray | None = None,
) -> tuple[float, float]:
    """Permutation test of ``statistic(labels)``: returns (observed, one-sided p for 'larger than chance').

    Labels are shuffled globally, or within each block when ``blocks`` is given (a paired design:
    e.g. shuffle attribute values within one instruction).
    """
    labels = np.asarray(labels)
    observed = float(statistic(labels))
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    if blocks is None:
        for b in range(n_permutations):
            null[b] = statistic(rng.permutation(labels))
    else:
        blocks = np.asarray(blocks)
        groups = [np.flatnonzero(blocks == u) for u in np.unique(blocks)]
        for b in range(n_permutations):
            perm = labels.copy()
            for g in groups:
                perm[g] = labels[rng.permutation(g)]
            null[b] = statistic(perm)
    return observed, permutation_pvalue(observed, null)
