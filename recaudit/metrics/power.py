"""Power disclosure for recaudit's permutation tests: one ``Power`` record, one ``disclose``.

A permutation p-value (b + 1) / (B + 1) can never fall below the larger of 1/(B + 1) and the exact
floor of the scheme (1 / the number of label arrangements that tie the observed one): with 3
instructions and values shuffled within each, no effect, however large, reaches p < 0.05. Every
test of fairllm, implicit_names, item_fairness, exposure and the shilling attacks reports, beside
its p-value (fields of ``MetricValue``):

- ``p_floor``: the smallest p the test can return at this sample (exact floors below);
- ``mde``: the effect, in the statistic's own units, found with 80% power at α (Holm's first step
  α / family within a family), either from the test's own permutation null (its 1 − α quantile
  plus z_0.8 null sds: the alternative taken as the null shifted) or from the null's sd alone
  ((z_{1−α} + z_0.8) · sd, normal approximation); none when the floor already exceeds α;
- ``underpowered`` (floor × family > α), ``needed_n`` (the sample that would reach the target),
  and a one-line ``power_note``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

ALPHA = 0.05
POWER = 0.8
TARGET_FLOOR = 0.01  # the default audit must reach p < 0.01 on a maximal effect (issue 17)


@dataclass(frozen=True)
class Power:
    """The power disclosure of one test (fields of MetricValue)."""

    p_floor: float | None
    mde: float | None
    underpowered: bool
    needed_n: int | None
    power_note: str
    needed_n_01: int | None = None  # the sample that brings the floor to ≤ 0.01

    @property
    def reason(self) -> str:
        """The note (the name the shilling summary used)."""
        return self.power_note

    def fields(self, p_value: float | None = None, p_adj: float | None = None, method: str = "holm") -> dict:
        """As MetricValue keyword arguments (with the test's p and, when given, its adjusted p)."""
        out = asdict(self)
        out.pop("needed_n_01")
        if p_value is not None:
            # a test alone in its family needs no adjustment; gates on METRIC.p_adj still find a value
            alone = p_adj is None
            out.update(p_value=p_value, p_adj=p_value if alone else p_adj,
                       p_adj_method=ONE_TEST if alone else method)
        return out


ONE_TEST = "none (the only test of its family)"


def disclose(
    p_floor: float, n_permutations: int | None = None, null: np.ndarray | None = None, unit: str = "units",
    needed_n: int | None = None, alpha: float = ALPHA, *, family: int = 1, null_sd: float | None = None,
    two_sided: bool = False, needed_n_01: int | None = None, target: float | None = TARGET_FLOOR, what: str = "",
) -> Power:  # fmt: skip
    """The Power record of a test whose exact floor is ``p_floor`` (``n_permutations`` draws, Holm over ``family``).

    ``needed_n`` (the sample reaching ``target``; α when ``target`` is None) is reported when the
    test is underpowered, or when its floor exceeds ``target``. The MDE comes from ``null`` (the permutation
    null) if given, else from ``null_sd``."""
    family = max(int(family), 1)
    floor = max(p_floor, 1.0 / (n_permutations + 1)) if n_permutations else p_floor
    reach = min(1.0, floor * family)  # Holm's first step compares the smallest p with α / family
    weak = reach > alpha
    a = alpha / family
    mde = None
    if not weak:
        mde = mde_from_null(null, a) if null is not None else (
            mde_normal(null_sd, a, two_sided=two_sided) if null_sd is not None else None)
    goal = target if target is not None else alpha
    show_needed = weak or (target is not None and floor > target)
    holm_txt = f" (× {family} tests, Holm)" if family > 1 else ""
    if weak:
        why = f"{n_permutations} permutations" if n_permutations and p_floor * family <= alpha else "the permutation scheme"
        note = f"underpowered: the smallest attainable p is {reach:.3g}{holm_txt} > α {alpha:g} ({why})"
        note += f"; needs ≥ {needed_n} {unit} to reach p ≤ {goal:g}" if needed_n else ""
    else:
        note = f"p floor {floor:.3g}{holm_txt} ≤ α {alpha:g}"
        how = "normal shift of the permutation null" if null is not None else "normal approximation"
        note += f"; MDE at 80% power: {mde:.3g} ({how})" if mde is not None else ""
        note += f"; cannot reach p ≤ {goal:g} (needs ≥ {needed_n} {unit})" if show_needed and needed_n else ""
    return Power(p_floor=floor, mde=mde, underpowered=weak, needed_n=needed_n if show_needed else None,
                 power_note=f"{what}: {note}" if what else note, needed_n_01=needed_n_01)


def power_report(p_floor: float, alpha: float = ALPHA, mde: float | None = None, needed_n: int | None = None,
                 needed_n_01: int | None = None, unit: str = "units") -> Power:  # fmt: skip
    """``disclose`` with a given MDE (kept for callers of the earlier name)."""
    power = disclose(p_floor, alpha=alpha, needed_n=needed_n, needed_n_01=needed_n_01, unit=unit, target=None)
    return Power(power.p_floor, mde if not power.underpowered else None, power.underpowered, power.needed_n,
                 power.power_note, needed_n_01)


# --- minimum detectable effects --------------------------------------------------------------


def mde_from_null(null: np.ndarray | None, alpha: float = ALPHA, power: float = POWER) -> float | None:
    """Normal-shift MDE: the 1 − α quantile of the permutation null plus z_power null standard deviations."""
    from scipy import stats as sps  # imported here: a warm re-run needs no scipy.stats
    if null is None:
        return None
    arr = np.asarray(null, dtype=float)
    arr = arr[np.isfinite(arr)]
    if arr.size < 2:
        return None
    return float(np.quantile(arr, 1 - alpha) + sps.norm.ppf(power) * arr.std(ddof=1))


def mde_normal(sd: float, alpha: float = ALPHA, power: float = POWER, two_sided: bool = False) -> float | None:
    """(z_{1−α} + z_power) · sd (z_{1−α/2} when two-sided) of a statistic whose null has this sd."""
    from scipy import stats as sps  # imported here: a warm re-run needs no scipy.stats
    if sd is None or not math.isfinite(sd):
        return None
    return float((sps.norm.ppf(1 - (alpha / 2 if two_sided else alpha)) + sps.norm.ppf(power)) * sd)


def mde_paired_t(sd: float, n: int, alpha: float = ALPHA, power: float = POWER, two_sided: bool = False) -> float:
    """Minimum detectable mean shift of a paired / one-sample t-test (exact, noncentral t) in units of data."""
    from scipy import stats as sps  # imported here: a warm re-run needs no scipy.stats
    if n < 2 or not math.isfinite(sd):
        return math.nan
    df = n - 1
    crit = sps.t.ppf(1 - (alpha / 2 if two_sided else alpha), df)
    lo, hi = 0.0, 50.0
    for _ in range(80):  # bisection on the noncentrality giving the wanted power
        mid = (lo + hi) / 2
        if sps.nct.sf(crit, df, mid) < power:
            lo = mid
        else:
            hi = mid
    return float(hi * sd / math.sqrt(n))


def mde_welch(sd1: float, n1: int, sd2: float, n2: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Minimum detectable difference of means for Welch's one-sided test (normal approximation of the noncentral t)."""
    from scipy import stats as sps  # imported here: a warm re-run needs no scipy.stats
    se = math.sqrt(sd1**2 / n1 + sd2**2 / n2)
    return float((sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)) * se)


# --- exact floors of the permutation schemes -------------------------------------------------


def _multinomial(counts: Sequence[int]) -> int:
    n = sum(counts)
    out = math.factorial(n)
    for c in counts:
        out //= math.factorial(c)
    return out


def distinct_relabelings(labels_per_block: Sequence[Sequence]) -> int:
    """Distinct label arrangements when labels are shuffled within each block (product of multinomials)."""
    total = 1
    for block in labels_per_block:
        _, counts = np.unique(np.asarray(block), return_counts=True)
        total *= _multinomial([int(c) for c in counts])
    return total


def _with_draws(exact: float, n_permutations: int | None) -> float:
    return max(exact, 1.0 / (n_permutations + 1)) if n_permutations else exact


def p_floor_blocks(labels_per_block: Sequence[Sequence], n_permutations: int | None = None) -> float:
    """Smallest p of a within-block label shuffle: 1/#relabelings, and ≥ 1/(B+1) with B Monte Carlo draws.

    The observed arrangement is one of the equally likely ones, so P(null ≥ observed) ≥ 1/#; a
    statistic symmetric in the labels (a range over values) has fewer distinct values: this is a
    lower bound on the floor, exact for a statistic that tells every arrangement apart.
    """
    return _with_draws(1.0 / distinct_relabelings(labels_per_block), n_permutations)


def p_floor_sign_flip(m: int, n_permutations: int | None = None, two_sided: bool = False) -> float:
    """Smallest p of a sign-flip test over m paired units: 2^-m one-sided; 2^(1−m) two-sided or for a
    statistic symmetric under flipping every unit (the mirror flip ties); ≥ 1/(B+1) with B draws."""
    exact = min(1.0, 2.0 ** ((1 if two_sided else 0) - m))
    return _with_draws(exact, n_permutations)


def p_floor_two_sample(n: int, k: int, n_permutations: int | None = None) -> float:
    """Smallest one-sided p of a two-sample label shuffle (k of n units in group 1): 1/C(n, k)."""
    return _with_draws(1.0 / math.comb(n, k), n_permutations)


def needed_blocks(block_labels: Sequence, alpha: float = ALPHA, n_permutations: int | None = None,
                  max_blocks: int = 10_000) -> int | None:  # fmt: skip
    """Fewest identical blocks (e.g. instructions, each with these labels) whose floor is ≤ alpha."""
    per = distinct_relabelings([block_labels])
    if n_permutations is not None and 1.0 / (n_permutations + 1) > alpha:
        return None  # more permutations are needed, not more units
    if per <= 1:
        return None
    m = math.ceil(math.log(1.0 / alpha) / math.log(per) - 1e-12)
    return max(1, m) if m <= max_blocks else None


def sign_flip_needed_n(family: int = 1, alpha: float = ALPHA) -> int:
    """Fewest units whose two-sided sign-flip floor 2^(1−n), times the Holm family, reaches α."""
    return int(np.ceil(1 + np.log2(max(family, 1) / alpha)))


def within_block_floor(n_values: int, n_blocks: int) -> float:
    """Exact p of the strongest single-value effect (one value's lists share nothing with the neutral
    list in every instruction, the others equal it) when value labels are shuffled within each
    instruction: the deviant value lands in the same column of all n instructions w.p. V^(1−n)."""
    return float(n_values ** (1 - n_blocks)) if n_blocks >= 1 else 1.0


def within_block_needed_n(n_values: int, target: float) -> int:
    """Instructions needed for ``within_block_floor`` ≤ target."""
    return 1 + math.ceil(math.log(1 / target) / math.log(n_values))


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
