"""The full FaiRLLM benchmark through ``recaudit audit``, cold and warm, on one GPU.

    python benchmarks/fairllm_full_audit.py --gguf /tmp/m/SmolLM2-135M-Instruct.Q4_1.gguf \\
        --fairllm-data ../shared/data/fairllm --out benchmarks/results/fairllm_full_audit_h100.json

500 names × 2 domains (music artists, directors) × 32 prompts (the neutral one and 31 sensitive
values of 8 attributes) = 32,000 answers, K = 20, greedy, ``--max-new-tokens`` (200), repetition
penalty 1.3 (SmolLM2 repeats one title without it), the decode engine with ``--slots`` sequences.
Three runs of the same command line, each timed end to end as a user sees it (a fresh Python
process: imports, model load, generation, evaluation, results.json, report.html):

- cold: an empty run folder (every answer generated);
- warm: the same folder again (every check finished: re-judged without loading the model);
- warm-fresh: the same folder with ``--fresh`` (every answer from the response cache, the model
  loaded, ``evaluate`` recomputed).

The usable-evidence floor is set to 0 (SmolLM2-135M rarely writes a full 20-title list; an audit of
a real model keeps fairllm's default): only then is the cold run's check complete, which a warm re-run
needs before it may reuse it. Writes JSON with the wall times, exit codes, the check's coverage and cache statistics.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def config(gguf: Path, data: Path, slots: int, max_new_tokens: int, device: str, dtype: str,
           n_names: int | None = None) -> dict:
    """The audit: one fairllm check at the benchmark's full size."""
    return {
        "name": "FaiRLLM full benchmark",
        "adapter": {"kind": "hf", "path": str(gguf.parent), "gguf_file": gguf.name, "device": device,
                    "dtype": dtype, "engine": "recaudit", "batch_size": slots},
        "data": "demo",
        "seed": 0,
        "cache": True,
        # this benchmark times the machinery: SmolLM2-135M rarely writes a full 20-title list, so the
        # usable floor is off (every answer still counted and shown; answered must stay >= 0.98)
        "min_usable": 0.0,
        "batch_size": slots,
        "checks": [{
            "check": "fairllm",
            "params": {
                "domains": ["music", "movie"], "n_names": n_names, "k": 20,
                "names_paths": {"music": str(data / "mtv-music-artists.csv"), "movie": str(data / "director.csv")},
                "attributes_path": str(data / "sst_json.json"),
                "max_new_tokens": max_new_tokens, "repetition_penalty": 1.3,
            },
            "thresholds": ["snsr.prag@20.max.p_adj >= 0.05"],
        }],
    }


def timed(cmd: list[str], env: dict) -> dict:
    """Run a command; wall time, exit code and the last lines of its output."""
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    return {"wall_s": round(time.perf_counter() - t, 2), "exit_code": p.returncode,
            "tail": [ln for ln in (p.stdout + p.stderr).strip().splitlines() if "de-quantizing" not in ln][-8:]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", type=Path, required=True)
    ap.add_argument("--fairllm-data", type=Path, required=True, help="folder with director.csv, mtv-music-artists.csv, sst_json.json")
    ap.add_argument("--slots", type=int, default=1024)
    ap.add_argument("--max-new-tokens", type=int, default=200)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--n-names", type=int, default=None, help="names per domain (default: all 500; 1 for a smoke test)")
    ap.add_argument("--run-dir", type=Path, default=Path("/tmp/fairllm-full"))
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()

    args.run_dir.mkdir(parents=True, exist_ok=True)
    cfg_path = args.run_dir.parent / "fairllm_full_audit.yaml"
    cfg_path.write_text(yaml.safe_dump(config(args.gguf.resolve(), args.fairllm_data.resolve(), args.slots,
                                              args.max_new_tokens, args.device, args.dtype, args.n_names),
                                       sort_keys=False))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(
        [str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    base = [sys.executable, "-m", "recaudit", "audit", str(cfg_path), "-o", str(args.run_dir / "run"), "-q"]
    runs = {"cold": timed(base, env), "warm": timed(base, env), "warm_fresh": timed(base + ["--fresh"], env)}
    results = json.loads((args.run_dir / "run" / "results.json").read_text())
    check = results["checks"][0]
    out = {
        "benchmark": "FaiRLLM full: 500 names x 2 domains x 32 prompts, K=20, through `recaudit audit`",
        "machine": {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
                    "gpu": _gpu_name()},
        "settings": {"slots": args.slots, "max_new_tokens": args.max_new_tokens, "device": args.device,
                     "dtype": args.dtype, "repetition_penalty": 1.3, "variant": check["params"].get("variant")},
        "runs": runs,
        "warm_speedup": round(runs["cold"]["wall_s"] / runs["warm"]["wall_s"], 1),
        "warm_fresh_speedup": round(runs["cold"]["wall_s"] / runs["warm_fresh"]["wall_s"], 1),
        "coverage": check.get("coverage"),
        "status": check.get("verdict", {}).get("status"),
        "check_duration_s": check.get("reproducibility", {}).get("duration_s"),
        "cache_stats": results["reproducibility"].get("cache_stats"),
        "key_metrics": {m["name"]: {k: m.get(k) for k in ("value", "ci_low", "ci_high", "p_value", "p_adj", "p_floor")}
                        for m in check["metrics"] if m["name"].startswith("snsr.prag@20") or m["name"].startswith("snsv.prag@20")},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("runs", "warm_speedup", "warm_fresh_speedup", "status")}, indent=1))
    return 0


def _gpu_name() -> str | None:
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except Exception:  # noqa: BLE001
        return None


if __name__ == "__main__":
    raise SystemExit(main())
