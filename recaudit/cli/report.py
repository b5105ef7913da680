"""``recaudit report results.json``: re-render the HTML report and the metrics CSV from results.

    recaudit report runs/x/results.json                 # writes report.html + metrics.csv beside it
    recaudit report results.json -o out/report.html --csv out/metrics.csv

Exit status 0 when written, 2 when the results file is missing or invalid.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from recaudit.audits.files import write_text_atomic
from recaudit.results import SCHEMA_VERSION, AuditResults

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.csv"


def add_parser(subparsers: Any) -> None:
    """Register the ``report`` command."""
    p = subparsers.add_parser(
        "report",
        help="re-render report.html and metrics.csv from a results.json",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("results", type=Path, help="a results.json written by `recaudit audit`")
    p.add_argument("-o", "--output", type=Path, help=f"HTML file to write (default: {REPORT_FILE} beside results)")
    p.add_argument("--csv", type=Path, help=f"CSV of all metrics (default: {METRICS_FILE} beside results)")
    p.add_argument("--title", help="report title (default: the audit's name)")
    p.add_argument("--junit-xml", type=Path, metavar="PATH", help="also write JUnit XML (one testcase per threshold)")
    p.set_defaults(func=run_report)


def read_results(path: Path) -> AuditResults:
    """Load a results.json; ValueError names the file and the problem."""
    if not path.is_file():
        raise ValueError(f"{path}: no such results file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 text (byte {e.start}): not a recaudit results file") from None
    except OSError as e:
        raise ValueError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        results = AuditResults.from_json(text)
    except ValidationError as e:
        records = _federated_records(text)
        if records is not None:  # raw records of a federated run (e.g. `<out>.records.json` of a deployment)
            return records
        first = e.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "top level"
        raise ValueError(f"{path}: not a recaudit results file ({where}: {first['msg']})") from None
    if results.schema_version.split(".")[0] != SCHEMA_VERSION.split(".")[0]:
        raise ValueError(f"{path}: results schema {results.schema_version} is not readable by this recaudit (reads {SCHEMA_VERSION})")
    return results


def _federated_records(text: str) -> AuditResults | None:
    """AuditResults converted from a federated run's raw records JSON, or None when ``text`` is not one."""
    from recaudit.federated.results import results_from_runs
    from recaudit.federated.records import FederatedRun

    try:
        run = FederatedRun.model_validate_json(text)
    except ValidationError:
        return None
    return results_from_runs({run.strategy: run}, run.strategy, {}, audit_name=f"federated {run.strategy}")


def run_samples(run_dir: Path, results: AuditResults) -> tuple[dict[str, list[dict[str, Any]]], dict[str, int]]:
    """Each check's first evidence records from ``run_dir/checks`` (as many as the report's explorer
    shows) and each file's record count (checks without a samples file are left out; an unreadable
    file is a warning line, not a failed report)."""
    from recaudit.evidence import read_samples_head, samples_path
    from recaudit.reports.explorer import MAX_PER_CHECK

    out: dict[str, list[dict[str, Any]]] = {}
    totals: dict[str, int] = {}
    for check in results.checks:
        path = samples_path(run_dir / "checks", check.name)
        if path is None:
            continue
        try:
            out[check.name], totals[check.name] = read_samples_head(path, MAX_PER_CHECK)
        except (OSError, ValueError, EOFError) as e:
            print(f"recaudit report: warning: {path}: cannot read evidence records ({e}); left out", file=sys.stderr)
    return out, totals


def write_report_files(
    results: AuditResults,
    html_path: Path,
    csv_path: Path,
    title: str | None = None,
    *,
    run_dir: Path | None = None,
    results_path: Path | None = None,
) -> tuple[Path, Path]:
    """Render and atomically write the HTML report (with the run's evidence records and the SHA-256
    of its results.json) and the metrics CSV; ``run_dir`` defaults to the report's folder."""
    import hashlib

    from recaudit.checks import declared_headlines
    from recaudit.reports import metrics_csv, render_html
    from recaudit.reports.figure_cache import figure_cache

    run_dir = run_dir if run_dir is not None else html_path.parent
    results_path = results_path if results_path is not None else run_dir / "results.json"
    digest = hashlib.sha256(results_path.read_bytes()).hexdigest() if results_path.is_file() else None
    # inside a run folder the drawn figures are kept (work/figures), so a warm re-run draws nothing
    cache = run_dir / "work" / "figures" if (run_dir / "checks").is_dir() else None
    with figure_cache(cache, write_text_atomic):
        samples, totals = run_samples(run_dir, results)
        html = render_html(results, title=title, samples=samples, sample_totals=totals, results_sha256=digest,
                           headlines=declared_headlines())
    write_text_atomic(html_path, html)
    write_text_atomic(csv_path, metrics_csv(results))
    return html_path, csv_path


def write_junit(results: AuditResults, path: Path) -> Path:
    """Write the audit as JUnit XML (``recaudit.reports.junit``) atomically."""
    from recaudit.reports.junit import junit_xml

    write_text_atomic(path, junit_xml(results))
    return path


def run_report(args: argparse.Namespace) -> int:
    """Handler of ``recaudit report``."""
    try:
        results = read_results(args.results)
    except ValueError as e:
        print(f"recaudit report: error: {e}", file=sys.stderr)
        return 2
    html_path = args.output or args.results.with_name(REPORT_FILE)
    csv_path = args.csv or args.results.with_name(METRICS_FILE)
    try:
        write_report_files(results, html_path, csv_path, title=args.title, run_dir=args.results.parent,
                           results_path=args.results)
        if args.junit_xml:
            write_junit(results, args.junit_xml)
    except OSError as e:
        print(f"recaudit report: error: cannot write {e.filename or html_path}: {e.strerror or e}", file=sys.stderr)
        return 2
    print(f"report:  {html_path}")
    print(f"metrics: {csv_path}")
    if args.junit_xml:
        print(f"junit:   {args.junit_xml}")
    return 0
