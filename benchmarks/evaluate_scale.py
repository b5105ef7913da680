"""Time each probe's ``evaluate`` (and ``prepare`` separately) as its sample grows: 1×, 4×, 16× the default.

    taskset -c 0 python benchmarks/evaluate_scale.py  # every probe at 1x/4x/16x, FaiRLLM at 32,000 answers
    python benchmarks/evaluate_scale.py --no-full     # skip the 32,000-answer runs
    python benchmarks/evaluate_scale.py --probes fairllm --implicit-scales 1,4

Answers come from a CallableAdapter (no model): FaiRLLM gets K titles drawn from a per-name pool
(lists overlap like a real model's; nothing depends on the value); item_fairness and exposure get
K uniformly random titles of a synthetic catalogue (``item_reference.synthetic_world``), grounded
title by title without embeddings and without classical baselines (their training is not
``evaluate``'s scaling). FaiRLLM at 32,000 answers runs in its default variant (the notebook's)
and in ``paper``. ``evaluate_cpu_s`` is the process CPU time (on a shared machine the wall time
also counts other jobs). Writes benchmarks/results/evaluate_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
import zlib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recaudit.adapters.callable import CallableAdapter  # noqa: E402
from recaudit.checks import CheckContext, answers_of  # noqa: E402
from recaudit.probes.item_reference import synthetic_world, uniform_random  # noqa: E402
from recaudit.probes.exposure import ExposureProbe  # noqa: E402
from recaudit.probes.fairllm import BENCHMARK_NAMES, FairLLMProbe  # noqa: E402
from recaudit.probes.implicit_names import ImplicitNamesProbe  # noqa: E402
from recaudit.probes.item_fairness import ItemFairnessProbe  # noqa: E402

ITEM_FAST = dict(use_embeddings=False, baselines=[])


def _synthetic_list(request) -> str:
    m = request.meta()
    rng = random.Random(zlib.crc32(request.user_text.encode()))
    pool = [f"{m.get('name', 'x')} title {chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]
    return "\n".join(f"{i}. {t}" for i, t in enumerate(rng.sample(pool, 20), start=1))


def time_probe(probe, world=None, repeats: int = 1) -> dict:
    """Requests, answers, then prepare over all answers and evaluate, each timed alone (best of ``repeats``)."""
    if world is None:
        ctx = CheckContext(adapter=CallableAdapter(_synthetic_list, name="synthetic"))
    else:
        catalog, inter = world
        fn = uniform_random(catalog, probe.params.k)
        ctx = CheckContext(adapter=CallableAdapter(fn, name="uniform"), catalog=catalog, interactions=inter)
    requests = probe.requests(ctx)
    responses = ctx.generate(requests)
    answers = answers_of(requests, responses, ctx.evidence)  # bound: evaluate's marking is timed, as in a run
    runs = []
    for _ in range(repeats):  # prepare again each time: evaluate takes (empties) the parsed-answer memo
        t0 = time.perf_counter()
        for q, r in zip(requests, responses):
            probe.prepare(ctx, q, r)
        prep = time.perf_counter() - t0
        t0, c0 = time.perf_counter(), time.process_time()
        result = probe.evaluate(ctx, answers)
        runs.append((time.perf_counter() - t0, time.process_time() - c0, prep))
    wall, cpu, _ = min(runs)
    prep = runs[0][2]  # the first: later ones reuse the parser's line cache
    out = {"answers": len(requests), "prepare_s": round(prep, 3), "evaluate_s": round(wall, 3),
           "evaluate_cpu_s": round(cpu, 3), "evaluate_ms_per_answer": round(1000 * wall / len(requests), 3),
           "metrics": len(result.metrics)}
    if repeats > 1:
        out["evaluate_s_all"] = [round(w, 3) for w, _, _ in runs]
    return out


def fairllm(n_names: int, **extra) -> FairLLMProbe:
    names = {d: [f"{d} name {i}" for i in range(n_names)] for d in ("music", "movie")}
    return FairLLMProbe(dict(domains=["music", "movie"], n_names=n_names, names=names, **extra))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-full", action="store_true", help="skip FaiRLLM at 32,000 answers")
    ap.add_argument("--repeats", type=int, default=3, help="evaluate runs at 32,000 answers (the best is reported)")
    ap.add_argument("--probes", default="fairllm,implicit_names,item_fairness,exposure")
    ap.add_argument("--scales", default="1,4,16", help="multiples of each probe's default sample")
    ap.add_argument("--implicit-scales", default="1,4,10", help="scales for implicit_names (16x needs 32 names per "
                    "gender and locale; ja_JP has 21 unambiguous female ones)")
    ap.add_argument("--merge", action="store_true", help="add to the probes already in --out (a resumed run)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "evaluate_scale.json"))
    args = ap.parse_args()
    record: dict = {"benchmark": "evaluate_scale", "platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "cpu_affinity": sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "probes": {}}
    wanted = args.probes.split(",")
    scales = [int(x) for x in args.scales.split(",")]
    base_item = ItemFairnessProbe.Params().n_users
    base_exp = ExposureProbe.Params().n_users
    world = synthetic_world(n_users=max(scales) * max(base_item, base_exp) + 50) if {"item_fairness", "exposure"} & set(wanted) else None
    runs = {
        "fairllm": lambda s: time_probe(fairllm(FairLLMProbe.Params().n_names * s)),
        "implicit_names": lambda s: time_probe(ImplicitNamesProbe(dict(n_names=ImplicitNamesProbe.Params().n_names * s))),
        "item_fairness": lambda s: time_probe(ItemFairnessProbe(dict(
            ITEM_FAST, n_users=base_item * s, list_construction="ground-titles")), world),
        "exposure": lambda s: time_probe(ExposureProbe(dict(ITEM_FAST, n_users=base_exp * s)), world),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.exists():
        before = json.loads(out.read_text())
        record["probes"], record["resumed_at"] = before["probes"], record["measured_at"]
        record["measured_at"] = before.get("measured_at")

    def save() -> None:  # after every measurement: a later failure keeps what was measured
        out.write_text(json.dumps(record, indent=1) + "\n")

    if not args.no_full and "fairllm" in wanted:
        for key, extra in (("full_benchmark", {}), ("full_benchmark_paper", {"variant": "paper"})):
            record["probes"].setdefault("fairllm", {})[key] = {**time_probe(fairllm(BENCHMARK_NAMES, **extra), repeats=args.repeats),
                                                               "variant": extra.get("variant", "fairllm-notebook")}
            print(json.dumps(record["probes"]["fairllm"][key]), flush=True)
            save()
    plan = [(s, n) for s in scales for n in wanted if n != "implicit_names"]
    if "implicit_names" in wanted:
        plan += [(int(s), "implicit_names") for s in args.implicit_scales.split(",")]
    for scale, name in sorted(plan, key=lambda sn: sn[0]):
        try:
            record["probes"].setdefault(name, {})[f"{scale}x"] = runs[name](scale)
        except ValueError as exc:  # e.g. not enough names at this scale: say so, measure the rest
            record["probes"].setdefault(name, {})[f"{scale}x"] = {"error": str(exc)}
        print(json.dumps({name: record["probes"][name][f"{scale}x"], "scale": scale}), flush=True)
        save()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
