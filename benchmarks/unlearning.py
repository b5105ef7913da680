"""Unlearning cost: APA vs full retraining (K = 4, 8), and inference latency of the merged adapter.

    python benchmarks/unlearning.py --data ../shared/data/ml-100k            # SmolLM2-135M (CPU)
    python benchmarks/unlearning.py --data ../shared/data/ml-100k --model tiny --users 24

Part 1 — unlearning time. TALLRec samples of ``--users`` MovieLens users (history 5, ≤ 8 per
user); LoRA r = 8 on q/v of the top ``--lora-layers`` blocks (the frozen bottom is cached once
per sample and shared by every run, so the timings compare training work, not the bottom pass).
One user asks to be forgotten: full retraining trains one adapter on all remaining samples; APA
retrains only the shard(s) that held the user's samples (SISA likewise, on random shards; APA
with ``group_by_user`` keeps a user's samples in one shard). Same epochs and batch size everywhere.

Part 2 — inference latency per sample at batch size 1, with the prefix cache disabled (whole
model per call), methods interleaved sample by sample: one LoRA adapter; APA(D) and APA(ND)
(MiniLM embedding + weights + merging the top-k adapters + one forward; the routing alone is
reported too); SISA (K forwards, mean of P(Yes)).

Writes benchmarks/results/unlearning.json. The machine is shared: load average is recorded.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recaudit.data.loaders import load_movielens_100k  # noqa: E402
from recaudit.tallrec import TrainConfig, attach_lora, build_samples, load_base_model, score_samples, split_samples  # noqa: E402
from recaudit.tallrec.prefix import prefix_cache_disabled  # noqa: E402
from recaudit.unlearning.apa import APA, APAConfig  # noqa: E402
from recaudit.unlearning.retrain import predict_state, train_single  # noqa: E402
from recaudit.unlearning.sisa import SISA  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "unlearning.json"


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0]}  # fmt: skip


def interleaved_latency(fns: dict, samples) -> dict:
    """Per-sample milliseconds of each ``fn([s])``, methods interleaved per sample so load drift hits all alike."""
    for fn in fns.values():  # warm-up (MiniLM load, adapter creation)
        fn(samples[:1])
    times: dict[str, list[float]] = {name: [] for name in fns}
    for s in samples:
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn([s])
            times[name].append(1000 * (time.perf_counter() - t0))
    return {name: {"median_ms": statistics.median(t), "mean_ms": statistics.fmean(t), "n": len(t)} for name, t in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ml-100k")
    ap.add_argument("--model", default="default", help="'default' (SmolLM2-135M), 'tiny', an HF folder or .gguf")
    ap.add_argument("--users", type=int, default=16)
    ap.add_argument("--max-per-user", type=int, default=8)
    ap.add_argument("--lora-layers", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--latency-samples", type=int, default=8)
    ap.add_argument("--shards", default="4,8")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    catalog, inter = load_movielens_100k(args.data)
    users = inter.sample_users(args.users, args.seed, min_interactions=12)
    samples = build_samples(inter.filter_users(users), catalog, history_len=5, seed=args.seed, max_per_user=args.max_per_user)
    train, _, test = split_samples(samples, 0.0, 0.2, by="user_time")
    victim = train[0].user_id
    retain = [s for s in train if s.user_id != victim]
    model_spec = args.model
    tmp = tempfile.TemporaryDirectory(prefix="unl-bench-")
    if args.model == "tiny":
        from recaudit.testing import tiny_causal_lm

        model_spec = str(tiny_causal_lm(Path(tmp.name) / "tiny", hidden_size=64, num_layers=4, intermediate_size=128))
    cfg = TrainConfig(lora_layers=args.lora_layers, epochs=args.epochs, batch_size=8, max_length=256, lr=1e-3, seed=args.seed)
    base, tok = load_base_model(model_spec)
    model = attach_lora(base, cfg)

    t0 = time.perf_counter()
    score_samples(model, tok, train + test, batch_size=8, max_length=cfg.max_length)  # fills the bottom-block cache
    prefix_s = time.perf_counter() - t0
    print(f"{len(train)} train / {len(test)} test samples; bottom-block cache filled in {prefix_s:.1f}s")

    retrain_state, retrain_s = train_single(model, tok, retain, cfg, args.seed)
    print(f"full retraining on {len(retain)} samples: {retrain_s:.1f}s")
    out = {"machine": machine(), "model": args.model, "n_train": len(train), "n_retain": len(retain),
           "forgotten_user": victim, "forgotten_samples": len(train) - len(retain), "lora_layers": args.lora_layers,
           "epochs": args.epochs, "prefix_cache_fill_seconds": prefix_s, "retrain_seconds": retrain_s,
           "apa": {}, "latency": {}}  # fmt: skip
    fns = {"single_lora": lambda xs: predict_state(model, tok, retrain_state, xs, cfg)}
    for k in [int(x) for x in args.shards.split(",")]:
        apa = APA(model, tok, cfg, Path(tmp.name) / f"apa{k}", APAConfig(n_shards=k, top_k=2), seed=args.seed)
        fit_s = apa.fit(train)
        stats = apa.unlearn(lambda s: s.user_id == victim)
        out["apa"][str(k)] = {"fit_seconds": fit_s, "unlearn_seconds": stats.seconds, "affected_shards": stats.affected_shards,
                              "shard_sizes": [len(i.keys) for i in apa.shards.shards],
                              "speedup_vs_retrain": retrain_s / stats.seconds}  # fmt: skip
        print(f"K={k}: APA unlearning {stats.seconds:.1f}s (shards {stats.affected_shards}) vs retrain {retrain_s:.1f}s")
        by_user = APA(model, tok, cfg, Path(tmp.name) / f"apa_user{k}", APAConfig(n_shards=k, top_k=2, group_by_user=True),
                      seed=args.seed)  # fmt: skip
        by_user.fit(train)
        user_stats = by_user.unlearn(lambda s: s.user_id == victim)
        out["apa_group_by_user"] = out.get("apa_group_by_user", {}) | {str(k): {
            "unlearn_seconds": user_stats.seconds, "affected_shards": user_stats.affected_shards,
            "speedup_vs_retrain": retrain_s / user_stats.seconds}}  # fmt: skip
        print(f"K={k}: APA grouped by user {user_stats.seconds:.1f}s (shards {user_stats.affected_shards})")
        sisa = SISA(model, tok, cfg, Path(tmp.name) / f"sisa{k}", n_shards=k, seed=args.seed)
        sisa.fit(train)
        sisa_stats = sisa.unlearn(lambda s: s.user_id == victim)
        out["sisa"] = out.get("sisa", {}) | {str(k): {"unlearn_seconds": sisa_stats.seconds, "affected_shards": sisa_stats.affected_shards,
                                                      "speedup_vs_retrain": retrain_s / sisa_stats.seconds}}  # fmt: skip
        fns[f"apa_routing_only_K{k}"] = apa.weights  # MiniLM embedding + top-k softmax weights
        fns[f"apa_d_K{k}"] = lambda xs, a=apa: a.predict(xs, "d")
        fns[f"apa_nd_K{k}"] = lambda xs, a=apa: a.predict(xs, "nd")
        fns[f"sisa_K{k}"] = sisa.predict
    with prefix_cache_disabled(model):
        out["latency"] = interleaved_latency(fns, test[: args.latency_samples])
    print(json.dumps({n: round(v["median_ms"], 1) for n, v in out["latency"].items()}))
    out["machine_after"] = machine()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2, default=float))
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
