"""Statistics of the implicit-name probe: group distances and gaps, their tests, Holm families, headlines.

The unit is the user (a name, or a MovieLens user with a name). CIs bootstrap users; p-values
permute group labels over users within strata (gender within a locale, region within a gender;
gender within an activity stratum for history users), so another attribute cannot masquerade as
the tested one. Every call into the power helpers (``recaudit.metrics.power``) of this probe and
of ``explicit_unfairness`` is in this module, so the shared power disclosure has one seam here.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from recaudit.data.names import NameRecord
from recaudit.metrics.distribution import group_gap, max_pairwise_distance
from recaudit.metrics.distribution_batch import batched_group_distance, batched_group_gap
from recaudit.metrics.multiplicity import adjust as holm
from recaudit.metrics.power import TARGET_FLOOR, disclose, stratified_floor
from recaudit.metrics.resampling import pvalue, stratified_permutations
from recaudit.metrics.stats import bootstrap_or_point
from recaudit.results import MetricValue

STRATUM = {"gender": "locale", "region": "gender"}  # permute labels within this attribute


@dataclass
class NameUnit:
    """One user of one domain and condition, with everything the statistics need."""

    record: NameRecord
    counts: np.ndarray  # categories of the name-only answers
    ndcg: list[float] = field(default_factory=list)
    mrr: list[float] = field(default_factory=list)
    parsed_ok: list[bool] = field(default_factory=list)
    mapped: list[int] = field(default_factory=list)  # per answer: items with a category
    n_items: list[int] = field(default_factory=list)
    stratum: str = ""  # history users: the activity stratum their gender label is permuted within


@dataclass(frozen=True)
class GapTest:
    """Permutation test of a group gap: p-value and the power disclosure's MetricValue fields."""

    p_value: float
    fields: dict


def hash_seed(*parts: str) -> int:
    """A small stable integer from strings (process-independent, unlike hash())."""
    return zlib.crc32("|".join(parts).encode()) % 100_000


def nanmean(values: np.ndarray) -> float:
    """Mean of the finite entries (NaN when there is none)."""
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def group_distance(counts: np.ndarray, labels: np.ndarray, distance: str) -> float:
    """Max pairwise distance between the pooled category distributions of the label groups."""
    labels = np.asarray(labels).astype(int)
    groups = np.unique(labels)
    if len(groups) < 2:
        return math.nan
    totals = {g: counts[labels == g].sum(axis=0) for g in groups}
    if any(t.sum() <= 0 for t in totals.values()):
        return math.nan
    return max_pairwise_distance(totals, distance)[0]


def needed_per_stratum(codes: np.ndarray, strata: np.ndarray, target: float = TARGET_FLOOR) -> int | None:
    """Smallest users-per-group-per-stratum whose exact floor is ≤ target, with the same strata and groups."""
    levels = np.unique(strata)
    groups = np.unique(codes)
    per = {s: sorted({int(c) for c in codes[strata == s]}) for s in levels}
    for n in range(1, 65):
        # every stratum holds each of its groups n times (names are drawn n per gender per locale)
        lab = np.concatenate([np.repeat(per[s], n) for s in levels])
        st = np.concatenate([np.repeat(s, n * len(per[s])) for s in levels])
        if len(groups) and stratified_floor(lab, st) <= target:
            return n
    return None


def gap_test(values: np.ndarray, codes: np.ndarray, strata: np.ndarray, n_permutations: int,
             rng: np.random.Generator, unit: str, needed_n: int | None = None) -> GapTest | None:
    """Within-strata permutation test of max − min of group means (None without permutations)."""
    if not n_permutations:
        return None
    n_groups = int(codes.max()) + 1
    perms = codes[stratified_permutations(strata, n_permutations, rng)]
    null = batched_group_gap(values, perms, n_groups)
    observed = float(batched_group_gap(values, codes[None, :], n_groups)[0])
    power = disclose(stratified_floor(codes, strata), n_permutations, null, unit, needed_n, what=f"permutations of {unit}")
    return GapTest(pvalue(observed, null), power.fields())


