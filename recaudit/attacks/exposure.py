"""Exposure: the share of held-out users who see the target in their top K, with its uncertainty.

Per user, the hit indicator is averaged over the audited targets (one target → 0/1), and the
bootstrap resamples users (``recaudit.metrics.stats.bootstrap_ci``). Clean, attacked and
defended exposures are measured on the *same* users, so their difference is a paired
comparison: its CI resamples users jointly, and its p-value is a sign-flip permutation test
(clean/attacked labels swapped within a user).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recaudit.metrics.power import p_floor_sign_flip
from recaudit.metrics.stats import Interval, bootstrap_ci, permutation_test


def per_user(hits: np.ndarray) -> np.ndarray:
    """Per-user exposure: hits of shape (users,) or (users, targets) → (users,) floats."""
    arr = np.asarray(hits, dtype=float)
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2:
        return arr.mean(axis=1)
    raise ValueError(f"hits must have shape (users,) or (users, targets), got {arr.shape}")


def exposure(hits: np.ndarray, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Exposure with a percentile-bootstrap CI over users."""
    return bootstrap_ci(per_user(hits), np.mean, n_resamples=n_resamples, level=level, seed=seed)


@dataclass(frozen=True)
class PairedDifference:
    """Exposure(after) − exposure(before) on the same users: CI and one-sided p for 'after > before'."""

    diff: Interval
    p_value: float
    before: float
    after: float
    n_changed: int = 0  # users whose exposure differs: only they can flip sign, so the floor is 2^-n_changed
    n_permutations: int = 2000

    @property
    def p_floor(self) -> float:
        """Smallest p this sign-flip test can reach: max(2^-m, 1/(B+1)) over the m users that changed."""
        return p_floor_sign_flip(self.n_changed, self.n_permutations)

    @property
    def relative(self) -> float:
        """(after − before) / before; inf when before is 0 and after is not."""
        if self.before == 0:
            return 0.0 if self.after == 0 else float("inf")
        return (self.after - self.before) / self.before


def paired_difference(
    before: np.ndarray,
    after: np.ndarray,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    n_permutations: int = 2000,
) -> PairedDifference:
    """Paired bootstrap CI of mean(after − before) and a sign-flip permutation p-value."""
    b, a = per_user(before), per_user(after)
    if b.shape != a.shape:
        raise ValueError(f"before and after must cover the same users, got shapes {b.shape} and {a.shape}")
    diff = bootstrap_ci(a - b, np.mean, n_resamples=n_resamples, level=level, seed=seed)
    n = len(b)
    values = np.concatenate([b, a])
    blocks = np.concatenate([np.arange(n), np.arange(n)])

    def stat(labels: np.ndarray) -> float:
        return float(values[labels == 1].mean() - values[labels == 0].mean())

    if n == 0 or np.allclose(a, b):
        p = 1.0
    else:
        _, p = permutation_test(stat, np.repeat([0, 1], n), n_permutations=n_permutations, seed=seed, blocks=blocks)
    changed = int(np.sum(~np.isclose(a, b)))
    return PairedDifference(
        diff=diff, p_value=p, before=float(b.mean()) if n else float("nan"), after=float(a.mean()) if n else float("nan"),
        n_changed=changed, n_permutations=n_permutations,
    )
