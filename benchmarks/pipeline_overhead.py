"""recaudit's own cost around its decode engine, as a ratio of the engine's time, on a real model.

    # GPU (the SmolLM2 GGUF copied to the machine), FaiRLLM requests, 512 slots:
    python benchmarks/pipeline_overhead.py --gguf /tmp/m/SmolLM2-135M-Instruct.Q4_1.gguf --device cuda \\
        --slots 512 --names 32 --catalog ml-100k/ --parity 64
    # CPU, the embedded default, a few requests:
    python benchmarks/pipeline_overhead.py --names 1 --slots 8 --max-new-tokens 64

What a FaiRLLM-style audit does per request, timed stage by stage on one run:

- engine: ``DecodeEngine.generate`` alone (prefill + decode, the GPU work);
- adapter: everything else inside ``CachedAdapter(HFCausalLM(engine="recaudit")).generate`` —
  chat templating and tokenising prompts, decoding tokens to text, the SQLite cache lookups and
  writes (cold cache);
- parse: ``text.parse_list`` on every response (robust mode, K items);
- ground: ``text.Grounder`` (exact → rapidfuzz; no embeddings) on every parsed title against a
  catalogue (MovieLens 100K with ``--catalog``, else the shipped demo catalogue).

overhead ratio = (adapter + parse + ground) ÷ engine; the issue's target is ≤ 0.10. Also the warm
re-run (everything from the cache) vs the cold run, and with ``--parity N`` greedy token-for-token
agreement of the engine with ``model.generate`` on N requests in float32 and bfloat16.
Writes benchmarks/results/pipeline_overhead[_<tag>].json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# tokenizers stay parallel (their default, as in a recaudit run): prompt encoding is batched
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from generation import machine_info, write_report  # noqa: E402


def load_adapter(gguf: str | None, device: str | None, dtype: str | None, slots: int, engine: str):
    """HFCausalLM on a GGUF file, or the embedded default when ``gguf`` is None."""
    if gguf is None:
        from recaudit.adapters import default

        return default(device=device, dtype=dtype, batch_size=slots, engine=engine)
    from recaudit.adapters.hf import HFCausalLM

    path = Path(gguf)
    return HFCausalLM(path.parent, gguf_file=path.name, device=device, dtype=dtype, batch_size=slots, engine=engine)


def fairllm_requests(names: int, k: int, max_new_tokens: int, repetition_penalty: float):
    """The FaiRLLM probe's own requests (music and movie: neutral + 31 sensitive values per name)."""
    from recaudit.checks import CheckContext
    from recaudit.probes.fairllm import FairLLMProbe

    probe = FairLLMProbe(dict(domains=["music", "movie"], n_names=names, k=k, max_new_tokens=max_new_tokens,
                              repetition_penalty=repetition_penalty))  # fmt: skip
    return probe.requests(CheckContext(adapter=None))


def load_catalog(path: str | None):
    """MovieLens 100K's catalogue from ``path``, else the shipped demo catalogue."""
    from recaudit.data.loaders import demo_catalog, load_movielens_100k

    return load_movielens_100k(Path(path))[0] if path else demo_catalog()


class EngineTimer:
    """Wraps ``DecodeEngine.generate`` to add up the seconds spent inside it (GPU synchronised)."""

    def __init__(self, engine):
        self.engine, self.seconds, self.calls = engine, 0.0, 0
        self._inner = engine.generate
        engine.generate = self

    def __call__(self, *args, **kwargs):
        import torch

        sync = torch.cuda.synchronize if self.engine.device.type == "cuda" else (lambda: None)
        sync()
        t = time.perf_counter()
        out = self._inner(*args, **kwargs)
        sync()
        self.seconds += time.perf_counter() - t
        self.calls += 1
        return out


