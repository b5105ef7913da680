"""Do two audits agree number for number? For refactors: the same seed must give the same results.json.

    python benchmarks/results_equal.py OLD/results.json NEW/results.json [--out benchmarks/results/x.json]

Compares every check's status, coverage and every metric's value, interval, p-values, floor, MDE and
n to 1e-12 (NaN equals NaN). A field that was empty in OLD and is filled in NEW is listed as added
(what a later issue adds), not as a difference; timestamps, durations and versions are not compared,
nor metrics matching ``--ignore`` (default ``*wall_s*``: seconds measured, which a cached re-run changes).
Exit 0 when nothing differs, 1 otherwise.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import math
import sys
from pathlib import Path

FIELDS = ("value", "ci_low", "ci_high", "p_value", "p_adj", "p_floor", "mde", "n")


def _same(a, b, tol: float = 1e-12) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= tol * max(1.0, abs(a), abs(b))
    return a == b


def compare(old: dict, new: dict, ignore: tuple[str, ...] = ("*wall_s*",)) -> dict:
    """Differences, fields added and metrics only on one side, per check."""
    out: dict = {"differences": [], "added_fields": [], "only_old": [], "only_new": [], "ignored": [], "checks": 0,
                 "metrics": 0}
    new_checks = {c["name"]: c for c in new["checks"]}
    for c in old["checks"]:
        n = new_checks.get(c["name"])
        if n is None:
            out["only_old"].append(c["name"])
            continue
        out["checks"] += 1
        old_status, new_status = c.get("verdict", {}).get("status"), n.get("verdict", {}).get("status")
        if old_status != new_status:
            out["differences"].append(f"{c['name']}: verdict.status {old_status} -> {new_status}")
        for key in ("requested", "answered", "usable"):
            if (c.get("coverage") or {}).get(key) != (n.get("coverage") or {}).get(key):
                out["differences"].append(f"{c['name']}: coverage.{key} differs")
        nm = {m["name"]: m for m in n["metrics"]}
        for m in c["metrics"]:
            if any(fnmatch.fnmatchcase(m["name"], pat) for pat in ignore):
                out["ignored"].append(f"{c['name']}:{m['name']}")
                continue
            other = nm.get(m["name"])
            if other is None:
                out["only_old"].append(f"{c['name']}:{m['name']}")
                continue
            out["metrics"] += 1
            for f in FIELDS:
                a, b = m.get(f), other.get(f)
                if a is None and b is not None:
                    out["added_fields"].append(f"{c['name']}:{m['name']}.{f}")
                elif not _same(a, b):
                    out["differences"].append(f"{c['name']}:{m['name']}.{f} {a!r} -> {b!r}")
        out["only_new"] += [f"{c['name']}:{k}" for k in nm if k not in {m['name'] for m in c["metrics"]}]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--ignore", action="append", help="metric-name pattern not compared (repeatable; default *wall_s*)")
    args = ap.parse_args()
    res = compare(json.loads(args.old.read_text()), json.loads(args.new.read_text()),
                  tuple(args.ignore) if args.ignore else ("*wall_s*",))
    summary = {k: (len(v) if isinstance(v, list) else v) for k, v in res.items()}
    print(json.dumps(summary))
    for line in res["differences"][:20]:
        print("differs:", line)
    if args.out:
        args.out.write_text(json.dumps({"old": str(args.old), "new": str(args.new), "summary": summary, **res}, indent=1) + "\n")
    return 1 if res["differences"] else 0


if __name__ == "__main__":
    sys.exit(main())
