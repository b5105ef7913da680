"""Item-side fairness probes: validity on planted recommenders, then SmolLM2 on MovieLens 100K beside baselines.

    python benchmarks/item_fairness.py [--data ../shared/data] [--fairness-users 25] [--exposure-users 20]
                                       [--strategies simple,diversify,...] [--skip-model] [--cache runs/item_fairness.sqlite]

1. Validity (no model, synthetic catalogue of 600 items whose genres are independent of
   popularity): the item_fairness and exposure probes on three reference recommenders —
   always-most-popular, uniform random, and a history-proportional sampler (same bucket and
   genres as random history items). Expected: DGU and Gini far higher for always-popular; every
   GU of the proportional sampler within its CI of 0.
2. Real run: SmolLM2-135M-Instruct (recaudit.adapters.default(), CPU, greedy, repetition penalty
   1.3) on MovieLens 100K users: item_fairness in generate-then-ground mode (BIGRec-style, all
   1,682 items, MiniLM embedding fallback), and the exposure grid (strategies × plain/fair
   system role), each beside TopPop, ItemKNN and BPR-MF fitted on the same training split.
   Responses are cached (SQLite) so a re-run only re-computes metrics.
Writes benchmarks/results/item_fairness.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from generation import machine_info  # noqa: E402

from recaudit.adapters import CallableAdapter  # noqa: E402
from recaudit.checks import CheckContext  # noqa: E402
from recaudit.probes.item_common import popularity_membership, split_users, training_interactions  # noqa: E402
from recaudit.probes.item_reference import (  # noqa: E402
    history_proportional,
    most_popular,
    synthetic_world,
    uniform_random,
)
from recaudit.probes.exposure import STRATEGIES, ExposureProbe  # noqa: E402
from recaudit.probes.item_fairness import ItemFairnessProbe  # noqa: E402
from recaudit.results import CheckResult  # noqa: E402

OUT = REPO / "benchmarks" / "results" / "item_fairness.json"


def metric_dict(result: CheckResult, prefixes: tuple[str, ...]) -> dict:
    """Selected metrics as {name: [value, ci_low, ci_high]} (rounded)."""
    r = lambda x: None if x is None else round(float(x), 4)  # noqa: E731
    return {m.name: [r(m.value), r(m.ci_low), r(m.ci_high)] for m in result.metrics if m.name.startswith(prefixes)}


def validity() -> dict:
    """The planted recommenders on the synthetic catalogue."""
    catalog, inter = synthetic_world()
    fair_params = dict(n_users=150, min_history=10, use_embeddings=False, n_bootstrap=1000, ci_level=0.99, baselines=[])
    probe = ItemFairnessProbe(fair_params)
    splits = split_users(inter, probe.params, "item_fairness")
    membership, _ = popularity_membership(catalog, training_interactions(inter, splits), probe.params.n_buckets)
    recommenders = {
        "most_popular": most_popular(catalog, 10),
        "uniform_random": uniform_random(catalog, 10),
        "history_proportional_k5": history_proportional(catalog, splits, {i: g[0] for i, g in membership.items()}, 5),
    }
    out: dict = {"catalogue_items": len(catalog), "users": len(splits), "ci_level": 0.99}
    for name, fn in recommenders.items():
        ctx = CheckContext(adapter=CallableAdapter(fn), catalog=catalog, interactions=inter)
        fair = probe.run(ctx)
        row = metric_dict(fair, ("gu.", "dgu.", "mgu."))
        if name != "history_proportional_k5":
            exposure = ExposureProbe(dict(fair_params, strategies=["simple"], system_prompts=["normal"])).run(ctx)
            row.update(metric_dict(exposure, ("exposure.", "coverage.")))
        gus = [m for m in fair.metrics if m.name.startswith("gu.")]
        row["gu_cis_containing_0"] = f"{sum(m.ci_low <= 0 <= m.ci_high for m in gus)}/{len(gus)}"
        out[name] = row
    return out


def real_run(args) -> dict:
    """SmolLM2 on MovieLens 100K users, beside the classical baselines."""
    from recaudit.adapters import CachedAdapter, default
    from recaudit.data.loaders import load_movielens_100k

    catalog, inter = load_movielens_100k(Path(args.data) / "ml-100k")
    t0 = time.perf_counter()
    model = default(torch_threads=args.threads)
    load_s = time.perf_counter() - t0
    adapter = CachedAdapter(model, args.cache)
    ctx = CheckContext(adapter=adapter, catalog=catalog, interactions=inter, batch_size=args.batch_size)
    common = dict(k=10, history_len=10, max_new_tokens=args.max_new_tokens, seed=args.seed, n_bootstrap=1000)
    out: dict = {"model": model.fingerprint.get("name", "SmolLM2"), "model_load_s": round(load_s, 1),
                 "dataset": "ml-100k", "catalogue_items": len(catalog), "settings": common}

    t = time.perf_counter()
    fair = ItemFairnessProbe(dict(common, n_users=args.fairness_users, mode="generate")).run(ctx)
    out["item_fairness"] = {
        "wall_s": round(time.perf_counter() - t, 1), "users": args.fairness_users, "generations": args.fairness_users,
        "metrics": metric_dict(fair, ("gu.popularity", "dgu.", "mgu.", "baseline.", "grounded_rate", "parse_rate",
                                      "hit_rate", "history_repeat_rate")),
        "gu_table_popularity": fair.tables[0].rows,
        "grounding": dict(next(tb for tb in fair.tables if tb.name == "grounding").rows),
        "examples": [e.fields for e in fair.examples[:2]],
    }

    strategies = args.strategies.split(",")
    t = time.perf_counter()
    exposure = ExposureProbe(dict(common, n_users=args.exposure_users, strategies=strategies)).run(ctx)
    grid = next(tb for tb in exposure.tables if tb.name == "exposure_grid")
    keep = ["recommender", "grounded_rate", "gini", "gini_ci_low", "gini_ci_high", "hhi", "entropy", "coverage",
            "median_year", "std_year", "hit_rate"]
    out["exposure"] = {
        "wall_s": round(time.perf_counter() - t, 1), "users": args.exposure_users, "strategies": strategies,
        "generations": args.exposure_users * len(strategies) * 2,
        "grid": [{c: (round(v, 4) if isinstance(v, float) else v) for c, v in zip(grid.columns, row) if c in keep}
                 for row in grid.rows],
        "gini_change_fair": metric_dict(exposure, ("exposure.gini_change",)),
        "history_median_year": exposure.metric("history.median_year").value,
    }
    out["cache"] = dict(adapter.stats)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--fairness-users", type=int, default=25)
    ap.add_argument("--exposure-users", type=int, default=20)
    ap.add_argument("--strategies", default=",".join(STRATEGIES))
    ap.add_argument("--max-new-tokens", type=int, default=160)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache", default=str(REPO / "runs" / "item_fairness_cache.sqlite"))
    ap.add_argument("--skip-model", action="store_true")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args()

    result: dict = {"machine": machine_info()}
    t = time.perf_counter()
    result["validity"] = validity()
    result["validity"]["wall_s"] = round(time.perf_counter() - t, 1)
    print(json.dumps(result["validity"], indent=1)[:3000], flush=True)
    if not args.skip_model:
        result["smollm2_movielens"] = real_run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, default=str) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
