"""Power disclosure and small-sample intervals shared by the user-side fairness probes.

Every permutation test of fairllm and implicit_names reports, beside its p-value:
- ``p_floor``: the smallest p-value the test can return at this sample under a maximal effect,
  exact from the permutation scheme (how many label arrangements tie the observed one), and
  never below the Monte Carlo resolution 1/(B+1);
- ``mde``: the effect (in the statistic's own units) detected with 80% power at α = 0.05, by a
  normal-shift approximation on the test's own permutation null: q_{1−α}(null) + z_{0.8}·sd(null)
  (the alternative is taken as the null shifted, with the null's spread);
- ``underpowered`` (p_floor > α) with ``needed_n`` and a ``power_note``.
Holm's step-down adjustment gives ``p_adj`` within a named family of tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps

from recaudit.metrics import intervals
from recaudit.metrics.multiplicity import adjust

ALPHA = 0.05
POWER = 0.8
TARGET_FLOOR = 0.01  # the default audit must reach p < 0.01 on a maximal effect (issue 17)
# Student-t intervals of a mean over instructions/names cover 93-97% from this n on (simulated in
# benchmarks/validity_userfair.py: 0/1 and bounded similarity data); below it they are flagged
T_MIN_N = 10


@dataclass(frozen=True)
class Power:
    """The power disclosure of one test (fields of MetricValue)."""

    p_floor: float | None
    mde: float | None
    underpowered: bool
    needed_n: int | None
    power_note: str

    def fields(self) -> dict:
        """As MetricValue keyword arguments."""
        return dict(p_floor=self.p_floor, mde=self.mde, underpowered=self.underpowered, needed_n=self.needed_n,
                    power_note=self.power_note)


def pvalue(observed: float, null: np.ndarray) -> float:
    """One-sided Monte Carlo p-value P(null ≥ observed) with the +1 correction."""
    null = np.asarray(null, dtype=float)
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def mde_from_null(null: np.ndarray, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Normal-shift MDE: the critical value of the null plus z_power null standard deviations."""
    null = np.asarray(null, dtype=float)
    null = null[np.isfinite(null)]
    if null.size < 2:
        return None
    return float(np.quantile(null, 1 - alpha) + sps.norm.ppf(power) * null.std(ddof=1))


def disclose(floor_exact: float, n_permutations: int, null: np.ndarray | None, unit: str,
             needed_n: int | None, alpha: float = ALPHA) -> Power:
    """The Power record of a test whose exact floor is ``floor_exact`` at the configured sample."""
    floor = max(floor_exact, 1.0 / (n_permutations + 1))
    weak = floor > alpha
    mde = None if weak or null is None else mde_from_null(null, alpha)
    if weak:
        why = "the permutation scheme" if floor_exact > alpha else f"{n_permutations} permutations"
        note = (f"underpowered: the smallest attainable p is {floor:.3g} > α {alpha:g} ({why}); "
                f"needs {needed_n} {unit} to reach p < {TARGET_FLOOR:g}" if needed_n else f"underpowered: p floor {floor:.3g} > α {alpha:g}")
    else:
        note = f"p floor {floor:.3g} at {unit}; MDE at 80% power, α {alpha:g}: {mde:.3g} (normal shift of the null)" \
            if mde is not None else f"p floor {floor:.3g}"
        if floor > TARGET_FLOOR:
            note += f"; cannot reach p < {TARGET_FLOOR:g} (needs {needed_n} {unit})" if needed_n else ""
    return Power(p_floor=floor, mde=mde, underpowered=weak, needed_n=needed_n if weak or floor > TARGET_FLOOR else None,
                 power_note=note)


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm's step-down family-wise adjustment (None entries stay None and are not counted)."""
    return adjust(list(pvalues), "holm")


def t_interval(x: np.ndarray, level: float, lo_bound: float = 0.0, hi_bound: float = 1.0) -> tuple[float, float, float]:
    """Student-t interval of a mean (``metrics.intervals.t_interval``), clipped to the statistic's range."""
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    mean, low, high = intervals.t_interval(x, level)
    return mean, max(lo_bound, low), min(hi_bound, high)


# --- fairllm: value labels shuffled within instructions ------------------------------------------


def within_block_floor(n_values: int, n_blocks: int) -> float:
    """Exact p of the strongest single-value effect (one value's lists share nothing with the neutral
    list in every instruction, the others equal it) when value labels are shuffled within each
    instruction: the deviant value lands in the same column of all n instructions w.p. V^(1−n)."""
    return float(n_values ** (1 - n_blocks)) if n_blocks >= 1 else 1.0


def within_block_needed_n(n_values: int, target: float) -> int:
    """Instructions needed for ``within_block_floor`` ≤ target."""
    return 1 + math.ceil(math.log(1 / target) / math.log(n_values))


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


# --- implicit_names: group labels shuffled within strata -----------------------------------------


def stratified_floor(labels: np.ndarray, strata: np.ndarray) -> float:
    """Exact smallest p when group labels are shuffled within strata and the statistic is symmetric
    in the group names: (global relabelings that keep every stratum's group counts) / (distinct
    within-stratum arrangements)."""
    labels, strata = np.asarray(labels), np.asarray(strata)
    groups = list(np.unique(labels))
    log_arrangements = 0.0
    counts = {}
    for s in np.unique(strata):
        lab = labels[strata == s]
        c = [int(np.sum(lab == g)) for g in groups]
        counts[s] = c
        log_arrangements += math.lgamma(len(lab) + 1) - sum(math.lgamma(x + 1) for x in c)
    # a relabeling keeps every stratum's counts iff it maps each group to one with the same count
    # vector: groups sharing a vector permute freely among themselves
    signature: dict[tuple[int, ...], int] = {}
    for j in range(len(groups)):
        key = tuple(c[j] for c in counts.values())
        signature[key] = signature.get(key, 0) + 1
    log_keep = sum(math.lgamma(m + 1) for m in signature.values())
    return float(min(1.0, math.exp(log_keep - log_arrangements)))


def stratified_permutations(strata: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """B × N index arrays that shuffle positions within each stratum."""
    strata = np.asarray(strata)
    n = strata.size
    out = np.broadcast_to(np.arange(n), (n_permutations, n)).copy()
    for s in np.unique(strata):
        pos = np.flatnonzero(strata == s)
        out[:, pos] = pos[rng.permuted(np.broadcast_to(np.arange(pos.size), (n_permutations, pos.size)), axis=1)]
    return out