def time_pipeline(adapter, requests, catalog, k: int) -> dict:
    """Stage times of one cold run, and the warm re-run."""
    from recaudit.adapters.cache import CachedAdapter
    from recaudit.text.ground import Grounder
    from recaudit.text.parse import parse_list

    t = time.perf_counter()
    # warm-up with full slots, so the timed run reuses the captured (and compiled) decode step
    adapter.generate(requests[: max(2, min(len(requests), getattr(adapter, "batch_size", 2)))])
    warmup_s = time.perf_counter() - t
    timer = EngineTimer(adapter._engine())
    with tempfile.TemporaryDirectory() as tmp:
        cached = CachedAdapter(adapter, Path(tmp) / "cache.sqlite")
        t = time.perf_counter()
        responses = cached.generate(requests)
        cold = time.perf_counter() - t
        t = time.perf_counter()
        again = cached.generate(requests)
        warm = time.perf_counter() - t
        cached.close()
    assert [r.text for r in again] == [r.text for r in responses]
    t = time.perf_counter()
    parsed = [parse_list(r.text, k) for r in responses]
    parse_s = time.perf_counter() - t
    titles = [it for p in parsed for it in p.items]
    grounder = Grounder(catalog, use_embeddings=False)
    t = time.perf_counter()
    groundings = grounder.ground(titles)
    ground_s = time.perf_counter() - t
    engine_s = timer.seconds
    adapter_s = cold - engine_s
    tokens = sum(r.completion_tokens or 0 for r in responses)
    return {
        "requests": len(requests), "completion_tokens": tokens,
        "mean_completion_tokens": round(tokens / len(requests), 1),
        "engine_s": round(engine_s, 4), "engine_calls": timer.calls, "engine_tokens_per_s": round(tokens / engine_s, 1),
        "adapter_s": round(adapter_s, 4), "parse_s": round(parse_s, 4), "ground_s": round(ground_s, 4),
        "titles": len(titles), "grounded": sum(g.grounded for g in groundings),
        "overhead_ratio": round((adapter_s + parse_s + ground_s) / engine_s, 4),
        "overhead_ms_per_request": round((adapter_s + parse_s + ground_s) / len(requests) * 1e3, 4),
        "warmup_s": round(warmup_s, 2), "cold_s": round(cold, 4), "warm_s": round(warm, 4), "warm_speedup": round(cold / warm, 1),
        "parse_ok": sum(p.ok for p in parsed), "engine_stats": dict(timer.engine.stats),
    }


def parity(gguf: str | None, device: str | None, requests, dtype: str, compile: bool = False) -> dict:
    """Greedy engine output vs ``model.generate`` (same batch) on the real checkpoint."""
    ref = load_adapter(gguf, device, dtype, len(requests), "generate")
    eng = load_adapter(gguf, device, dtype, len(requests), "recaudit")
    eng._engine().compile = compile
    a = ref.generate(requests)
    b = eng.generate(requests)
    ta = [ref.tokenizer(x.text, add_special_tokens=False)["input_ids"] for x in a]
    tb = [eng.tokenizer(x.text, add_special_tokens=False)["input_ids"] for x in b]
    first = [next((j for j, (u, v) in enumerate(zip(x, y)) if u != v), None if len(x) == len(y) else min(len(x), len(y)))
             for x, y in zip(ta, tb)]  # fmt: skip
    return {"dtype": dtype, "compile": compile, "engine_stats": dict(eng._engine().stats), "requests": len(requests),
            "identical_texts": sum(x.text == y.text for x, y in zip(a, b)),
            "first_divergence_token": [d for d in first if d is not None][:20]}  # fmt: skip


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", default=None, help="a .gguf file (default: the embedded SmolLM2)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--dtype", default=None, help="float32 | bfloat16 (default: per device)")
    ap.add_argument("--slots", type=int, default=8, help="engine slots (HFCausalLM batch_size)")
    ap.add_argument("--names", type=int, default=1, help="directors × 32 prompts")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--repetition-penalty", type=float, default=1.3)
    ap.add_argument("--catalog", default=None, help="MovieLens 100K folder to ground against (default: demo)")
    ap.add_argument("--compile", choices=["auto", "on", "off"], default="auto", help="engine torch.compile")
    ap.add_argument("--parity", type=int, default=0, help="requests for the engine-vs-generate check (0 = skip)")
    ap.add_argument("--tag", default="")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    requests = fairllm_requests(args.names, args.k, args.max_new_tokens, args.repetition_penalty)
    t = time.perf_counter()
    adapter = load_adapter(args.gguf, args.device, args.dtype, args.slots, "recaudit")
    load_s = time.perf_counter() - t
    adapter._engine().compile = {"auto": None, "on": True, "off": False}[args.compile]
    record: dict = {"benchmark": "pipeline_overhead", "command": "python " + " ".join(sys.argv),
                    "model": adapter.name, "device": str(adapter.device), "dtype": str(adapter.dtype),
                    "slots": args.slots, "load_s": round(load_s, 2), "max_new_tokens": args.max_new_tokens,
                    "repetition_penalty": args.repetition_penalty}  # fmt: skip
    record["machine"] = machine_info()
    record["pipeline"] = time_pipeline(adapter, requests, load_catalog(args.catalog), args.k)
    print(json.dumps(record["pipeline"], indent=1), flush=True)
    out = args.out or REPO / "benchmarks" / "results" / f"pipeline_overhead{'_' + args.tag if args.tag else ''}.json"
    write_report(record, out)  # saved now too: the parity checks below load the model three more times
    del adapter
    if args.parity:
        sub = requests[: args.parity]
        record["parity"] = []
        cuda = (args.device or "").startswith("cuda")
        for dtype, comp in (("float32", False), ("bfloat16", False), ("float32", True)) if cuda else (("float32", False),):
            try:
                record["parity"].append(parity(args.gguf, args.device, sub, dtype, comp))
            except Exception as e:  # keep the pipeline numbers if one check fails
                record["parity"].append({"dtype": dtype, "error": f"{type(e).__name__}: {e}"})
            print(record["parity"][-1], flush=True)
    write_report(record, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
