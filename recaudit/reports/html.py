"""Render an ``AuditResults`` as one self-contained HTML file.

Self-contained: CSS is inline, figures are SVG data URIs, there is no script and no external
resource, and a Content-Security-Policy forbids loading any. Everything from results (item titles,
model outputs, check names, notes) is untrusted and goes through Jinja2 autoescaping; nothing is
marked safe except the data URIs this module builds itself from base64.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping, Sequence

import yaml
from jinja2 import Environment, PackageLoader, StrictUndefined

import recaudit
from recaudit.reports.explorer import build_explorer
from recaudit.reports.export import metric_thresholds
from recaudit.reports.figure_cache import render_figure
from recaudit.results import AuditResults, CheckResult, FigureSpec, MetricValue, overall, parse_metric_name

MAX_EXAMPLES = 10
MAX_EXAMPLE_CHARS = 1500
ESSENTIAL_METRICS = 6  # metric rows shown per check before "all metrics" (thresholded ones always shown)
SECTION_IDS = ("summary", "risks", "checks", "samples", "signoff", "references", "reproducibility")
_STATUS_ORDER = {"error": 4, "fail": 3, "incomplete": 2, "not_judged": 1, "pass": 0}
_ARROWS = {"lower_is_better": "↓ lower is better", "higher_is_better": "↑ higher is better", "neutral": ""}
_FIELD_SUFFIXES = (".p_adj", ".p", ".ci_low", ".ci_high")


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
    flags: list[str] = field(default_factory=list)


@dataclass
class Finding:
    """The one line a reader needs about a check: its headline metric with uncertainty and caveats."""

    metric: MetricValue | None
    estimate: str
    details: list[str]
    flags: list[str]


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
    finding: Finding | None = None
    coverage_line: str = ""
    essential: list[MetricRow] = field(default_factory=list)
    more: list[MetricRow] = field(default_factory=list)


@dataclass
class Subject:
    """What was audited, for the header: the model, the data, and whether it is only the demo."""

    model: str
    adapter: str
    data: str
    data_hashes: list[str]
    demo: bool


def check_status(check: CheckResult) -> str:
    """A check's status for display: ``error`` when it errored, else its verdict."""
    return check.status


def overall_status(results: AuditResults) -> str:
    """The overall status as a badge class: pass only when every check was judged and passed."""
    return overall(results).css


def results_digest(results: AuditResults) -> str:
    """SHA-256 of the results as ``recaudit audit`` writes them (``AuditResults.to_json``)."""
    return hashlib.sha256(results.to_json().encode("utf-8")).hexdigest()


def render_html(
    results: AuditResults,
    *,
    title: str | None = None,
    samples: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
    sample_totals: Mapping[str, int] | None = None,
    results_sha256: str | None = None,
    headlines: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """The report as HTML text; ``samples`` are each check's evidence records (plain dicts, as in
    ``checks/<name>.samples.jsonl``) for the sample explorer, possibly only the first ones, with
    ``sample_totals`` (check → records in its file) counting the rest; ``results_sha256`` is the digest of the
    results.json file (default: of ``results.to_json()``); ``headlines``: check → the metric patterns
    it declares as its headline (``recaudit.checks.declared_headlines``; the report reads results only)."""
    headlines = headlines or {}
    checks = [_check_view(i, c, headlines.get(c.check, ())) for i, c in enumerate(results.checks)]
    counts = {s: sum(1 for c in checks if c.status == s) for s in _STATUS_ORDER}
    rep = results.reproducibility
    verdict = overall(results)
    title = title or results.audit_name
    digest = results_sha256 or results_digest(results)
    return _env().get_template("report.html.j2").render(
        title=title,
        results=results,
        checks=checks,
        counts=counts,
        overall=verdict.css,
        overall_word=verdict.status,
        overall_summary=verdict.summary,
        overall_detail=verdict.summary.split(": ", 1)[-1],
        subject=_subject(results),
        explorer=build_explorer(checks, samples or {}, sample_totals),
        digest=digest,
        running_header=_css_string(f"{_short(title, 60)} · results sha256 {digest[:16]}"),
        risks=_risk_sections(checks),
        references=_references(checks),
        rep=rep,
        config_yaml=yaml.safe_dump(rep.config, sort_keys=False, allow_unicode=True) if rep.config else "",
        fingerprint_json=json.dumps(rep.adapter_fingerprint, indent=2, sort_keys=True, default=str),
        total_check_seconds=sum(c.result.reproducibility.duration_s or 0.0 for c in checks),
        renderer_version=recaudit.__version__,
    )


# ------------------------------------------------------------------------------------- views


def _check_view(index: int, check: CheckResult, headlines: Sequence[str] = ()) -> CheckView:
    status = check_status(check)
    thresholds = metric_thresholds(check)
    breached = {b.metric for b in check.verdict.breaches}
    metrics = [
        MetricRow(m, thresholds.get(m.name, []), ("fail" if m.name in breached else "pass") if m.name in thresholds else "",
                  metric_flags(m))
        for m in check.metrics
    ]
    head = headline_metric(check, headlines)
    essential = [r for r in metrics if r.thresholds or r.metric is head]
    for r in metrics:  # then tested metrics, then the first ones, up to the budget
        if len(essential) >= max(ESSENTIAL_METRICS, len([x for x in metrics if x.thresholds]) + 1):
            break
        if r not in essential and r.metric.has_test:
            essential.append(r)
    for r in metrics:
        if len(essential) >= ESSENTIAL_METRICS:
            break
        if r not in essential:
            essential.append(r)
    order = {id(r): i for i, r in enumerate(metrics)}
    essential.sort(key=lambda r: order[id(r)])
    more = [r for r in metrics if r not in essential]
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
        finding=None if head is None else finding(head),
        coverage_line=coverage_line(check),
        essential=essential,
        more=more,
    )


