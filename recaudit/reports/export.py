"""Flat exports of an audit: every metric as one CSV row."""

from __future__ import annotations

import csv
import io

from recaudit.results import AuditResults, CheckResult

CSV_COLUMNS = (
    "check",
    "check_type",
    "risk",
    "status",
    "metric",
    "variant",
    "value",
    "ci_low",
    "ci_high",
    "ci_level",
    "p_value",
    "n",
    "direction",
    "thresholds",
    "breached",
)
# A spreadsheet treats a cell starting with one of these as a formula (CSV injection).
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def metrics_csv(results: AuditResults) -> str:
    """All metrics of all checks as CSV text (header row first, numbers unformatted)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for check in results.checks:
        status = check.status
        thresholds = metric_thresholds(check)
        breached = {b.metric for b in check.verdict.breaches}
        for m in check.metrics:
            writer.writerow(
                [
                    _text(check.name),
                    _text(check.check),
                    check.risk,
                    status,
                    _text(m.name),
                    _text(m.variant or ""),
                    repr(m.value),
                    _num(m.ci_low),
                    _num(m.ci_high),
                    m.ci_level,
                    _num(m.p_value),
                    "" if m.n is None else m.n,
                    m.direction,
                    _text("; ".join(thresholds.get(m.name, []))),
                    "yes" if m.name in breached else ("no" if m.name in thresholds else ""),
                ]
            )
    return buf.getvalue()


def metric_thresholds(check: CheckResult) -> dict[str, list[str]]:
    """Judged thresholds of a check by metric name (``Verdict.evaluated`` holds "metric op value")."""
    out: dict[str, list[str]] = {}
    for t in check.verdict.evaluated:
        out.setdefault(t.split(" ", 1)[0], []).append(t)
    return out


def _num(x: float | None) -> str:
    return "" if x is None else repr(x)


def _text(s: str) -> str:
    """Neutralise spreadsheet formulas in untrusted text cells."""
    return "'" + s if s.startswith(_FORMULA_START) else s
