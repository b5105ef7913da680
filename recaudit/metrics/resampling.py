"""Vectorised permutation and bootstrap schemes of the user-side probes (B × units matrices).

``pvalue`` is the one-sided Monte Carlo p with the +1 correction; the schemes are fairllm's value
labels shuffled within instructions, its row bootstrap, and implicit_names' group labels shuffled
within strata. Their exact floors are in ``recaudit.metrics.power``.
"""

from __future__ import annotations

import numpy as np


def pvalue(observed: float, null: np.ndarray) -> float:
    """One-sided Monte Carlo p-value P(null ≥ observed) with the +1 correction."""
    null = np.asarray(null, dtype=float)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def range_null_within_blocks(at_k: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """Null of range-of-column-means with each row's values shuffled (vectorised: B × n × V)."""
    n, v = at_k.shape
    order = rng.permuted(np.broadcast_to(np.arange(v), (n_permutations, n, v)), axis=2)
    shuffled = np.take_along_axis(np.broadcast_to(at_k, (n_permutations, n, v)), order, axis=2)
    means = shuffled.mean(axis=1)
    return means.max(axis=1) - means.min(axis=1)


def bootstrap_rows(at_k: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Column means of row-bootstrap resamples (B × V), vectorised."""
    n = at_k.shape[0]
    idx = rng.integers(0, n, size=(n_resamples, n))
    return at_k[idx].mean(axis=1)


def stratified_permutations(strata: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """B × N index arrays that shuffle positions within each stratum."""
    strata = np.asarray(strata)
    n = strata.size
    out = np.broadcast_to(np.arange(n), (n_permutations, n)).copy()
    for s in np.unique(strata):
        pos = np.flatnonzero(strata == s)
        out[:, pos] = pos[rng.permuted(np.broadcast_to(np.arange(pos.size), (n_permutations, pos.size)), axis=1)]
    return out