def group_metrics(units: Sequence[NameUnit], grouping: str, domain: str, condition: str, p: Any,
                  unit_label: str = "names per gender per locale", distances: bool = True,
                  relevance: str = "relevant = the stated interest's category") -> list[MetricValue]:
    """JS/TV of name-only category distributions and U-NDCG/U-MRR over ``grouping``, each with CI and test.

    ``p``: the probe's params (seed, n_permutations, n_bootstrap, ci_level, k, n_interests).
    Units with a ``stratum`` are permuted within it; otherwise within ``STRATUM[grouping]``.
    ``distances``: JS/TV of the name-only answers (history users have none); U-NDCG/U-MRR when the
    units carry ranking values. ``relevance`` says what made an item relevant (in each description).
    """
    labels = np.array([getattr(u.record, grouping) for u in units])
    strata = np.array([u.stratum or getattr(u.record, STRATUM[grouping]) for u in units])
    codes = np.unique(labels, return_inverse=True)[1]
    n_groups = int(codes.max()) + 1
    counts = np.stack([u.counts for u in units])
    seed = p.seed + hash_seed(domain, condition, grouping)
    # one set of within-stratum permutations serves every statistic of this grouping
    perms = codes[stratified_permutations(strata, p.n_permutations, np.random.default_rng(seed))] \
        if p.n_permutations else None
    floor = stratified_floor(codes, strata)
    needed = needed_per_stratum(codes, strata)
    out: list[MetricValue] = []

    def tested(observed: float, null: np.ndarray | None) -> dict:
        if null is None:
            return {}
        return dict(p_value=pvalue(observed, null), **disclose(floor, p.n_permutations, null, unit_label, needed, what=f"permutations of {unit_label}").fields())

    for dist in ("js", "tv") if distances else ():
        value = group_distance(counts, codes, dist)
        what = (f"{'Jensen–Shannon divergence' if dist == 'js' else 'total variation'} between the "
                f"{grouping} groups' {domain} category distributions (max over pairs), {condition} condition")
        if not math.isfinite(value):  # a group with no categorised item: no distribution to compare
            out.append(MetricValue(name=f"{condition}.{dist}.{grouping}.{domain}", value=math.nan, n=len(units),
                                   direction="lower_is_better", variant=condition,
                                   description=f"{what}; undefined: a group has no categorised item"))
            continue
        ci = bootstrap_or_point(
            np.column_stack([codes, counts]),
            lambda rows, d=dist: group_distance(rows[:, 1:], rows[:, 0].astype(int), d),
            p.n_bootstrap, p.ci_level, seed,
        )
        null = batched_group_distance(counts, perms, n_groups, dist) if perms is not None else None
        out.append(MetricValue(
            name=f"{condition}.{dist}.{grouping}.{domain}", value=value, ci_low=ci.low, ci_high=ci.high,
            ci_level=p.ci_level, ci_method="bootstrap-percentile" if ci.low is not None else None,
            ci_unreliable=True, n=len(units), direction="lower_is_better", variant=condition,
            description=what + "; a pooled distance is biased upward in small samples, so its interval is "
            "flagged unreliable: read the p-value", **tested(value, null),
        ))
    if all(u.ndcg for u in units) and (p.n_interests > 0 or not distances):
        for measure, per_unit in ((f"u_ndcg@{p.k}", [np.mean(u.ndcg) for u in units]),
                                  (f"u_mrr@{p.k}", [np.mean(u.mrr) for u in units])):
            vals = np.asarray(per_unit, dtype=float)
            ci = bootstrap_or_point(np.column_stack([codes, vals]), lambda rows: group_gap(rows[:, 1], rows[:, 0]),
                                    p.n_bootstrap, p.ci_level, seed)
            value = group_gap(vals, codes)
            null = batched_group_gap(vals, perms, n_groups) if perms is not None else None
            out.append(MetricValue(
                name=f"{condition}.{measure}.{grouping}.{domain}", value=value, ci_low=ci.low,
                ci_high=ci.high, ci_level=p.ci_level, ci_method="bootstrap-percentile" if ci.low is not None else None,
                ci_unreliable=True, n=len(units), direction="lower_is_better", variant=condition,
                description=f"max − min over {grouping} groups of mean {measure.split('@')[0][2:].upper()}@{p.k} "
                f"({relevance}), {condition} condition; "
                "the bootstrap interval of a gap is not validated by simulation (flagged unreliable): read the p-value",
                **tested(value, null),
            ))
    return out


