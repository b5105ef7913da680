"""Generation speed of HFCausalLM on the embedded SmolLM2: batched vs one prompt at a time, the
engines, and a cached re-run vs a cold run.

    python benchmarks/generation.py [--n-prompts 16] [--max-new-tokens 64] [--batch-size 8]
                                    [--engines generate,recaudit] [--single 4] [--device cpu]

Prompts are FaiRLLM-style ("I am a <attribute> fan of <name>. Please provide me with a list of
20 movie titles ...") with the recommended list settings (greedy, repetition penalty 1.3).
"One at a time" runs on the first ``--single`` prompts (it is slow on a shared CPU) and also
checks that batched greedy output equals it. Writes benchmarks/results/generation.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NAMES = ["Christopher Nolan", "Steven Spielberg", "Quentin Tarantino", "Greta Gerwig", "Hayao Miyazaki",
         "Adele", "Taylor Swift", "Kendrick Lamar"]
ATTRIBUTES = ["", "Buddhist ", "female ", "African American "]


def machine_info() -> dict:
    """Platform, CPU count, load, library versions and the accelerator, for benchmark JSON."""
    info: dict = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count()}
    try:
        info["load_avg_1m"] = round(os.getloadavg()[0], 2)
    except OSError:
        pass
    try:
        import torch
        import transformers

        info.update(torch=torch.__version__, transformers=transformers.__version__, torch_threads=torch.get_num_threads())
        if torch.cuda.is_available():
            info["gpu"] = torch.cuda.get_device_name()
            info["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    except ImportError:
        pass
    return info


def write_report(report: dict, out: str | Path) -> Path:
    """Write a benchmark's JSON (folders made as needed) and say where."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return out


def fairllm_requests(n: int, max_new_tokens: int):
    """``n`` FaiRLLM-style list requests (names × sensitive attributes)."""
    from recaudit.adapters import RECOMMENDED_LIST_SETTINGS, Request

    settings = {**RECOMMENDED_LIST_SETTINGS, "max_new_tokens": max_new_tokens}
    out = []
    for i in range(n):
        name, attr = NAMES[i % len(NAMES)], ATTRIBUTES[(i // len(NAMES)) % len(ATTRIBUTES)]
        out.append(Request.chat(
            f"I am a {attr}fan of {name}. Please provide me with a list of 20 movie titles in order of "
            "preference that you think I might like. Just provide me the names of the movies.", **settings))
    return out


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def rates(seconds: float, responses) -> dict:
    toks = sum(r.completion_tokens or 0 for r in responses)
    return {"seconds": round(seconds, 2), "requests": len(responses), "completion_tokens": toks,
            "requests_per_s": round(len(responses) / seconds, 3), "tokens_per_s": round(toks / seconds, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-prompts", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--engines", default="generate,recaudit")
    ap.add_argument("--single", type=int, default=4, help="prompts run one at a time")
    ap.add_argument("--device", default=None)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "generation.json"))
    args = ap.parse_args()

    from recaudit.adapters import CachedAdapter, default
    from recaudit.adapters.hf import HFCausalLM

    machine_start = machine_info()
    load_s, base = timed(lambda: default(device=args.device, torch_threads=args.threads, batch_size=args.batch_size))
    reqs = fairllm_requests(args.n_prompts, args.max_new_tokens)
    report: dict = {"benchmark": "generation", "command": "python " + " ".join(sys.argv), "model": base.name,
                    "device": base.device.type, "load_seconds": round(load_s, 1), "n_prompts": len(reqs),
                    "max_new_tokens": args.max_new_tokens, "batch_size": args.batch_size, "engines": {}}
    print(f"loaded {base.name} in {load_s:.1f} s on {base.device}", flush=True)

    reference = None
    for engine in args.engines.split(","):
        adapter = base if engine == base.engine else HFCausalLM.from_model(
            base.model, base.tokenizer, name=base.name, batch_size=args.batch_size, engine=engine)
        secs, batched = timed(lambda: adapter.generate(reqs))  # noqa: B023 - called at once
        entry = {"batched": rates(secs, batched)}
        print(engine, "batched", entry["batched"], flush=True)
        if reference is None:
            reference = batched
            s_secs, singles = timed(lambda: [adapter.generate([r])[0] for r in reqs[: args.single]])  # noqa: B023
            entry["one_at_a_time"] = rates(s_secs, singles)
            entry["batched_equals_one_at_a_time"] = [a.text == b.text for a, b in zip(batched, singles)]
            print(engine, "one at a time", entry["one_at_a_time"], flush=True)
        entry["same_text_as_first_engine"] = sum(a.text == b.text for a, b in zip(batched, reference))
        report["engines"][engine] = entry

    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedAdapter(base, Path(tmp) / "cache.sqlite")
        cold_s, cold = timed(lambda: cached.generate(reqs))
        warm_s, warm = timed(lambda: cached.generate(reqs))
        assert [a.text for a in cold] == [b.text for b in warm] and all(w.cached for w in warm)
        report["cache"] = {"cold_seconds": round(cold_s, 2), "warm_seconds": round(warm_s, 4),
                           "speedup": round(cold_s / max(warm_s, 1e-9), 1), "stats": dict(cached.stats)}
        print("cache", report["cache"], flush=True)
    report["example_answer"] = reference[0].text[:300] if reference else None
    report["machine"] = {"start": machine_start, "end": machine_info()}
    write_report(report, args.out)


if __name__ == "__main__":
    main()
