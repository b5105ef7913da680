"""A small real run of the user-side fairness probes on the embedded SmolLM2-135M (CPU, a few minutes).

    python examples/user_fairness_smollm2.py --out /tmp/user_fairness   # writes results.json + summary.json

FaiRLLM: music, 5 artists × gender + religion (8 prompts per artist), K = 10. Implicit names:
news, 4 locales × 1 male + 1 female name, implicit and explicit prompts, one interest prompt.
SmolLM2 needs ``repetition_penalty=1.3`` to write lists at all (it repeats one title otherwise).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from recaudit.adapters import default  # noqa: E402
from recaudit.checks import CheckContext, answers_of  # noqa: E402
from recaudit.probes.fairllm import FairLLMProbe  # noqa: E402
from recaudit.probes.implicit_names import ImplicitNamesProbe  # noqa: E402
from recaudit.results import AuditResults  # noqa: E402

GENERATION = dict(max_new_tokens=160, repetition_penalty=1.3, temperature=0.0)
FAIRLLM = dict(domains=["music"], n_names=5, attributes=["gender", "religion"], k=10, **GENERATION)
IMPLICIT = dict(domains=["news"], locales=["en_US", "en_GB", "ja_JP", "yo_NG"], n_names=1, k=10, n_interests=1,
                **GENERATION)


def _summary(result, names: list[str]) -> dict:
    out = {}
    for name in names:
        m = result.metric(name)
        out[name] = {"value": m.value, "ci": [m.ci_low, m.ci_high], "p": m.p_value, "n": m.n}
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for results.json and summary.json")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    t0 = time.perf_counter()
    adapter = default(torch_threads=args.threads)
    load_s = time.perf_counter() - t0
    ctx = CheckContext(adapter=adapter, batch_size=8)
    summary: dict = {"model": adapter.fingerprint, "load_s": load_s}

    results = []
    for probe, keys in (
        (FairLLMProbe(FAIRLLM), lambda r: [n for n in r.metric_names() if n.startswith(("sim.", "snsr.", "parse_rate."))]),
        (ImplicitNamesProbe(IMPLICIT), lambda r: [n for n in r.metric_names() if "explicit" in n or n.startswith(("parse_rate", "grounded"))]),
    ):
        t = time.perf_counter()
        reqs = probe.requests(ctx)
        resps = ctx.generate(reqs, desc=probe.name)
        gen_s = time.perf_counter() - t
        result = probe.evaluate(ctx, answers_of(reqs, resps))
        results.append(result)
        summary[probe.name] = {
            "params": probe.params.model_dump(mode="json"),
            "requests": len(reqs),
            "generate_s": gen_s,
            "prompts_per_s": len(reqs) / gen_s,
            "completion_tokens": sum(r.completion_tokens or 0 for r in resps),
            "evaluate_s": time.perf_counter() - t - gen_s,
            "metrics": _summary(result, keys(result)),
            "examples": [e.fields for e in result.examples[:2]],
        }
        print(f"{probe.name}: {len(reqs)} requests in {gen_s:.0f} s")
    (args.out / "results.json").write_text(AuditResults(checks=results).to_json(), encoding="utf-8")
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2, default=str), encoding="utf-8")
    print(json.dumps({k: v for k, v in summary.items() if k != "model"}, indent=1, default=str)[:4000])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
