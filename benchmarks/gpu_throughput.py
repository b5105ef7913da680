"""Decode throughput on a GPU: one prompt at a time vs batched ``generate`` vs the recaudit engine.

    PYTHONPATH=. python benchmarks/gpu_throughput.py [--batches 128,512] [--new-tokens 200]

A randomly initialised ~1.1B Llama (hidden 2048, 22 layers, 32 heads, 4 KV heads, vocab 32,000,
bf16; throughput does not depend on the weights' values), 70-token prompts, exactly
``--new-tokens`` new tokens per prompt (EOS ignored), greedy. Reports tokens/s, decode
steps/s and the ratio of the weight-bandwidth bound (weight bytes per step × steps/s ÷
3.35 TB/s, the H100 SXM's HBM3 bandwidth; the device's own nominal bandwidth too). Then
projects the full FaiRLLM request mix (32 prompts × 500 names × 2 domains = 32,000 generations
of 200 tokens) from a continuous-batching run of ``--mix-requests`` requests.
Writes benchmarks/results/gpu_throughput.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from generation import machine_info, write_report  # noqa: E402

H100_BANDWIDTH = 3.35e12  # bytes/s, the figure performance.md uses
NOMINAL_BANDWIDTH = {"H100": 3.35e12, "H200": 4.8e12}
# dense bf16 tensor-core peak of the SXM parts (H100 and H200 share the GH100 compute)
BF16_PEAK_FLOPS = 989e12
FAIRLLM_GENERATIONS = 32 * 500 * 2


DEVICE = "cuda"  # "cpu" only with --smoke: a tiny model that checks the script runs, measures nothing


def build_model(seed: int = 0, smoke: bool = False):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    size = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4) if smoke else \
        dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32)
    config = LlamaConfig(
        vocab_size=32000, num_key_value_heads=4, max_position_embeddings=2048,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, tie_word_embeddings=False, **size,
    )
    torch.manual_seed(seed)
    with torch.device(DEVICE):
        model = LlamaForCausalLM(config).to(torch.float32 if smoke else torch.bfloat16).eval()
    return model


def _sync():
    import torch

    if DEVICE == "cuda":
        torch.cuda.synchronize()


def time_generate(model, prompts, new_tokens: int, **kw) -> float:
    """Seconds for one batched ``generate`` over equal-length prompts (EOS suppressed)."""
    import torch

    ids = torch.tensor(prompts, device=DEVICE)
    _sync()
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0, **kw)
    _sync()
    assert out.shape[1] == ids.shape[1] + new_tokens
    return time.perf_counter() - t


def run_engine(engine, prompts, new_tokens: int):
    from recaudit.adapters.hf.types import GenSettings

    settings = GenSettings(max_new_tokens=new_tokens, do_sample=False, temperature=1.0, top_p=1.0,
                           repetition_penalty=1.0, stop=(), seed=0)
    _sync()
    t = time.perf_counter()
    out = engine.generate(prompts, settings, ignore_eos=True)
    _sync()
    assert all(len(g.token_ids) == new_tokens for g in out)
    return time.perf_counter() - t, out


def _attempt(fn) -> dict:
    try:
        return fn()
    except Exception as e:  # keep the other measurements if one part fails
        return {"error": f"{type(e).__name__}: {e}"}


def agreement_with_generate(model, prompts, prompt_len: int, new_tokens: int = 64) -> dict:
    """Greedy tokens of the engine vs generate in bf16 (near-ties of a random model may flip a token)."""
    import torch

    from recaudit.adapters.hf.engine import DecodeEngine

    _, mine = run_engine(DecodeEngine(model, eos_ids=[2], pad_id=0, max_batch=len(prompts)), prompts, new_tokens)
    ids = torch.tensor(prompts, device=DEVICE)
    with torch.inference_mode():
        ref = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                             min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)[:, prompt_len:].tolist()
    first_diff = [next((j for j, (a, c) in enumerate(zip(m.token_ids, r)) if a != c), None) for m, r in zip(mine, ref)]
    return {"prompts": len(prompts), "new_tokens": new_tokens, "identical": sum(d is None for d in first_diff),
            "first_divergence": first_diff}


def fairllm_mix(model, prompts, slots: int, n_requests: int, new_tokens: int, compile: bool = False) -> dict:
    """Continuous-batching run of ``n_requests`` and the projection to the full FaiRLLM benchmark."""
    from recaudit.adapters.hf.engine import DecodeEngine

    eng = DecodeEngine(model, eos_ids=[2], pad_id=0, max_batch=slots, compile=compile)
    t = time.perf_counter()
    run_engine(eng, prompts[:slots], new_tokens)  # capture (and compile)
    first = time.perf_counter() - t
    secs, _ = run_engine(eng, prompts[:n_requests], new_tokens)
    tps = n_requests * new_tokens / secs
    return {"requests": n_requests, "slots": slots, "compile": compile, "first_call_seconds": round(first, 2),
            "new_tokens": new_tokens, "seconds": round(secs, 2),
            "tokens_per_s": round(tps, 1), "engine_stats": eng.stats, "fairllm_generations": FAIRLLM_GENERATIONS,
            "fairllm_projected_minutes": round(FAIRLLM_GENERATIONS * new_tokens / tps / 60, 2)}


def tiny_parity_cuda() -> dict:
    """Greedy texts of HFCausalLM engine='recaudit' (CUDA graph) vs 'generate' on the tiny model in float32."""
    import tempfile

    import torch

    from recaudit.adapters.base import Request
    from recaudit.adapters.hf import HFCausalLM
    from recaudit.testing import tiny_causal_lm

    with tempfile.TemporaryDirectory() as tmp:
        ref = HFCausalLM(tiny_causal_lm(tmp), device="cuda", dtype="float32", batch_size=3)
    with torch.no_grad():
        for name, p in ref.model.named_parameters():
            if "norm" not in name:
                p.mul_(4.0)
    eng = HFCausalLM.from_model(ref.model, ref.tokenizer, batch_size=3, engine="recaudit")
    reqs = [Request.chat("tell me " * (1 + 2 * i) + str(i), answer_prefix="abcdefg"[i], max_new_tokens=24,
                         repetition_penalty=rp) for i in range(7) for rp in (1.0, 1.3)]
    a, b = ref.generate(reqs), eng.generate(reqs)
    return {"requests": len(reqs), "identical": sum(x.text == y.text for x, y in zip(a, b)),
            "engine_stats": eng._engine().stats}


KERNEL_KINDS = (  # first match wins; names of cuBLAS/CUTLASS/Triton/ATen kernels
    ("gemm", ("gemm", "nvjet", "cutlass", "sm90_xmma", "sm80_xmma", "cublas", "matmul")),
    ("softmax", ("softmax",)),
    ("index/scatter", ("index", "scatter", "gather")),
    ("reduce", ("reduce",)),
    ("copy/cast", ("copy", "cast", "convert")),
    ("cat", ("cat",)),
    ("triton (fused)", ("triton",)),
    ("elementwise", ("elementwise", "vectorized", "unrolled")),
)


def _kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS if any(k in low for k in keys)), "other")


def profile_decode(model, prompts, slots: int, steps: int = 32, compile: bool = False) -> dict:
    """GPU kernel time per decode step by kernel kind (torch.profiler), decode steps only.

    The engine is set up by a short generate (buffers, graph capture, compile), then ``steps``
    bare decode steps run under the profiler: eager (one launch per kernel) and as graph replays.
    Kernel time ÷ unprofiled wall time per step says whether a step is bound by its kernels (then
    only fusion or faster kernels help) or by the gaps between them.
    """
    import torch
    from torch.profiler import ProfilerActivity, profile

    from recaudit.adapters.hf.engine import DecodeEngine

    out: dict = {"slots": slots, "steps": steps, "compile": compile}
    variants = (("eager", False), ("cuda_graph", True)) if not compile else (("cuda_graph", True),)
    for label, graphs in variants:
        eng = DecodeEngine(model, eos_ids=[2], pad_id=0, max_batch=slots, cuda_graphs=graphs, compile=compile)
        run_engine(eng, prompts[:slots], 8)  # buffers, capture, compile
        length = eng.cols.shape[0]
        with torch.inference_mode():
            eng._step_logits(length)
            _sync()
            t = time.perf_counter()
            for _ in range(steps):
                eng._step_logits(length)
            _sync()
            wall = (time.perf_counter() - t) / steps
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                for _ in range(steps):
                    eng._step_logits(length)
                _sync()
        kinds: dict[str, dict] = {}
        top = []
        for e in prof.key_averages():
            dev_us = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0) or 0
            if dev_us <= 0 or getattr(e, "device_type", None) is not None and "CUDA" not in str(e.device_type):
                continue
            k = kinds.setdefault(_kernel_kind(e.key), {"us_per_step": 0.0, "launches_per_step": 0.0})
            k["us_per_step"] += dev_us / steps
            k["launches_per_step"] += e.count / steps
            top.append((dev_us / steps, e.count / steps, e.key[:90]))
        top.sort(reverse=True)
        total = sum(k["us_per_step"] for k in kinds.values())
        out[label] = {
            "wall_ms_per_step": round(wall * 1e3, 3),
            "kernel_ms_per_step": round(total / 1e3, 3),
            "kernel_launches_per_step": round(sum(k["launches_per_step"] for k in kinds.values()), 1),
            "by_kind": {k: {"ms_per_step": round(v["us_per_step"] / 1e3, 3), "launches_per_step": round(v["launches_per_step"], 1)}
                        for k, v in sorted(kinds.items(), key=lambda kv: -kv[1]["us_per_step"])},
            "top_kernels": [{"us_per_step": round(us, 1), "launches_per_step": round(c, 1), "name": nm} for us, c, nm in top[:15]],
        }
        del eng
        torch.cuda.empty_cache()
    return out


FLOPS_PER_TOKEN = 0.0  # set in main(): 2 × matmul parameters (embedding lookup excluded)


def row(name: str, batch: int, n_prompts: int, new_tokens: int, seconds: float, weight_bytes: int, bw: float) -> dict:
    """One measurement with its two roofline ratios.

    A decode step reads every weight once (bandwidth floor: weight bytes ÷ bandwidth) and does
    2 × params × batch FLOPs (compute floor: that ÷ bf16 peak); at large batches the compute floor
    is the higher one, so the bandwidth ratio alone understates how close a step is to the hardware.
    """
    steps = new_tokens * max(1, n_prompts // batch)
    steps_s = steps / seconds
    step_floor = max(weight_bytes / bw, FLOPS_PER_TOKEN * batch / BF16_PEAK_FLOPS)
    return {
        "engine": name, "batch": batch, "prompts": n_prompts, "new_tokens": new_tokens, "seconds": round(seconds, 3),
        "tokens_per_s": round(n_prompts * new_tokens / seconds, 1), "decode_steps_per_s": round(steps_s, 2),
        "bandwidth_bound_ratio_h100": round(weight_bytes * steps_s / H100_BANDWIDTH, 4),
        "bandwidth_bound_ratio_device": round(weight_bytes * steps_s / bw, 4),
        "mfu_bf16": round(FLOPS_PER_TOKEN * batch * steps_s / BF16_PEAK_FLOPS, 4),
        "roofline_ratio": round(step_floor * steps_s, 4),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batches", default="128,512")
    ap.add_argument("--new-tokens", type=int, default=200)
    ap.add_argument("--prompt-len", type=int, default=70)
    ap.add_argument("--single-prompts", type=int, default=2, help="prompts for the one-at-a-time baseline")
    ap.add_argument("--mix-requests", type=int, default=4096, help="requests in the FaiRLLM-mix run (0 to skip)")
    ap.add_argument("--static-generate", default="", help="batches at which to also time generate(cache_implementation='static') (slow warm-up)")
    ap.add_argument("--skip-generate-batch", default="", help="batches at which plain generate is not timed")
    ap.add_argument("--no-eager", action="store_true", help="skip the engine's eager (no CUDA graph) rows")
    ap.add_argument("--compile-batches", default="", help="batches at which to also time the engine with torch.compile")
    ap.add_argument("--mix-slots", default="", help="slot counts for the FaiRLLM-mix run (default: the largest batch)")
    ap.add_argument("--mix-compile", action="store_true", help="also run the mix with torch.compile")
    ap.add_argument("--smoke", action="store_true", help="tiny model on the CPU: checks the script, measures nothing")
    ap.add_argument("--profile-batch", type=int, default=0, help="profile decode kernels at this batch (0 = skip)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "gpu_throughput.json"))
    args = ap.parse_args()

    import torch

    from recaudit.adapters.hf.engine import DecodeEngine

    global DEVICE
    if args.smoke:
        DEVICE = "cpu"
    elif not torch.cuda.is_available():
        sys.exit("gpu_throughput.py needs a CUDA GPU (or --smoke)")
    t0 = time.perf_counter()
    model = build_model(smoke=args.smoke)
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    global FLOPS_PER_TOKEN
    FLOPS_PER_TOKEN = 2.0 * sum(p.numel() for n, p in model.named_parameters() if "embed_tokens" not in n)
    name = torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (smoke)"
    bw = next((v for k, v in NOMINAL_BANDWIDTH.items() if k in name), H100_BANDWIDTH)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e9:.3f}B params, {weight_bytes / 1e9:.2f} GB, "
          f"built in {time.perf_counter() - t0:.1f} s on {name}", flush=True)
    g = torch.Generator().manual_seed(0)
    batches = [int(b) for b in args.batches.split(",")]
    n_max = max(batches)
    mix_max = max([int(x) for x in args.mix_slots.split(",") if x] + [n_max, args.mix_requests])
    prompts = torch.randint(3, 32000, (mix_max, args.prompt_len), generator=g).tolist()
    results: list[dict] = []
    N = args.new_tokens

    # warm-up (cuBLAS handles, allocator)
    time_generate(model, prompts[:2], 8)
    single = sum(time_generate(model, [p], N) for p in prompts[: args.single_prompts])
    results.append(row("generate, one prompt at a time", 1, args.single_prompts, N, single, weight_bytes, bw))
    print(results[-1], flush=True)

    skip = {int(b) for b in args.skip_generate_batch.split(",") if b}
    for b in batches:
        if b not in skip:
            results.append(row("generate (dynamic cache)", b, b, N, time_generate(model, prompts[:b], N), weight_bytes, bw))
            print(results[-1], flush=True)
        if str(b) in args.static_generate.split(","):
            t_warm = time.perf_counter()
            time_generate(model, prompts[:b], N, cache_implementation="static")  # compiles
            warm = time.perf_counter() - t_warm
            results.append(row("generate (static cache, compiled)", b, b, N,
                               time_generate(model, prompts[:b], N, cache_implementation="static"), weight_bytes, bw))
            results[-1]["first_call_seconds"] = round(warm, 2)
            print(results[-1], flush=True)
        variants = [(True, False)] + ([] if args.no_eager else [(False, False)])
        if str(b) in args.compile_batches.split(","):
            variants.append((True, True))
        for graphs, comp in variants:
            label = f"recaudit engine ({'CUDA graph' if graphs else 'eager'}{' + torch.compile' if comp else ''})"
            try:
                eng = DecodeEngine(model, eos_ids=[2], pad_id=0, max_batch=b, cuda_graphs=graphs, compile=comp)
                t_warm = time.perf_counter()
                run_engine(eng, prompts[:b], N)  # first call captures the CUDA graph
                warm = time.perf_counter() - t_warm
                secs, _ = run_engine(eng, prompts[:b], N)
            except Exception as e:  # keep the other measurements if one path fails
                results.append({"engine": label, "batch": b, "error": f"{type(e).__name__}: {e}"})
                print(results[-1], flush=True)
                continue
            r = row(label, b, b, N, secs, weight_bytes, bw)
            r["first_call_seconds"] = round(warm, 2)
            results.append(r)
            print(results[-1], flush=True)
            del eng
            torch.cuda.empty_cache()

    mix = []
    if args.mix_requests:
        for slots in [int(x) for x in (args.mix_slots or str(n_max)).split(",")]:
            for comp in (False, True) if args.mix_compile else (False,):
                m = _attempt(lambda: fairllm_mix(model, prompts, slots, args.mix_requests, N, compile=comp))  # noqa: B023
                mix.append(m)
                print("FaiRLLM mix:", m, flush=True)
    agreement = _attempt(lambda: agreement_with_generate(model, prompts[:16], args.prompt_len))
    print("agreement with generate (bf16):", agreement, flush=True)
    parity = _attempt(tiny_parity_cuda) if DEVICE == "cuda" else None
    print("tiny model, float32 on CUDA, engine vs generate:", parity, flush=True)
    for r in results:
        if "tokens_per_s" in r:
            r["fairllm_projected_minutes"] = round(FAIRLLM_GENERATIONS * N / r["tokens_per_s"] / 60, 2)
    profile_out = None
    if args.profile_batch:
        profile_out = _attempt(lambda: profile_decode(model, prompts, args.profile_batch))
        print("profile:", json.dumps(profile_out, indent=1), flush=True)
        if str(args.profile_batch) in args.compile_batches.split(","):
            profile_out = {"plain": profile_out, "compiled": _attempt(lambda: profile_decode(model, prompts, args.profile_batch, compile=True))}
            print("profile (compiled):", json.dumps(profile_out["compiled"], indent=1), flush=True)

    report = {
        "benchmark": "gpu_throughput",
        "command": "PYTHONPATH=. python " + " ".join(sys.argv),
        "model": {"params": sum(p.numel() for p in model.parameters()), "weight_bytes": weight_bytes,
                  "config": "llama hidden 2048, 22 layers, 32 heads, 4 KV heads, vocab 32000, bf16, random init"},
        "prompt_len": args.prompt_len,
        "results": results,
        "agreement_with_generate": agreement,
        "tiny_float32_parity_cuda": parity,
        "fairllm_mix": mix,
        "profile": profile_out,
        "auto_slots": _attempt(lambda: {"slots": DecodeEngine(model, eos_ids=[2], pad_id=0, max_batch=0).auto_slots(
            args.prompt_len, N), "prompt_len": args.prompt_len, "new_tokens": N}),
        "roofline": {"bf16_peak_flops": BF16_PEAK_FLOPS, "flops_per_token": FLOPS_PER_TOKEN,
                     "device_bandwidth": bw, "weight_bytes": weight_bytes},
        "machine": machine_info(),
    }
    write_report(report, args.out)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
