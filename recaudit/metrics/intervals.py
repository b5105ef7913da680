"""Confidence intervals chosen by a coverage study: ``interval(values, method="auto")``.

For the mean of per-unit scores (e.g. Sim(a) over instructions) the Student-t interval is the
auto choice: at n = 10 units the percentile bootstrap is too narrow (it ignores the t quantile
and the n/(n−1) variance factor), which is the 77–85% coverage issue 17 measured. For
statistics without a t theory (ranges, std) auto uses BCa. Bounds are clipped to the
statistic's range (``bounds``) and ``Ci.clipped`` says so. ``ci_unreliable`` flags sizes below
those where the study (benchmarks/validity_intervals.py) showed coverage under 93%.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Literal

import numpy as np

from recaudit.metrics.stats import bootstrap_ci

Method = Literal["auto", "t", "bca", "percentile", "basic"]
# smallest n at which the recommended method reached >= 93% coverage (see the study's JSON)
MIN_RELIABLE_N: dict[str, int] = {"mean": 10, "range": 20, "std": 20}
# Student-t intervals of a mean over instructions/names cover 93-97% from this n on (simulated in
# benchmarks/validity_userfair.py: 0/1 and bounded similarity data); below it they are flagged
T_MIN_N = MIN_RELIABLE_N["mean"]
# fairllm's bootstrap intervals of SNSR (a range) and SNSV (a std) of value means, simulated against
# the generator's population values (benchmarks/validity_userfair.py, 80 runs per cell): they stay
# flagged ci_unreliable, with this coverage in their description
SPREAD_CI_COVERAGE = ("simulated coverage of a 95% interval: 0.78-0.80 with no value differing and 0.88-0.89 "
                      "with 10%/30% planted swaps at 10 instructions; 0.76-0.83 and 0.85-0.94 at 20")


@dataclass(frozen=True)
class Ci:
    """An interval with the method that made it and whether it was clipped to the statistic's range."""

    value: float
    low: float
    high: float
    level: float
    n: int
    method: str
    clipped: bool = False
    unreliable: bool = False


def ci_unreliable(n: int, statistic: str = "mean") -> bool:
    """True when n units are fewer than the study's smallest size with ≥ 93% coverage for this statistic."""
    return n < MIN_RELIABLE_N.get(statistic, max(MIN_RELIABLE_N.values()))


def t_interval(values: np.ndarray, level: float = 0.95,
               bounds: tuple[float, float] | None = (0.0, 1.0)) -> tuple[float, float, float]:  # fmt: skip
    """Student-t interval of the mean: x̄ ± t_{n−1} · s/√n, clipped to ``bounds`` (as ``interval``); NaN when empty."""
    from scipy import stats as sps  # imported here: a warm re-run needs no scipy.stats
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if n < 2:
        return m, m, m
    half = float(sps.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    if bounds is None:
        return m, m - half, m + half
    return m, max(bounds[0], m - half), min(bounds[1], m + half)


def interval(
    values, method: Method = "auto", statistic: Callable | str = "mean", level: float = 0.95,
    n_resamples: int = 2000, seed: int = 0, bounds: tuple[float, float] | None = (0.0, 1.0),
) -> Ci:  # fmt: skip
    """CI of ``statistic`` over units (rows of ``values``); auto = t for the mean, BCa otherwise; clipped to bounds."""
    arr = np.asarray(values, dtype=float)
    name = statistic if isinstance(statistic, str) else getattr(statistic, "__name__", "custom")
    if method == "auto":
        method = "t" if name == "mean" else "bca"
    if method == "t":
        if name != "mean":
            raise ValueError("method 't' is only for the mean")
        value, lo, hi = t_interval(arr, level, None)  # clipped below, where clipping is recorded
    else:
        fn = _STATS.get(name) if isinstance(statistic, str) else statistic
        if fn is None:
            raise ValueError(f"statistic must be one of {sorted(_STATS)} or a function, got {statistic!r}")
        iv = bootstrap_ci(arr, fn, n_resamples, level, seed, method=method)
        value, lo, hi = iv.value, iv.low, iv.high
    clipped = False
    if bounds is not None:
        c_lo, c_hi = max(lo, bounds[0]), min(hi, bounds[1])
        clipped = (c_lo, c_hi) != (lo, hi)
        lo, hi = c_lo, c_hi
    return Ci(value, float(lo), float(hi), level, len(arr), method, clipped, ci_unreliable(len(arr), name))


def _range_of_means(block: np.ndarray) -> float:
    return float(np.ptp(block.mean(axis=0)))


def _std_of_means(block: np.ndarray) -> float:
    return float(block.mean(axis=0).std(ddof=0))


_STATS: dict[str, Callable] = {"mean": np.mean, "range": _range_of_means, "std": _std_of_means}
