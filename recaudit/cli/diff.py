"""``recaudit diff old.json new.json``: which metrics moved between two audits, and which regressed.

A regression is a move in the metric's bad direction beyond noise: the two confidence intervals do
not overlap, or (without CIs) the change exceeds max(--tolerance, --rel-tolerance × |old|).

Exit status 0 when nothing regressed, 1 when a metric regressed or a check's verdict got worse,
2 when an input is missing or invalid.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from recaudit.audits.diff import diff_results
from recaudit.cli.report import read_results


def add_parser(subparsers: Any) -> None:
    """Register the ``diff`` command."""
    p = subparsers.add_parser(
        "diff",
        help="compare two results.json files and flag regressions",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("old", type=Path, help="results.json of the reference (e.g. the released model)")
    p.add_argument("new", type=Path, help="results.json of the candidate")
    p.add_argument("--tolerance", type=float, default=0.01, help="absolute change that counts without CIs (0.01)")
    p.add_argument("--rel-tolerance", type=float, default=0.05, help="relative change that counts without CIs (0.05)")
    p.add_argument("--json", action="store_true", help="print the diff as JSON")
    p.add_argument("--all", action="store_true", help="also list unchanged metrics")
    p.set_defaults(func=run_diff)


def run_diff(args: argparse.Namespace) -> int:
    """Handler of ``recaudit diff``."""
    try:
        old = read_results(args.old)
        new = read_results(args.new)
        diff = diff_results(old, new, tolerance=args.tolerance, rel_tolerance=args.rel_tolerance)
    except ValueError as e:
        print(f"recaudit diff: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(diff.to_dict(), indent=2, allow_nan=True))
    else:
        print(f"old: {args.old} ({old.audit_name}, {old.created_at})")
        print(f"new: {args.new} ({new.audit_name}, {new.created_at})")
        print(diff.to_text(show_unchanged=args.all))
    return 1 if diff.has_regressions else 0
