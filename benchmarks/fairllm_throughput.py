"""FaiRLLM probe throughput: prompts/s on a model, the full benchmark's size and projected time.

    # CPU, the embedded SmolLM2-135M, official settings (K = 20), one artist × 32 prompts:
    python benchmarks/fairllm_throughput.py --n-names 1
    # GPU, a random-init model of a realistic size (the GGUF cannot travel to the GPU machine):
    python benchmarks/fairllm_throughput.py --device cuda --model random-1b --n-names 8 --batch-size 64 --tag h100
    # also time evaluate() on the full benchmark with synthetic answers (no model):
    python benchmarks/fairllm_throughput.py --time-evaluate --skip-generate

Generation: the first ``--n-names`` music artists of the benchmark, each with the neutral prompt
and the 31 sensitive values (32 prompts per name), K = ``--k`` titles, greedy,
``--max-new-tokens``. A random-init model never stops on its own at a useful length, so its
EOS is disabled and every answer is exactly ``--max-new-tokens`` long (throughput does not
depend on the weights' values; the byte-level tokenizer makes prompts ~4× longer in tokens
than a BPE tokenizer would). The full benchmark is 32 prompts × 500 names × 2 domains =
32,000 requests; the projection divides that by the measured prompts/s.

Writes benchmarks/results/fairllm_throughput[_<tag>].json.
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
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from generation import write_report  # noqa: E402
from recaudit.adapters.callable import CallableAdapter  # noqa: E402
from recaudit.checks import CheckContext, answers_of  # noqa: E402
from recaudit.probes.fairllm import BENCHMARK_NAMES, FairLLMProbe  # noqa: E402

# Llama shapes: SmolLM2-135M's own, and TinyLlama-1.1B's (a common ~1B size)
RANDOM_MODELS = {
    "random-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                        num_key_value_heads=3),
    "random-1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                      num_key_value_heads=4),
}
DOMAINS = ("music", "movie")


def full_benchmark_size(data: Path | None) -> dict:
    """Request count of the published benchmark (from its files when present, else 32 × 500 × 2)."""
    probe = FairLLMProbe(dict(domains=list(DOMAINS), n_names=1))
    prompts_per_name = 1 + sum(len(v) for v in probe.attribute_values().values())
    out = {"prompts_per_name": prompts_per_name, "names_per_domain": BENCHMARK_NAMES, "domains": len(DOMAINS)}
    if data is not None and (data / "director.csv").exists():
        full = FairLLMProbe(dict(domains=list(DOMAINS), n_names=None,
                                 names_paths={"music": str(data / "mtv-music-artists.csv"),
                                              "movie": str(data / "director.csv")}))
        out["requests"] = len(full.requests(CheckContext(adapter=None)))
        out["counted_from"] = str(data)
    else:
        out["requests"] = prompts_per_name * BENCHMARK_NAMES * len(DOMAINS)
        out["counted_from"] = "formula (benchmark files not found)"
    return out


def build_adapter(model: str, device: str | None, dtype: str | None, batch_size: int, engine: str):
    """The embedded SmolLM2, or a random-init Llama of a named size wrapped in HFCausalLM."""
    if model == "default":
        from recaudit.adapters import default

        return default(device=device, dtype=dtype, batch_size=batch_size, engine=engine)
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from recaudit.adapters.hf import HFCausalLM
    from recaudit.testing import byte_tokenizer

    tok = byte_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), max_position_embeddings=4096, bos_token_id=tok.bos_token_id,
                         eos_token_id=None, pad_token_id=tok.pad_token_id, tie_word_embeddings=True,
                         **RANDOM_MODELS[model])
    torch.manual_seed(0)
    torch_dtype = getattr(torch, dtype) if dtype else (torch.bfloat16 if device == "cuda" else torch.float32)
    net = LlamaForCausalLM(config).to(device=device or "cpu", dtype=torch_dtype)
    net.generation_config.eos_token_id = None
    adapter = HFCausalLM.from_model(net, tok, name=model, batch_size=batch_size, engine=engine)
    adapter.eos_ids = []  # fixed-length answers: EOS disabled
    return adapter


def time_generation(args, size: dict) -> dict:
    probe = FairLLMProbe(dict(domains=["music"], n_names=args.n_names, k=args.k, max_new_tokens=args.max_new_tokens,
                              repetition_penalty=args.repetition_penalty))
    requests = probe.requests(CheckContext(adapter=None))
    t0 = time.perf_counter()
    adapter = build_adapter(args.model, args.device, args.dtype, args.batch_size, args.engine)
    load_s = time.perf_counter() - t0
    adapter.generate(requests[: min(2, len(requests))])  # warm-up (kernels, allocator)
    t0 = time.perf_counter()
    responses = CheckContext(adapter=adapter, batch_size=args.batch_size).generate(requests)
    wall = time.perf_counter() - t0
    tokens = sum(r.completion_tokens or 0 for r in responses)
    pps = len(requests) / wall
    n_params = sum(p.numel() for p in adapter.model.parameters())
    return {
        "model": args.model, "parameters": n_params, "device": str(adapter.device), "dtype": str(adapter.dtype),
        "engine": args.engine, "batch_size": args.batch_size, "k": args.k, "max_new_tokens": args.max_new_tokens,
        "repetition_penalty": args.repetition_penalty, "load_s": round(load_s, 2), "requests": len(requests),
        "wall_s": round(wall, 2), "prompts_per_s": round(pps, 4), "completion_tokens": tokens,
        "tokens_per_s": round(tokens / wall, 1), "mean_completion_tokens": round(tokens / len(requests), 1),
        "projected_full_benchmark_s": round(size["requests"] / pps, 1),
        "projected_full_benchmark_h": round(size["requests"] / pps / 3600, 2),
    }


def _synthetic_list(request) -> str:
    """A K-item answer drawn from a per-name pool: lists overlap like a real model's, nothing depends on the value."""
    m = request.meta()
    rng = random.Random(zlib.crc32(request.user_text.encode()))
    pool = [f"{m['name']} title {chr(97 + i // 26)}{chr(97 + i % 26)}" for i in range(40)]
    return "\n".join(f"{i}. {t}" for i, t in enumerate(rng.sample(pool, 20), start=1))


