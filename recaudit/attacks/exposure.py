"""Exposure: the share of held-out users who see the target in their top K, with its uncertainty.

Per user, the hit indicator is averaged over the audited targets (one target → 0/1), and the
bootstrap resamples users (``recaudit.metrics.stats.bootstrap_ci``). Clean, attacked and
defended exposures are measured on the *same* users, so their difference is a paired
comparison: its CI resamples users jointly, and its p-value is an exact sign-flip test over the
held-out users (clean/attacked labels swapped within a user, all 2^n swaps counted; with one
target it is the exact McNemar test). A user whose exposure did not change adds nothing to the
statistic under either label, so ties carry no evidence; the smallest p the design can reach is
2^-n over the n held-out users.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recaudit.metrics.stats import Interval, bootstrap_ci, permutation_test


def per_user(hits: np.ndarray) -> np.ndarray:
    """Per-user exposure: hits of shape (users,) or (users, targets) → (users,) floats."""
    arr = np.asarray(hits, dtype=float)
    if arr.ndim == 1:
        return arr
    if arr.ndim == 2:
        return arr.mean(axis=1)
    raise ValueError(f"hits must have shape (users,) or (users, targets), got {arr.shape}")


def _per_user_counts(hits: np.ndarray) -> np.ndarray | None:
    """Per-user hit counts over targets when hits are 0/1 (the exact test's integer lattice), else None."""
    arr = np.asarray(hits, dtype=float)
    arr = arr[:, None] if arr.ndim == 1 else arr
    if not np.isin(arr, (0.0, 1.0)).all():
        return None
    return arr.sum(axis=1).astype(np.int64)


def exposure(hits: np.ndarray, n_resamples: int = 1000, level: float = 0.95, seed: int = 0) -> Interval:
    """Exposure with a percentile-bootstrap CI over users."""
    return bootstrap_ci(per_user(hits), np.mean, n_resamples=n_resamples, level=level, seed=seed)


def sign_flip_exact(diffs: np.ndarray) -> float:
    """One-sided exact p of Σ d_i over all 2^n sign flips of integer paired differences (P(S ≥ observed)).

    The null distribution of S = Σ ±|d_i| is built by convolution on the integer lattice, so the p is
    exact for any n (a zero difference contributes 0 under both signs: ties change nothing).
    """
    d = np.asarray(diffs, dtype=np.int64)
    mags = np.abs(d[d != 0])
    total = int(mags.sum())
    dist = np.zeros(2 * total + 1)
    dist[total] = 1.0  # index = S + total
    for m in mags:
        dist = 0.5 * (np.roll(dist, m) + np.roll(dist, -m))  # no wrap: |S| never exceeds total
    observed = int(d.sum())
    return float(min(1.0, dist[observed + total:].sum()))


@dataclass(frozen=True)
class PairedDifference:
    """Exposure(after) − exposure(before) on the same users: CI and one-sided p for 'after > before'."""

    diff: Interval
    p_value: float
    before: float
    after: float
    n_changed: int = 0  # users whose exposure differs (the others carry no evidence either way)
    n_permutations: int | None = None  # None: exact over all 2^n sign flips; B: Monte Carlo draws
    method: str = "exact sign-flip"
    n_targets: int = 1  # per-user exposure is a mean over this many targets

    @property
    def n_users(self) -> int:
        """Paired users the test is over."""
        return self.diff.n

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
    """Paired bootstrap CI of mean(after − before) and a one-sided sign-flip p over users.

    0/1 hits give the exact test (``sign_flip_exact``); other per-user values fall back to
    ``n_permutations`` Monte Carlo sign flips.
    """
    b, a = per_user(before), per_user(after)
    if b.shape != a.shape:
        raise ValueError(f"before and after must cover the same users, got shapes {b.shape} and {a.shape}")
    diff = bootstrap_ci(a - b, np.mean, n_resamples=n_resamples, level=level, seed=seed)
    n = len(b)
    changed = int(np.sum(~np.isclose(a, b)))
    cb, ca = _per_user_counts(before), _per_user_counts(after)
    if cb is not None and ca is not None:
        p = sign_flip_exact(ca - cb) if n else 1.0
        draws, method = None, "exact sign-flip"
    else:
        values = np.concatenate([b, a])
        blocks = np.concatenate([np.arange(n), np.arange(n)])

        def stat(labels: np.ndarray) -> float:
            return float(values[labels == 1].mean() - values[labels == 0].mean())

        p = 1.0 if n == 0 or not changed else permutation_test(
            stat, np.repeat([0, 1], n), n_permutations=n_permutations, seed=seed, blocks=blocks)[1]
        draws, method = n_permutations, f"sign-flip, {n_permutations} Monte Carlo draws"
    return PairedDifference(
        diff=diff, p_value=p, before=float(b.mean()) if n else float("nan"), after=float(a.mean()) if n else float("nan"),
        n_changed=changed, n_permutations=draws, method=method, n_targets=1 if np.ndim(before) == 1 else np.shape(before)[1],
    )
