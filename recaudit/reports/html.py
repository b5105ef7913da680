"""Render an ``AuditResults`` as one self-contained HTML file.

Self-contained: CSS is inline, figures are SVG data URIs, there is no script and no external
resource, and a Content-Security-Policy forbids loading any. Everything from results (item titles,
model outputs, check names, notes) is untrusted and goes through Jinja2 autoescaping; nothing is
marked safe except the data URIs this module builds itself from base64.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

import recaudit
from recaudit.reports.export import metric_thresholds
from recaudit.reports.figures import render_figure
from recaudit.results import AuditResults, CheckResult, FigureSpec, MetricValue, overall

MAX_EXAMPLES = 10
MAX_EXAMPLE_CHARS = 1500
SECTION_IDS = ("summary", "risks", "checks", "references", "reproducibility")
_STATUS_ORDER = {"error": 4, "fail": 3, "incomplete": 2, "not_judged": 1, "pass": 0}
_ARROWS = {"lower_is_better": "↓ lower is better", "higher_is_better": "↑ higher is better", "neutral": ""}


@dataclass
class FigureView:
    spec: FigureSpec
    uri: str | None
    error: str | None


@dataclass
class MetricRow:
    metric: MetricValue
    thresholds: list[str]
    status: str  # pass | fail | "" (no threshold)


@dataclass
class CheckView:
    result: CheckResult
    anchor: str
    status: str
    metrics: list[MetricRow]
    figures: list[FigureView]
    example_columns: list[str]
    example_rows: list[list[str]]
    examples_hidden: int
    params_json: str
    error_lines: list[str] = field(default_factory=list)


def check_status(check: CheckResult) -> str:
    """A check's status for display: ``error`` when it errored, else its verdict."""
    return check.status


def overall_status(results: AuditResults) -> str:
    """The overall status as a badge class: pass only when every check was judged and passed."""
    return overall(results).css


def render_html(results: AuditResults, *, title: str | None = None) -> str:
    """The report as HTML text."""
    checks = [_check_view(i, c) for i, c in enumerate(results.checks)]
    counts = {s: sum(1 for c in checks if c.status == s) for s in _STATUS_ORDER}
    rep = results.reproducibility
    return _env().get_template("report.html.j2").render(
        title=title or results.audit_name,
        results=results,
        checks=checks,
        counts=counts,
        overall=overall_status(results),
        overall_summary=overall(results).summary,
        risks=_risk_sections(checks),
        references=_references(checks),
        rep=rep,
        config_yaml=yaml.safe_dump(rep.config, sort_keys=False, allow_unicode=True) if rep.config else "",
        fingerprint_json=json.dumps(rep.adapter_fingerprint, indent=2, sort_keys=True, default=str),
        total_check_seconds=sum(c.result.reproducibility.duration_s or 0.0 for c in checks),
        renderer_version=recaudit.__version__,
    )


# ------------------------------------------------------------------------------------- views


def _check_view(index: int, check: CheckResult) -> CheckView:
    status = check_status(check)
    thresholds = metric_thresholds(check)
    breached = {b.metric for b in check.verdict.breaches}
    metrics = [
        MetricRow(m, thresholds.get(m.name, []), ("fail" if m.name in breached else "pass") if m.name in thresholds else "")
        for m in check.metrics
    ]
    columns: list[str] = []
    for ex in check.examples:
        columns += [k for k in ex.fields if k not in columns]
    shown = check.examples[:MAX_EXAMPLES]
    rows = [[_clip(ex.fields.get(c, "")) for c in columns] for ex in shown]
    return CheckView(
        result=check,
        anchor=f"check-{index + 1}-{_slug(check.name)}",
        status=status,
        metrics=metrics,
        figures=[_figure_view(f) for f in check.figures],
        example_columns=columns,
        example_rows=rows,
        examples_hidden=len(check.examples) - len(shown),
        params_json=json.dumps(check.params, indent=2, sort_keys=True, default=str),
        error_lines=(check.error or "").splitlines(),
    )


def _figure_view(spec: FigureSpec) -> FigureView:
    try:
        return FigureView(spec, render_figure(spec), None)
    except Exception as e:  # noqa: BLE001 - one bad figure must not take the report down
        return FigureView(spec, None, f"{type(e).__name__}: {e}")


def _risk_sections(checks: list[CheckView]) -> list[dict[str, Any]]:
    texts = _risk_texts()
    out = []
    for risk, info in texts.items():
        members = [c for c in checks if c.result.risk == risk]
        if members:
            out.append({"key": risk, **info, "checks": members})
    return out


def _references(checks: list[CheckView]) -> list[tuple[str, list[CheckView]]]:
    """Each cited reference once, with the checks that cite it, in order of first citation."""
    cited: dict[str, list[CheckView]] = {}
    for c in checks:
        for ref in c.result.references:
            cited.setdefault(ref, []).append(c)
    return list(cited.items())


@lru_cache(maxsize=1)
def _risk_texts() -> dict[str, dict[str, str]]:
    text = resources.files("recaudit.reports").joinpath("risks.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


# ----------------------------------------------------------------------------------- helpers


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "check"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_EXAMPLE_CHARS else text[:MAX_EXAMPLE_CHARS] + f" … [{len(text) - MAX_EXAMPLE_CHARS} more characters]"


def fmt_number(x: Any) -> str:
    """Numbers for people: 4 significant digits, thousands separated, NaN/inf spelled out, None as —."""
    if x is None:
        return "—"
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return str(x)
    if isinstance(x, int):
        return f"{x:,}"
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    if x != 0 and abs(x) < 1e-3:
        return f"{x:.2e}"
    return f"{x:.4g}"


def fmt_ci(m: MetricValue) -> str:
    if m.ci_low is None or m.ci_high is None:
        return "—"
    return f"[{fmt_number(m.ci_low)}, {fmt_number(m.ci_high)}]"


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(
        loader=PackageLoader("recaudit.reports", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_number
    env.filters["ci"] = fmt_ci
    env.filters["direction"] = lambda d: _ARROWS.get(d, d)
    env.filters["status_label"] = lambda s: s.replace("_", " ")
    env.filters["seconds"] = lambda s: "—" if s is None else (f"{s:.1f} s" if s < 120 else f"{s / 60:.1f} min")
    return env
