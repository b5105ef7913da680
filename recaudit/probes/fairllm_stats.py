"""Statistics of the FaiRLLM probe: Sim(a) per value, SNSR/SNSV per attribute, the headline max.

Pure functions of the similarity tensors (instructions × values × K per metric and attribute)
that ``FairLLMProbe.evaluate`` builds; CIs resample instructions and p-values shuffle value labels
within instructions (see ``recaudit.probes.fairllm`` for the design). The permutation nulls of
each attribute are kept in ``nulls`` so the headline's joint null reuses the same draws. ``p`` is
the probe's ``FairLLMParams`` (not imported here: that would make an import circle).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from recaudit.metrics.intervals import SPREAD_CI_COVERAGE, T_MIN_N, t_interval
from recaudit.metrics.multiplicity import adjust as holm
from recaudit.metrics.power import TARGET_FLOOR, disclose, within_block_floor, within_block_needed_n
from recaudit.metrics.list_similarity import snsr, snsv
from recaudit.metrics.resampling import pvalue
from recaudit.metrics.stats import bootstrap_counts, row_shuffled_means
from recaudit.results import CheckResult, MetricValue
from recaudit.text.prompts import slug


def attribute_metrics(
    p: Any, result: CheckResult, sims, attrs: dict[str, list[str]], instructions: list[str], cells,
    suffix: str, sim_rows: list[list], snsr_rows: list[list], scope: str, nulls: dict[tuple[str, str], np.ndarray],
) -> None:
    """Sim(a) per value with t CIs, SNSR/SNSV per attribute with bootstrap CIs, permutation p and Holm."""
    k = p.k
    level, nb, seed = p.ci_level, p.n_bootstrap, p.seed
    n = len(instructions)
    family: dict[str, list[MetricValue]] = {m: [] for m in p.metrics}
    for a_idx, (attr, values) in enumerate(attrs.items()):
        rates = [parse_rate(cells, instructions, attr, v) for v in values]
        value_stats: dict[str, list] = {v: [] for v in values}
        for m_idx, metric in enumerate(p.metrics):
            at_k = sims[metric][attr][:, :, k - 1]  # instructions × values
            sub_seed = seed + 1000 * a_idx + m_idx
            for v_idx, value in enumerate(values):
                mean, lo, hi = t_interval(at_k[:, v_idx], level)
                unreliable = n < T_MIN_N
                value_stats[value] += [mean, lo, hi]
                result.metrics.append(MetricValue(
                    name=f"sim.{metric}@{k}.{attr}.{slug(value)}{suffix}", value=mean,
                    ci_low=lo, ci_high=hi, ci_level=level, ci_method="t", ci_unreliable=unreliable, n=n,
                    direction="neutral", variant=p.variant,
                    description=f"mean {metric}@{k} of '{value}' lists vs neutral lists"
                    + (f"; t interval unreliable below {T_MIN_N} instructions (simulated coverage)" if unreliable else ""),
                ))
            means = at_k.mean(axis=0)
            r_ci, v_ci = _spread_cis(at_k, nb, level, sub_seed, p.snsr_ci_method)
            null = None
            p_val = None
            if p.n_permutations > 0:
                # = _power.range_null_within_blocks (same draws), without its gather
                shuffled = row_shuffled_means(at_k, p.n_permutations, np.random.default_rng(sub_seed))
                null = shuffled.max(axis=1) - shuffled.min(axis=1)
                p_val = pvalue(snsr(means), null)
                if not scope:
                    nulls[(metric, attr)] = null
            power = disclose(
                within_block_floor(len(values), n), p.n_permutations, null, "instructions",
                within_block_needed_n(len(values), TARGET_FLOOR),
            ) if null is not None else None
            snsr_mv = MetricValue(
                name=f"snsr.{metric}@{k}.{attr}{suffix}", value=snsr(means), ci_low=r_ci[0], ci_high=r_ci[1],
                ci_level=level, ci_method=f"bootstrap-{p.snsr_ci_method}" if nb else None, ci_unreliable=True,
                p_value=p_val, n=n, direction="lower_is_better", variant=p.variant,
                description=f"max − min over {attr} values of Sim(a) ({metric}@{k}); its interval is biased near "
                f"0 (a range) and flagged unreliable ({SPREAD_CI_COVERAGE}): read the p-value",
                **(power.fields() if power else {}),
            )
            result.metrics.append(snsr_mv)
            family[metric].append(snsr_mv)
            result.metrics.append(MetricValue(
                name=f"snsv.{metric}@{k}.{attr}{suffix}", value=snsv(means), ci_low=v_ci[0], ci_high=v_ci[1],
                ci_level=level, ci_method=f"bootstrap-{p.snsr_ci_method}" if nb else None, ci_unreliable=True,
                n=n, direction="lower_is_better", variant=p.variant,
                description=f"population std over {attr} values of Sim(a) ({metric}@{k}); interval flagged unreliable ({SPREAD_CI_COVERAGE})",
            ))
            snsr_rows.append([
                scope or "all", attr, metric, snsr(means), r_ci[0], r_ci[1], p_val, None, snsv(means), v_ci[0],
                v_ci[1], values[int(np.argmax(means))], values[int(np.argmin(means))],
            ])
        for value, rate in zip(values, rates):
            sim_rows.append([scope or "all", attr, value, n, rate] + value_stats[value])
    # Holm over the attributes of one metric and scope; the table rows get the adjusted p too
    adjusted: dict[str, float | None] = {}
    for metric, members in family.items():
        what = f"holm over {len(members)} attributes (snsr.{metric}@{k}.*{suffix})"
        for mv, adj in zip(members, holm([mv.p_value for mv in members])):
            mv.p_adj, mv.p_adj_method = adj, what if adj is not None else None
            adjusted[mv.name] = adj
    start = len(snsr_rows) - sum(len(v) for v in family.values())
    for row in snsr_rows[start:]:
        row[7] = adjusted.get(f"snsr.{row[2]}@{k}.{row[1]}{suffix}")

def headline_metrics(
    p: Any, result: CheckResult, sims, attrs: dict[str, list[str]], nulls: dict[tuple[str, str], np.ndarray],
) -> None:
    """snsr.<metric>@K.max: the largest SNSR over attributes, tested with all attributes shuffled jointly."""
    k = p.k
    n = next(iter(sims[p.metrics[0]].values())).shape[0]
    for m_idx, metric in enumerate(p.metrics):
        blocks = [sims[metric][a][:, :, k - 1] for a in attrs]
        ranges = [snsr(b.mean(axis=0)) for b in blocks]
        worst = list(attrs)[int(np.argmax(ranges))]
        lo = hi = None
        if p.n_bootstrap:
            # the draws of default_rng(seed + m_idx).integers(0, n, (B, n)), as counts: one product per block
            counts = bootstrap_counts(n, p.n_bootstrap, p.seed + m_idx)
            boot = np.max([np.ptp(counts @ b / n, axis=1) for b in blocks], axis=0)
            lo, hi = _interval(boot, max(ranges), p.ci_level, p.snsr_ci_method)
        pval, power = None, None
        if p.n_permutations:
            # each attribute's null was drawn independently: their elementwise max is the null of
            # shuffling within (instruction, attribute) jointly, so p accounts for taking the max
            null = np.max([nulls[(metric, a)] for a in attrs], axis=0)
            pval = pvalue(max(ranges), null)
            widths = [len(v) for v in attrs.values()]
            power = disclose(
                min(within_block_floor(w, n) for w in widths), p.n_permutations, null, "instructions",
                min(within_block_needed_n(w, TARGET_FLOOR) for w in widths),
            )
        result.metrics.append(MetricValue(
            name=f"snsr.{metric}@{k}.max", value=max(ranges), ci_low=lo, ci_high=hi, ci_level=p.ci_level,
            ci_method=f"bootstrap-{p.snsr_ci_method}" if p.n_bootstrap else None, ci_unreliable=True,
            p_value=pval, n=n, direction="lower_is_better", variant=p.variant,
            # the max's null is Westfall-Young single-step max-T: p controls the FWER, so p_adj = p
            p_adj=pval, p_adj_method=f"max-T over {len(attrs)} attributes" if pval is not None else None,
            description=f"largest SNSR ({metric}@{k}) over attributes (attained by {worst}); p accounts for the max",
            **(power.fields() if power else {}),
        ))


def parse_rate(cells, instructions, attr: str, value: str) -> float:
    """Share of an (attribute, value)'s answers over ``instructions`` that parsed to K items."""
    oks = [cells[(i, attr, value)].ok for i in instructions if (i, attr, value) in cells]
    return float(np.mean(oks)) if oks else math.nan


def _interval(boot: np.ndarray, value: float, level: float, method: str) -> tuple[float, float]:
    alpha = (1 - level) / 2
    lo, hi = np.quantile(boot, [alpha, 1 - alpha])
    if method == "basic":  # reflect around the estimate: removes the bootstrap's own upward bias of a range
        lo, hi = max(0.0, 2 * value - hi), max(0.0, 2 * value - lo)
    return float(lo), float(hi)


def _spread_cis(at_k: np.ndarray, n_bootstrap: int, level: float, seed: int, method: str):
    """Bootstrap intervals of SNSR (range) and SNSV (std) of the column means, resampling instructions."""
    if n_bootstrap == 0 or at_k.shape[0] < 2:
        return (None, None), (None, None)
    n = at_k.shape[0]  # _power.bootstrap_rows's draws (default_rng(seed).integers), as a count matrix
    boot = bootstrap_counts(n, n_bootstrap, seed) @ at_k / n
    means = at_k.mean(axis=0)
    return (_interval(np.ptp(boot, axis=1), snsr(means), level, method),
            _interval(boot.std(axis=1), snsv(means), level, method))
