"""The type gate of CI: mypy on recaudit, zero errors on the core, a ratchet for the rest.

    .venv/bin/python scripts/check_types.py            # exit 1 on a core error or a budget overrun
    .venv/bin/python scripts/check_types.py --update   # lower .ci/mypy-budget to today's count

The core (the check contract, results, evidence, adapters, audits, metrics) must type-check
cleanly. Every other module may have at most the number of errors in ``.ci/mypy-budget``; the
budget only goes down (``--update`` refuses to raise it).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDGET = ROOT / ".ci" / "mypy-budget"
CORE = ("recaudit/checks.py", "recaudit/results.py", "recaudit/evidence.py", "recaudit/adapters/",
        "recaudit/audits/", "recaudit/metrics/")
_ERROR = re.compile(r"^(?P<path>[^:]+):\d+: error:")


def mypy_errors() -> list[str]:
    """The paths of every mypy error over the whole package (one entry per error)."""
    done = subprocess.run([sys.executable, "-m", "mypy", "recaudit"], cwd=ROOT, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        sys.stderr.write(done.stdout + done.stderr)
        raise SystemExit(f"check_types: mypy itself failed (exit {done.returncode})")
    lines = [ln for ln in done.stdout.splitlines() if _ERROR.match(ln)]
    for ln in lines:
        if ln.startswith(CORE):
            print(ln)
    return [_ERROR.match(ln)["path"] for ln in lines]  # type: ignore[index]


def main(argv: list[str]) -> int:
    """Run the gate; 0 when the core is clean and the rest within budget."""
    paths = mypy_errors()
    core = [p for p in paths if p.startswith(CORE)]
    rest = [p for p in paths if not p.startswith(CORE)]
    budget = int(BUDGET.read_text().split()[0]) if BUDGET.exists() else len(rest)
    print(f"check_types: core {len(core)} errors (must be 0); rest {len(rest)} (budget {budget})")
    if "--update" in argv:
        if len(rest) > budget:
            print("check_types: refusing to raise the budget", file=sys.stderr)
            return 1
        BUDGET.write_text(f"{len(rest)}\n")
        return 0
    if len(rest) > budget:
        for path, n in Counter(rest).most_common(10):
            print(f"  {n:4d} {path}")
    return 0 if not core and len(rest) <= budget else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
