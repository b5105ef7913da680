"""Batched group statistics of the implicit-name probe: one call evaluates every permutation.

``labels`` is a B × N matrix of group codes (one row per permutation of the names' labels);
the statistics equal ``recaudit.metrics.distribution``'s per-row functions (max pairwise JS/TV of
pooled category distributions; max − min of group means) to rounding.
"""

from __future__ import annotations

from itertools import combinations

import numpy as np


def _one_hot(labels: np.ndarray, n_groups: int) -> np.ndarray:
    return (labels[..., None] == np.arange(n_groups)).astype(float)  # B × N × G


def batched_group_distance(counts: np.ndarray, labels: np.ndarray, n_groups: int, distance: str) -> np.ndarray:
    """Max pairwise JS (base 2) or TV distance between groups' pooled distributions, per row (NaN if a group is empty)."""
    totals = np.einsum("bng,nc->bgc", _one_hot(labels, n_groups), counts)
    mass = totals.sum(axis=2, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        dist = totals / mass
        best = np.full(labels.shape[0], -np.inf)
        for a, b in combinations(range(n_groups), 2):
            p, q = dist[:, a], dist[:, b]
            if distance == "tv":
                d = 0.5 * np.abs(p - q).sum(axis=1)
            else:
                m = (p + q) / 2
                kl_p = np.where(p > 0, p * np.log(np.where(p > 0, p, 1) / np.where(m > 0, m, 1)), 0.0).sum(axis=1)
                kl_q = np.where(q > 0, q * np.log(np.where(q > 0, q, 1) / np.where(m > 0, m, 1)), 0.0).sum(axis=1)
                d = np.maximum(0.0, (kl_p + kl_q) / 2 / np.log(2.0))
            best = np.maximum(best, d)
    best[(mass[:, :, 0] <= 0).any(axis=1)] = np.nan
    return best


def batched_group_gap(values: np.ndarray, labels: np.ndarray, n_groups: int) -> np.ndarray:
    """max − min over groups of the mean of ``values``, per row."""
    onehot = _one_hot(labels, n_groups)
    size = onehot.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.einsum("bng,n->bg", onehot, values) / size
    return np.nanmax(means, axis=1) - np.nanmin(means, axis=1)
