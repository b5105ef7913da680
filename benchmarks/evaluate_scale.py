"""Time each probe's ``evaluate`` (and ``prepare`` separately) as its sample grows: 1×, 4×, 16× the default.

    python benchmarks/evaluate_scale.py            # FaiRLLM and implicit_names, plus FaiRLLM at 32,000 answers
    python benchmarks/evaluate_scale.py --no-full  # skip the 32,000-answer run

Answers come from a CallableAdapter (no model): FaiRLLM gets K titles drawn from a per-name pool
(lists overlap like a real model's; nothing depends on the value). Writes
benchmarks/results/evaluate_scale.json. item_fairness and exposure need a catalogue and
interactions and are not timed here yet.
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
from recaudit.checks import CheckContext  # noqa: E402
from recaudit.probes.fairllm import BENCHMARK_NAMES, FairLLMProbe  # noqa: E402
from recaudit.probes.implicit_names import ImplicitNamesProbe  # noqa: E402


def _synthetic_list(request) -> str:
    m = request.meta()
    rng = random.Random(zlib.crc32(request.user_text.encode()))
    pool = [f"{m.get('name', 'x')} title {chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]
    return "\n".join(f"{i}. {t}" for i, t in enumerate(rng.sample(pool, 20), start=1))


def time_probe(probe) -> dict:
    """Requests, answers, then prepare over all answers and evaluate, each timed alone."""
    ctx = CheckContext(adapter=CallableAdapter(_synthetic_list, name="synthetic"))
    requests = probe.requests(ctx)
    responses = ctx.generate(requests)
    t0 = time.perf_counter()
    for q, r in zip(requests, responses):
        probe.prepare(ctx, q, r)
    prep = time.perf_counter() - t0
    t0 = time.perf_counter()
    result = probe.evaluate(ctx, requests, responses)
    wall = time.perf_counter() - t0
    return {"answers": len(requests), "prepare_s": round(prep, 3), "evaluate_s": round(wall, 3),
            "evaluate_ms_per_answer": round(1000 * wall / len(requests), 3), "metrics": len(result.metrics)}


def fairllm(n_names: int) -> FairLLMProbe:
    names = {d: [f"{d} name {i}" for i in range(n_names)] for d in ("music", "movie")}
    return FairLLMProbe(dict(domains=["music", "movie"], n_names=n_names, names=names))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-full", action="store_true", help="skip FaiRLLM at 32,000 answers")
    ap.add_argument("--implicit-scales", default="1", help="scales for implicit_names (its evaluate is slow: 55 s at 1x)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "evaluate_scale.json"))
    args = ap.parse_args()
    record: dict = {"benchmark": "evaluate_scale", "platform": platform.platform(), "cpu_count": os.cpu_count(),
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "probes": {}}
    base_f = FairLLMProbe.Params().n_names
    base_i = ImplicitNamesProbe.Params().n_names
    for scale in (1, 4, 16):
        record["probes"].setdefault("fairllm", {})[f"{scale}x"] = time_probe(fairllm(base_f * scale))
        if str(scale) in args.implicit_scales.split(","):
            record["probes"].setdefault("implicit_names", {})[f"{scale}x"] = time_probe(
                ImplicitNamesProbe(dict(n_names=base_i * scale)))
        print(json.dumps({k: v.get(f"{scale}x") for k, v in record["probes"].items()}), flush=True)
    if not args.no_full:
        record["probes"]["fairllm"]["full_benchmark"] = time_probe(fairllm(BENCHMARK_NAMES))
        print(json.dumps(record["probes"]["fairllm"]["full_benchmark"]), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
