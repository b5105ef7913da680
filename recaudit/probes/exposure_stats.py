"""Statistics of the exposure probe: pooled concentration with intervals, and the role-change tests.

Users are the unit. Gini/HHI/entropy/coverage of the pooled exposure get delete-d jackknife
t-intervals (``metrics.concentration``: users resampled with replacement bias pooled statistics),
the recency summaries a percentile bootstrap; the change of each statistic under every other
system role against the first gets a paired jackknife interval and a label-swap test over users,
Holm-adjusted per statistic. ``ExposureProbe.evaluate`` passes its settings as plain arguments.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from recaudit.metrics.concentration import (
    STAT_NAMES, coverage, entropy, gini, hhi, jackknife_change, jackknife_interval, planted_power_note,
    recency_from_exposure, swap_test,
)
from recaudit.metrics.multiplicity import holm
from recaudit.metrics.power import disclose, p_floor_sign_flip, sign_flip_needed_n
from recaudit.metrics.stats import bootstrap_or_point
from recaudit.probes.item_common import ci_or_none
from recaudit.results import CheckResult, MetricValue


def _statistics(years: list[int | None], include_unexposed: bool) -> dict[str, Callable[[np.ndarray], float]]:
    return {
        "gini": lambda e: gini(e, include_unexposed=include_unexposed),
        "hhi": hhi,
        "entropy": entropy,
        "coverage": coverage,
        "median_year": lambda e: recency_from_exposure(e, years).median_year,
        "std_year": lambda e: recency_from_exposure(e, years).std_year,
    }


def cell_statistics(mat: np.ndarray, years, seed: int, *, ci_level: float, n_bootstrap: int,
                    include_unexposed: bool) -> dict[str, tuple[float, float | None, float | None]]:  # fmt: skip
    """Each pooled statistic with its interval: jackknife-t for Gini/HHI/entropy/coverage (see
    ``metrics.concentration``: users resampled with replacement bias pooled statistics), the
    percentile bootstrap over users for the recency summaries."""
    out = {}
    for j, (key, fn) in enumerate(_statistics(years, include_unexposed).items()):
        if key in STAT_NAMES:
            iv = jackknife_interval(mat, key, ci_level, include_unexposed=include_unexposed)
            out[key] = (iv.value, ci_or_none(iv.low), ci_or_none(iv.high))
            continue
        iv = bootstrap_or_point(mat, lambda m, fn=fn: fn(m.sum(axis=0)), n_bootstrap, ci_level, seed * 31 + j)
        out[key] = (iv.value, ci_or_none(iv.low), ci_or_none(iv.high))
    return out


def role_changes(result: CheckResult, mats: dict[str, np.ndarray], strategies: Sequence[str], roles: Sequence[str], *,
                 include_unexposed: bool, ci_level: float, n_permutations: int, seed: int, alpha: float) -> None:  # fmt: skip
    """Each statistic under every other role minus under the first, per strategy: a paired jackknife
    t-interval and a two-sided label-swap test over users, Holm-adjusted per statistic across the
    strategy × role pairs."""
    if len(roles) < 2:
        return
    first = roles[0]
    inc = include_unexposed
    pairs = [(s, r) for s in strategies for r in roles[1:]]
    for st_idx, stat in enumerate(STAT_NAMES):
        rows = []
        for pair_idx, (strategy, system) in enumerate(pairs):
            a, b = mats[f"{strategy} · {first}"], mats[f"{strategy} · {system}"]
            iv = jackknife_change(a, b, stat, ci_level, include_unexposed=inc)
            test = (swap_test(a, b, stat, n_permutations, seed + 7 * pair_idx + st_idx, include_unexposed=inc)
                    if n_permutations > 0 else None)
            rows.append((strategy, system, iv, test))
        adj = holm([t.p_value if t else np.nan for *_, t in rows])
        prefix = "coverage_change" if stat == "coverage" else f"exposure.{stat}_change"
        for (strategy, system, iv, test), p_adj in zip(rows, adj):
            fields = {}
            if test is not None:
                fields = disclose(p_floor_sign_flip(test.n_users, None if test.exact else test.n_flips, two_sided=True),
                                  alpha=alpha, family=len(rows), null_sd=test.null_sd, two_sided=True, target=None,
                                  needed_n=sign_flip_needed_n(len(rows), alpha), unit="users",
                                  what=f"{stat} change: label-swap test over {test.n_users} users{planted_power_note(stat, test.n_users)}",
                                  ).fields(test.p_value, float(p_adj) if len(rows) > 1 else None)
            result.metrics.append(MetricValue(
                name=f"{prefix}.{strategy}.{system}", value=iv.value, ci_low=ci_or_none(iv.low),
                ci_high=ci_or_none(iv.high), ci_level=ci_level, ci_method=iv.method, n=iv.n,
                direction="higher_is_better" if stat in ("entropy", "coverage") else "lower_is_better",
                description=f"{stat} with the {system!r} role minus with the {first!r} role ({strategy}); "
                "estimand: the expected change at this many users; p: label-swap test over users", **fields,
            ))
