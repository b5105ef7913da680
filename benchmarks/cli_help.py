"""Wall time of `recaudit --help` (a fresh interpreter each run): median of 5, JSON to benchmarks/results.

    python benchmarks/cli_help.py            # writes benchmarks/results/cli_help.json

The target is ≤ 0.5 s: the top-level help imports no command module (recaudit.cli is lazy).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = 5
TARGET_S = 0.5


def time_command(args: list[str], runs: int = RUNS) -> list[float]:
    """Wall seconds of ``python -m recaudit ARGS`` per run (the repository's code on the path)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "recaudit", *args], check=True, capture_output=True, env=env, timeout=120)
        out.append(time.perf_counter() - t0)
    return out


def main() -> int:
    help_s = time_command(["--help"])
    audit_help_s = time_command(["audit", "--help"])
    result = {
        "command": "recaudit --help",
        "runs": RUNS,
        "median_s": round(statistics.median(help_s), 4),
        "all_s": [round(x, 4) for x in help_s],
        "target_s": TARGET_S,
        "within_target": statistics.median(help_s) <= TARGET_S,
        "audit_help_median_s": round(statistics.median(audit_help_s), 4),
        "python": platform.python_version(),
        "platform": f"{platform.platform()}; {os.cpu_count()} CPUs",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    path = ROOT / "benchmarks" / "results" / "cli_help.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["within_target"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