def _resolve(check: CheckResult, name: str) -> MetricValue | None:
    """The metric a threshold or breach label names (``NAME`` or ``NAME.p`` etc.)."""
    by_name = {m.name: m for m in check.metrics}
    if name in by_name:
        return by_name[name]
    for suffix in _FIELD_SUFFIXES:
        if name.endswith(suffix) and name[: -len(suffix)] in by_name:
            return by_name[name[: -len(suffix)]]
    return None


def headline_metric(check: CheckResult, headlines: Sequence[str] = ()) -> MetricValue | None:
    """The metric that says most about a check: the first breached, else the first thresholded, else
    the first finite one matching ``headlines`` (the patterns the check declares as its headline),
    else the first aggregate (``...max``) with a test, else the first with a test, else the first finite one."""
    configured = check.reproducibility.config.get("thresholds")
    judged = list(check.verdict.evaluated) + (list(configured) if isinstance(configured, list) else [])
    for label in [b.metric for b in check.verdict.breaches] + [str(t).split(" ", 1)[0] for t in judged]:
        m = _resolve(check, label)
        if m is not None:
            return m
    for m in check.metrics:
        if m.is_finite and any(fnmatch.fnmatchcase(m.name, p) for p in headlines):
            return m
    tested = [m for m in check.metrics if m.has_test]
    for m in tested:
        if parse_metric_name(m.name).stat == "max":
            return m
    if tested:
        return tested[0]
    for m in check.metrics:
        if parse_metric_name(m.name).stat == "max" and m.is_finite:
            return m
    return next((m for m in check.metrics if m.is_finite), check.metrics[0] if check.metrics else None)


def metric_flags(m: MetricValue) -> list[str]:
    """Caveats a reader must see next to a number."""
    flags = []
    if m.underpowered:
        flags.append("underpowered" + (f" (needs n ≥ {m.needed_n:,})" if m.needed_n else ""))
    if m.ci_unreliable:
        flags.append("CI unreliable")
    if not m.is_finite:
        flags.append(m.null_reason or "not computable")
    return flags


def finding(m: MetricValue) -> Finding:
    """The headline metric as text: estimate [CI], p, p_adj, p-value floor, attribute, flags."""
    ci = f" {fmt_ci(m)}" if m.ci_low is not None and m.ci_high is not None else ""
    details = []
    if m.p_value is not None:
        details.append(f"p = {fmt_number(m.p_value)}")
    if m.p_adj is not None:
        details.append(f"p_adj = {fmt_number(m.p_adj)}" + (f" ({m.p_adj_method})" if m.p_adj_method else ""))
    if m.p_floor is not None:
        details.append(f"p-value floor {fmt_number(m.p_floor)}")
    if m.mde is not None:
        details.append(f"smallest detectable effect {fmt_number(m.mde)}")
    attr = parse_metric_name(m.name).attribute
    if attr:
        details.append(f"attribute {attr}")
    if m.n is not None:
        details.append(f"n = {fmt_number(m.n)}")
    flags = metric_flags(m)
    if m.power_note:
        flags.append(m.power_note)
    return Finding(m, f"{m.name} = {fmt_number(m.value)}{ci}", details, flags)


def coverage_line(check: CheckResult) -> str:
    """``usable 412/480 (86%) · answered 480/480 · 68 unparsed`` (empty for checks without coverage)."""
    cov = check.coverage
    if cov is None:
        return ""
    if not cov.requested:
        return "no model calls recorded"
    parts = [f"usable {cov.usable:,}/{cov.requested:,} ({cov.usable / cov.requested:.0%})",
             f"answered {cov.answered:,}/{cov.requested:,}"]
    parts += [f"{n:,} {o.replace('_', ' ')}" for o, n in cov.outcomes.items() if o != "usable" and n]
    return " · ".join(parts)


def _subject(results: AuditResults) -> Subject:
    rep = results.reproducibility
    fp = rep.adapter_fingerprint
    adapter_cfg = rep.config.get("adapter") if isinstance(rep.config.get("adapter"), dict) else {}
    kind = str(adapter_cfg.get("kind") or fp.get("adapter") or "")
    model = next((str(fp[k]) for k in ("model", "model_path", "name", "callable", "base_url") if fp.get(k)), "")
    data_cfg = rep.config.get("data")
    if isinstance(data_cfg, dict):
        data = " ".join(f"{k}: {v}" for k, v in data_cfg.items() if v not in (None, "", [], {}))
    else:
        data = str(data_cfg or "")
    hashes = [f"{k} {v}" for k, v in rep.data_hashes.items()]
    return Subject(model=model or "—", adapter=kind or "—", data=data or "—", data_hashes=hashes, demo=kind == "default")


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


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _css_string(text: str) -> str:
    """``text`` as a quoted CSS string: every character outside [A-Za-z0-9 ] is a CSS escape, so
    untrusted text can neither end the string nor the style element."""
    return '"' + "".join(ch if ch.isascii() and (ch.isalnum() or ch == " ") else f"\\{ord(ch):06x}" for ch in text) + '"'


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