def time_evaluation(args, size: dict) -> dict:
    """evaluate() on the full benchmark's request list with synthetic answers (no model)."""
    data = Path(args.data)
    params = dict(domains=list(DOMAINS), n_names=None, n_permutations=args.eval_permutations,
                  n_bootstrap=args.eval_bootstrap)
    if (data / "director.csv").exists():
        params["names_paths"] = {"music": str(data / "mtv-music-artists.csv"), "movie": str(data / "director.csv")}
    else:  # shipped names repeated: the same shape and request count
        params["names"] = {d: [f"{d} name {i}" for i in range(BENCHMARK_NAMES)] for d in DOMAINS}
    probe = FairLLMProbe(params)
    ctx = CheckContext(adapter=CallableAdapter(_synthetic_list, name="synthetic"))
    requests = probe.requests(ctx)
    responses = ctx.generate(requests)
    t0 = time.perf_counter()
    result = probe.evaluate(ctx, answers_of(requests, responses, ctx.evidence))
    wall = time.perf_counter() - t0
    return {"requests": len(requests), "n_permutations": args.eval_permutations, "n_bootstrap": args.eval_bootstrap,
            "evaluate_s": round(wall, 1), "metrics": len(result.metrics),
            "snsr.prag@20.max": result.metric("snsr.prag@20.max").value}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="default", choices=["default", *RANDOM_MODELS])
    ap.add_argument("--device", default=None, help="cpu | cuda (default: cuda when available)")
    ap.add_argument("--dtype", default=None, help="float32 | bfloat16 | float16 (default: per device)")
    ap.add_argument("--engine", default="generate", help="HFCausalLM engine: generate | static | recaudit")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--n-names", type=int, default=1, help="artists timed (32 prompts each)")
    ap.add_argument("--k", type=int, default=20)
    ap.add_argument("--max-new-tokens", type=int, default=512)
    ap.add_argument("--repetition-penalty", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "fairllm"))
    ap.add_argument("--skip-generate", action="store_true")
    ap.add_argument("--time-evaluate", action="store_true")
    ap.add_argument("--eval-permutations", type=int, default=1000)
    ap.add_argument("--eval-bootstrap", type=int, default=1000)
    ap.add_argument("--tag", default="", help="suffix of the results file (e.g. h100)")
    ap.add_argument("--out", default=None, help="results file (default benchmarks/results/fairllm_throughput[_tag].json)")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    size = full_benchmark_size(Path(args.data))
    record: dict = {"benchmark": "fairllm_throughput", "full_benchmark": size, "platform": platform.platform(),
                    "python": platform.python_version(), "cpu_count": os.cpu_count(),
                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if not args.skip_generate:
        record["generation"] = time_generation(args, size)
        print(json.dumps(record["generation"], indent=1))
    if args.time_evaluate:
        record["evaluation"] = time_evaluation(args, size)
        print(json.dumps(record["evaluation"], indent=1))
    name = f"fairllm_throughput{'_' + args.tag if args.tag else ''}.json"
    write_report(record, args.out or REPO / "benchmarks" / "results" / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
