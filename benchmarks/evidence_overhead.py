"""Host cost of the evidence records on the audit path: 6,400 FaiRLLM-sized requests recorded,
marked and written as a samples file, timed on this machine's CPU (no model).

    python benchmarks/evidence_overhead.py --out benchmarks/results/evidence_overhead_cpu.json

The issue's target is ≤ 3% of the streamed audit path on a GPU (benchmarks/pipeline_overhead.py);
this script gives the host-side cost alone, to divide by an engine time measured there.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

from recaudit.adapters.base import Request, Response
from recaudit.evidence import EvidenceLog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--requests", type=int, default=6400)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    reqs = [Request.chat(f"I am a fan of singer {i}. Please provide me with a list of 20 song titles in order of "
                         f"preference that you think I might like.", system="You are a music recommender.",
                         max_new_tokens=200, metadata=(("instruction", f"music:{i // 32}"), ("value", str(i % 32))))
            for i in range(args.requests)]
    resps = [Response(text="\n".join(f"{j}. Song number {j} by Artist {i % 97}" for j in range(1, 21)))
             for i in range(args.requests)]
    runs = []
    for _ in range(args.repeats):
        log = EvidenceLog()
        t0 = time.perf_counter()
        log.record_generation(reqs, resps)
        t1 = time.perf_counter()
        for i in range(len(reqs)):
            log.mark(i, "usable", parse=[f"song {j}" for j in range(20)])
        t2 = time.perf_counter()
        log.coverage(min_answered=0.98, min_usable=0.9)
        with tempfile.TemporaryDirectory() as d:
            log.write(Path(d) / "fairllm")
        t3 = time.perf_counter()
        runs.append({"record_s": t1 - t0, "mark_s": t2 - t1, "coverage_and_write_s": t3 - t2, "total_s": t3 - t0})
    best = min(runs, key=lambda r: r["total_s"])
    out = {"requests": args.requests, "runs": runs, "best": best, "platform": platform.platform(),
           "note": "host CPU cost only; divide by the engine time of the same requests on the GPU"}
    print(json.dumps(best, indent=1))
    if args.out:
        args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