def holm_by_family(metrics: list[MetricValue]) -> None:
    """p_adj: Holm over every test of one condition (all measures × groupings × domains: the check's family).

    A null recommender then flags any implicit test with probability ≤ α; per-measure families
    (the earlier design) let the check as a whole false-flag in 12.5% of null runs (200 seeds,
    benchmarks/validity_userfair.py).
    """
    families: dict[str, list[MetricValue]] = {}
    for m in metrics:
        if m.p_value is not None:
            families.setdefault(m.name.split(".")[0], []).append(m)
    for condition, members in families.items():
        holm_family(members, f"{condition}.*")


def holm_family(members: Sequence[MetricValue], label: str) -> None:
    """Set p_adj / p_adj_method of ``members`` by Holm's step-down adjustment over them."""
    for m, adj in zip(members, holm([m.p_value for m in members])):
        m.p_adj = adj
        m.p_adj_method = f"holm over {len(members)} tests ({label})" if adj is not None else None


def headline(name: str, components: list[MetricValue], unit_label: str = "names per gender per locale") -> MetricValue:
    """The largest component, with the Bonferroni p over the tested components (any group gap at all)."""
    finite = [m for m in components if math.isfinite(m.value)]
    if not finite:
        return MetricValue(name=name, value=math.nan, direction="lower_is_better", variant="implicit")
    worst = max(finite, key=lambda m: m.value)
    tested = [m for m in finite if m.p_value is not None]
    ps = [m.p_value for m in tested]
    p_adj = min(1.0, min(ps) * len(ps)) if ps else None  # Bonferroni over this headline's own components
    power: dict = {}
    if tested:
        floors = [m.p_floor for m in tested if m.p_floor is not None]
        floor = min(1.0, min(floors) * len(tested)) if floors else None
        needs = [m.needed_n for m in tested if m.needed_n is not None]
        weak = floor is not None and floor > 0.05
        power = dict(p_floor=floor, underpowered=weak, needed_n=min(needs) if needs and (weak or floor > TARGET_FLOOR) else None,
                     mde=worst.mde, power_note=f"Bonferroni over {len(tested)} components: floor {floor:.3g}"
                     + (f" (underpowered; needs {min(needs)} {unit_label})" if weak and needs else "")
                     if floor is not None else "")
    return MetricValue(
        name=name, value=worst.value, ci_low=worst.ci_low, ci_high=worst.ci_high, ci_level=worst.ci_level,
        ci_method=worst.ci_method, ci_unreliable=worst.ci_unreliable,
        p_value=p_adj, p_adj=p_adj, p_adj_method=f"bonferroni over {len(ps)} components" if ps else None,
        n=worst.n, direction="lower_is_better", variant="implicit",
        description=f"largest of {len(finite)} components (attained by {worst.name}); p = Bonferroni-adjusted "
        "smallest component p (any group gap at all)", **power,
    )


__all__ = ["GapTest", "NameUnit", "STRATUM", "gap_test", "group_distance", "group_metrics", "hash_seed",
           "headline", "holm_by_family", "holm_family", "nanmean", "needed_per_stratum"]
