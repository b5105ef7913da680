"""Power disclosure for recaudit's permutation tests: the smallest p-value a design can reach, and the MDE.

A permutation p-value (b + 1) / (B + 1) can never fall below the larger of 1/(B + 1) and the exact
floor of the scheme (1 / the number of distinct relabelings): with 3 instructions and values
shuffled within each, no effect, however large, reaches p < 0.05. ``power_report`` says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as sps


@dataclass(frozen=True)
class Power:
    """A test's attainable floor and its minimum detectable effect (80% power, α = 0.05 unless stated)."""

    p_floor: float
    mde: float | None
    underpowered: bool
    needed_n: int | None
    reason: str
    needed_n_01: int | None = None  # the sample that brings the floor to ≤ 0.01


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


def p_floor_blocks(labels_per_block: Sequence[Sequence], n_permutations: int | None = None) -> float:
    """Smallest p of a within-block label shuffle: 1/#relabelings, and ≥ 1/(B+1) with B Monte Carlo draws.

    The observed arrangement is one of the equally likely ones, so P(null ≥ observed) ≥ 1/#; a
    statistic symmetric in the labels (a range over values) has fewer distinct values: this is a
    lower bound on the floor, exact for a statistic that tells every arrangement apart.
    """
    exact = 1.0 / distinct_relabelings(labels_per_block)
    return max(exact, 1.0 / (n_permutations + 1)) if n_permutations else exact


def p_floor_sign_flip(m: int, n_permutations: int | None = None) -> float:
    """Smallest p of a sign-flip test over m paired units: 2^-m (≥ 1/(B+1) with B draws)."""
    exact = 2.0 ** -m
    return max(exact, 1.0 / (n_permutations + 1)) if n_permutations else exact


def p_floor_two_sample(n: int, k: int, n_permutations: int | None = None) -> float:
    """Smallest one-sided p of a two-sample label shuffle (k of n units in group 1): 1/C(n, k)."""
    exact = 1.0 / math.comb(n, k)
    return max(exact, 1.0 / (n_permutations + 1)) if n_permutations else exact


def needed_blocks(block_labels: Sequence, alpha: float = 0.05, n_permutations: int | None = None,
                  max_blocks: int = 10_000) -> int | None:  # fmt: skip
    """Fewest identical blocks (e.g. instructions, each with these labels) whose floor is ≤ alpha."""
    per = distinct_relabelings([block_labels])
    if n_permutations is not None and 1.0 / (n_permutations + 1) > alpha:
        return None  # more permutations are needed, not more units
    if per <= 1:
        return None
    m = math.ceil(math.log(1.0 / alpha) / math.log(per) - 1e-12)
    return max(1, m) if m <= max_blocks else None


def mde_paired_t(sd: float, n: int, alpha: float = 0.05, power: float = 0.8, two_sided: bool = False) -> float:
    """Minimum detectable mean shift of a paired / one-sample t-test (exact, noncentral t) in units of data."""
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


def mde_welch(sd1: float, n1: int, sd2: float, n2: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Minimum detectable difference of means for Welch's one-sided test (normal approximation of the noncentral t)."""
    se = math.sqrt(sd1**2 / n1 + sd2**2 / n2)
    return float((sps.norm.ppf(1 - alpha) + sps.norm.ppf(power)) * se)


def power_report(p_floor: float, alpha: float = 0.05, mde: float | None = None, needed_n: int | None = None,
                 needed_n_01: int | None = None, unit: str = "units") -> Power:  # fmt: skip
    """Power(p_floor, mde, underpowered = p_floor > alpha, needed_n, reason)."""
    under = p_floor > alpha
    if under:
        reason = (f"the smallest attainable p is {p_floor:.3g} > α = {alpha}: no effect can be significant"
                  + (f"; needs ≥ {needed_n} {unit}" if needed_n else ""))
    else:
        reason = f"the smallest attainable p is {p_floor:.3g} ≤ α = {alpha}"
    return Power(p_floor=p_floor, mde=mde, underpowered=under, needed_n=needed_n if under else None,
                 reason=reason, needed_n_01=needed_n_01)
