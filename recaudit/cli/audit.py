"""``recaudit audit [config.yaml]``: run an audit and write results.json, report.html and metrics.csv.

    recaudit audit                          # the embedded default: SmolLM2-135M on the demo catalogue
    recaudit audit audit.yaml               # your config
    recaudit audit audit.yaml --fresh       # recompute everything (the response cache still applies)
    recaudit audit --print-default-config > audit.yaml   # start a config from the default

Rerunning the same command after an interruption resumes: finished checks and cached model
responses in the run folder are reused.

Statuses: pass (judged on enough evidence, every threshold holds), fail (a threshold breached),
error (the check crashed or is misconfigured), incomplete (adapter errors, unusable answers or an
underpowered test: too little evidence to judge), not_judged (no thresholds).

Exit status: 0 every check judged and passed; 1 a threshold breached; 2 usage, config or input
error, or a check crashed; 3 incomplete evidence; 4 a check had no thresholds (not judged;
--allow-unjudged turns 4 into 0); 130 interrupted.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from recaudit.audits.config import ConfigError, default_config_text, load_config, load_default_config
from recaudit.audits.runner import Runner, SetupError
from recaudit.audits.verdicts import EXIT_ERROR, audit_exit_code, overall
from recaudit.cli.report import METRICS_FILE, REPORT_FILE, write_junit, write_report_files


def add_parser(subparsers: Any) -> None:
    """Register the ``audit`` command."""
    p = subparsers.add_parser(
        "audit",
        help="run an audit (default: the embedded SmolLM2 audit) and write the report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("config", nargs="?", type=Path, help="audit config YAML (default: the embedded one)")
    p.add_argument("-o", "--output-dir", type=Path, help="run folder (default: the config's output_dir)")
    p.add_argument("--fresh", action="store_true", help="ignore finished checks of an earlier run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    p.add_argument("--print-default-config", action="store_true", help="print the embedded config and exit")
    p.add_argument(
        "--allow-unjudged", action="store_true",
        help="exit 0 rather than 4 when a check has no thresholds (every other status keeps its code)",
    )
    p.add_argument("--junit-xml", type=Path, metavar="PATH", help="also write JUnit XML (one testcase per threshold)")
    p.set_defaults(func=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    """Handler of ``recaudit audit``."""
    if args.print_default_config:
        sys.stdout.write(default_config_text())
        return 0
    runner = None
    try:
        config = load_config(args.config) if args.config else load_default_config()
        runner = Runner(config, run_dir=args.output_dir, fresh=args.fresh, progress=not args.quiet)
        print(f"recaudit audit: {config.name!r}: {len(config.checks)} checks → {runner.run_dir}", file=sys.stderr)
        run = runner.run()
    except ConfigError as e:
        for line in str(e).splitlines():
            print(f"recaudit audit: config error: {line}", file=sys.stderr)
        return EXIT_ERROR
    except SetupError as e:
        print(f"recaudit audit: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        where = runner.run_dir if runner is not None else "the run folder"
        print(f"\nrecaudit audit: interrupted; run the same command again to resume from {where}", file=sys.stderr)
        return 130
    try:
        html, csv = write_report_files(run.results, run.run_dir / REPORT_FILE, run.run_dir / METRICS_FILE)
        if args.junit_xml:
            write_junit(run.results, args.junit_xml)
    except OSError as e:
        print(f"recaudit audit: error: cannot write the report: {e.strerror or e}", file=sys.stderr)
        return EXIT_ERROR
    verdict = overall(run.results)
    c = verdict.counts
    print(f"overall: {verdict.summary}")
    for check in run.results.checks:
        if check.status in ("incomplete", "error", "fail"):
            why = check.error.splitlines()[0] if check.error else (check.verdict.reason or "")
            print(f"  {check.status}: {check.name} — {why}")
    print(
        f"checks: {len(run.results.checks)} ({c['pass']} pass, {c['fail']} fail, {c['error']} error, "
        f"{c['incomplete']} incomplete, {c['not_judged']} not judged; {len(run.reused)} reused)"
    )
    print(f"report:  {html}")
    print(f"results: {run.results_path}")
    print(f"metrics: {csv}")
    if args.junit_xml:
        print(f"junit:   {args.junit_xml}")
    return audit_exit_code(run.results, allow_unjudged=args.allow_unjudged)
