"""Validity of the item-side statistics by simulation (issue 17 Must-show, item_fairness and exposure).

Planted and null recommenders through ``Probe.run`` with a ``CallableAdapter`` (false-flag rates and
power), and metric-level simulations for interval coverage (the estimand θ_n of pooled exposure
statistics is the expected value at n users; ``recaudit.metrics.concentration``). Writes
benchmarks/results/validity_itemfair.json.

    python benchmarks/validity_itemfair.py            # full (a few minutes on 2 cores)
    python benchmarks/validity_itemfair.py --quick    # seconds, checks the script
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recaudit.adapters import CallableAdapter  # noqa: E402
from recaudit.checks import CheckContext  # noqa: E402
from recaudit.metrics.concentration import STAT_NAMES, jackknife_change, jackknife_interval, row_stats  # noqa: E402
from recaudit.metrics.group import group_unfairness, group_unfairness_report, gu_jackknife, gu_tests  # noqa: E402
from recaudit.metrics.multiplicity import holm  # noqa: E402
from recaudit.probes.item_common import popularity_membership, split_users, training_interactions  # noqa: E402
from recaudit.probes.item_reference import (  # noqa: E402
    exposure_population,
    group_population,
    history_proportional,
    popularity_sampler,
    popularity_swap,
    synthetic_world,
)
from recaudit.probes.exposure import ExposureProbe  # noqa: E402
from recaudit.probes.item_fairness import ItemFairnessProbe  # noqa: E402

OUT = Path(__file__).resolve().parent / "results" / "validity_itemfair.json"
VALIDITY = OUT.with_name("validity.json")  # issue 17's one file: a section per script


def write_section(name: str, out: dict) -> None:
    """Put ``out`` under ``name`` in benchmarks/results/validity.json, keeping the other scripts' sections."""
    merged = json.loads(VALIDITY.read_text()) if VALIDITY.exists() else {}
    merged[name] = out
    VALIDITY.write_text(json.dumps(merged, indent=1, default=float) + "\n")


def item_fairness_runs(n_users: int, seeds: int, share: float, world) -> dict:
    """Probe-level: history-proportional recommender (k = 5 of 10 history items), optionally with a planted swap."""
    catalog, inter = world
    flags = {"popularity": 0, "genre": 0, "dgu.popularity": 0, "dgu.genre": 0}
    floor = None
    for seed in range(seeds):
        probe = ItemFairnessProbe(dict(use_embeddings=False, baselines=[], n_users=n_users, min_history=10, seed=seed,
                                       n_bootstrap=0, k=5, list_construction="ground-titles"))
        splits = split_users(inter, probe.params, "item_fairness")
        mem, _ = popularity_membership(catalog, training_interactions(inter, splits), 5)
        bucket = {i: g[0] for i, g in mem.items()}
        fn = history_proportional(catalog, splits, bucket, k=5, seed=seed)
        if share:
            fn = popularity_swap(fn, catalog, bucket, "b4", share, seed)
        res = probe.run(CheckContext(adapter=CallableAdapter(fn), catalog=catalog, interactions=inter))
        for g in ("popularity", "genre"):
            flags[g] += any(m.p_adj is not None and m.p_adj < 0.05 for m in res.metrics if m.name.startswith(f"gu.{g}."))
            flags[f"dgu.{g}"] += res.metric(f"dgu.{g}").p_value < 0.05
        floor = res.metric("dgu.popularity").p_floor
    return {"n_users": n_users, "seeds": seeds, "planted_swap": share, "p_floor": floor,
            **{f"rate_{k}": v / seeds for k, v in flags.items()}}


def exposure_runs(n_users: int, seeds: int, share: float, world, target: str = "b4") -> dict:
    """Probe-level: a role-blind popularity sampler; planted = the 'fair' role swaps ``share`` of items to the top
    popularity bucket (``b4``, 20% of the catalogue) or to the 20 most popular items (``head``)."""
    catalog, inter = world
    hits, floor = 0, None
    for seed in range(seeds):
        probe = ExposureProbe(dict(use_embeddings=False, baselines=[], n_users=n_users, min_history=5, seed=seed,
                                   n_bootstrap=0, strategies=["simple"]))
        splits = split_users(inter, probe.params, "exposure")
        mem, _ = popularity_membership(catalog, training_interactions(inter, splits), 5)
        bucket = {i: g[0] for i, g in mem.items()}
        if target == "head":
            head = {it.item_id for it in sorted(catalog.items, key=lambda it: (-it.popularity, it.item_id))[:20]}
            bucket = {i: "head" if i in head else "rest" for i in bucket}
        fn = popularity_sampler(catalog, 10, seed=seed, power=0.5)
        if share:
            fn = popularity_swap(fn, catalog, bucket, target, share, seed, when=lambda r: r.meta().get("system") == "fair")
        res = probe.run(CheckContext(adapter=CallableAdapter(fn), catalog=catalog, interactions=inter))
        m = res.metric("exposure.gini_change.simple.fair")
        hits += m.p_value < 0.05
        floor = m.p_floor
    return {"n_users": n_users, "seeds": seeds, "planted_swap": share, "swap_to": target, "p_floor": floor,
            "rate_gini_change_p<0.05": hits / seeds}


def gu_test_rates(n_users: int, seeds: int, swap: float, concentration: float = 2.0) -> float:
    """Share of runs with some group's Holm-adjusted GU p < 0.05 (users of Dirichlet taste ``concentration``)."""
    draw, rng = group_population(concentration=concentration), np.random.default_rng(n_users + int(swap * 100))
    out = 0
    for s in range(seeds):
        rec, ref = draw(n_users, rng, swap)
        out += np.nanmin(holm(gu_tests(rec, ref, 1000, s).gu_p)) < 0.05
    return out / seeds


def exposure_coverage(n: int, reps: int, truth_draws: int, change: bool) -> dict:
    draw = exposure_population(n_items=1682)
    rng = np.random.default_rng(1000 + n + change)
    shift = 0.1 if change else 0.0
    ta = {s: [] for s in STAT_NAMES}
    tb = {s: [] for s in STAT_NAMES}
    for _ in range(truth_draws):
        a = draw(n, rng).sum(axis=0)
        b = draw(n, rng, shift).sum(axis=0) if change else None
        for s in STAT_NAMES:
            ta[s].append(row_stats(a, s)[0])
            if change:
                tb[s].append(row_stats(b, s)[0])
    truth = {s: (np.mean(tb[s]) - np.mean(ta[s])) if change else np.mean(ta[s]) for s in STAT_NAMES}
    hits = {s: 0 for s in STAT_NAMES}
    width = {s: [] for s in STAT_NAMES}
    for _ in range(reps):
        a = draw(n, rng)
        b = draw(n, rng, shift) if change else None
        for s in STAT_NAMES:
            iv = jackknife_change(a, b, s) if change else jackknife_interval(a, s)
            hits[s] += iv.low <= truth[s] <= iv.high
            width[s].append(iv.high - iv.low)
    return {s: {"coverage": hits[s] / reps, "mean_width": float(np.mean(width[s])), "truth": float(truth[s])} for s in STAT_NAMES}


def gu_bootstrap_coverage(n: int, reps: int, truth_draws: int, n_boot: int) -> dict:
    """Coverage of the percentile-bootstrap CIs of GU per group, DGU and MGU, of their expected values at n users."""
    draw, rng = group_population(), np.random.default_rng(77 + n)
    groups = [f"b{j}" for j in range(5)]
    sims = [draw(n, rng, 0.2) for _ in range(truth_draws)]
    gus = np.array([group_unfairness(r, h) for r, h in sims])
    truth_gu = gus.mean(axis=0)
    truth_d = np.mean([g.max() - g.min() for g in gus])
    truth_m = np.mean([np.abs(g).mean() for g in gus])
    hit_gu, hit_j, hit_d, hit_m = np.zeros(5), np.zeros(5), 0, 0
    for r in range(reps):
        rec, ref = draw(n, rng, 0.2)
        rep = group_unfairness_report(rec, ref, groups, n_boot, 0.95, r)
        hit_gu += [g.ci_low <= t <= g.ci_high for g, t in zip(rep.groups, truth_gu)]
        _, lo, hi = gu_jackknife(rec, ref)
        hit_j += (lo <= truth_gu) & (truth_gu <= hi)
        hit_d += rep.dgu_ci[0] <= truth_d <= rep.dgu_ci[1]
        hit_m += rep.mgu_ci[0] <= truth_m <= rep.mgu_ci[1]
    return {"gu_per_group_bootstrap": (hit_gu / reps).round(3).tolist(),
            "gu_per_group_jackknife_t (used)": (hit_j / reps).round(3).tolist(),
            "dgu_bootstrap": hit_d / reps, "mgu_bootstrap": hit_m / reps}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--only-coverage", action="store_true", help="re-run exposure_coverage only, into the existing JSON")
    args = ap.parse_args()
    q = args.quick
    if args.only_coverage:
        old = json.loads(OUT.read_text())
        t0 = time.time()
        old["exposure_coverage"] = {f"n{n}{'_change' if ch else ''}": exposure_coverage(n, 400, 1000, ch)
                                    for n in (10, 40) for ch in (False, True)}
        old["seconds_exposure_coverage"] = round(time.time() - t0, 1)
        OUT.write_text(json.dumps(old, indent=2, default=float))
        write_section("itemfair", old)
        print(json.dumps(old["exposure_coverage"], indent=1, default=float))
        return
    t0 = time.time()
    world = synthetic_world(n_users=400)
    out: dict = {"platform": platform.platform(), "quick": q}
    out["item_fairness_probe"] = [item_fairness_runs(14, 5 if q else 100, 0.0, world)] + [
        item_fairness_runs(n, 3 if q else 20, 0.2, world) for n in (14, 30, 60, 120)]
    out["gu_test_metric_level"] = {
        "fwer_null_n14": gu_test_rates(14, 50 if q else 1000, 0.0),
        "fwer_null_n14_one_taste": gu_test_rates(14, 50 if q else 1000, 0.0, concentration=50.0),
        "power_planted_20pct": {n: gu_test_rates(n, 10 if q else 100, 0.2) for n in (14, 30, 60, 120)},
    }
    out["exposure_probe"] = [exposure_runs(10, 5 if q else 100, 0.0, world)] + [
        exposure_runs(n, 3 if q else 20, 0.2, world, target) for target in ("b4", "head") for n in (10, 20, 40)]
    reps, truth = (50, 100) if q else (400, 1000)
    out["exposure_coverage"] = {f"n{n}{'_change' if ch else ''}": exposure_coverage(n, reps, truth, ch)
                                for n in (10, 40) for ch in (False, True)}
    out["gu_interval_coverage"] = {f"n{n}": gu_bootstrap_coverage(n, 30 if q else 300, 100 if q else 2000, 200)
                                    for n in (14, 56)}
    out["seconds"] = round(time.time() - t0, 1)
    OUT.parent.mkdir(exist_ok=True)
    path = OUT.with_name("validity_itemfair_quick.json") if q else OUT
    path.write_text(json.dumps(out, indent=2, default=float))
    if not q:
        write_section("itemfair", out)
    print(json.dumps(out, indent=2, default=float))


if __name__ == "__main__":
    main()
