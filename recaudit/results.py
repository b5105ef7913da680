"""Typed audit results: metrics with CIs, group tables, figures as data, verdicts, provenance.

Everything a check produces is one ``CheckResult``; an audit is one ``AuditResults``. Both
serialise to JSON and back without loss (pydantic), so the report and the diff never need the
model that produced them. Figures are stored as data (``FigureSpec``) and drawn by ``reports``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator

from recaudit.metric_names import MetricName, parse_metric_name  # noqa: F401 - re-exported for reports

SCHEMA_VERSION = "1.1"

Risk = Literal["fairness", "robustness", "privacy", "performance", "utility"]
Direction = Literal["lower_is_better", "higher_is_better", "neutral"]
# pass: judged, every threshold holds; fail: a threshold breached; error: the check crashed or its
# config named a metric it does not make; incomplete: too little evidence to judge (coverage below
# a floor, or an underpowered test); not_judged: evidence is there but no threshold was set.
CheckStatus = Literal["pass", "fail", "error", "incomplete", "not_judged"]
STATUSES: tuple[str, ...] = ("pass", "fail", "error", "incomplete", "not_judged")


class _Model(BaseModel):
    # strict JSON: NaN and ±inf are written as null (a reader of any language can parse the file);
    # fields that must be numbers read null back as NaN (see _nan_from_null)
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="null")


def _nan_from_null(v: Any) -> Any:
    return math.nan if v is None else v


# a float that results.json writes as null when it is NaN or ±inf: its JSON Schema says so
JsonFloat = Annotated[float, WithJsonSchema({"anyOf": [{"type": "number"}, {"type": "null"}]})]


class MetricValue(_Model):
    """One number with its uncertainty; ``name`` is the key thresholds refer to (e.g. ``snsr.prag@20``)."""

    name: str
    value: JsonFloat
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float = 0.95
    ci_method: str | None = None
    ci_unreliable: bool = False
    p_value: float | None = None
    p_adj: float | None = None
    p_adj_method: str | None = None
    p_floor: float | None = None
    mde: float | None = None
    underpowered: bool = False
    needed_n: int | None = None
    power_note: str = ""
    n: int | None = None
    direction: Direction = "neutral"
    variant: str | None = None
    description: str = ""
    null_reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _value_float(cls, data: Any) -> Any:
        # null in results.json is a NaN or ±inf written strictly (null_reason says which); numpy
        # scalars are coerced once here so every producer can pass them
        if isinstance(data, dict) and "value" in data:
            v = data["value"]
            if v is None:
                data = {**data, "value": {"+inf": math.inf, "-inf": -math.inf}.get(data.get("null_reason") or "", math.nan)}
            else:
                data = {**data, "value": float(v)}
        return data

    @field_validator("ci_low", "ci_high", "p_value", "p_adj", "p_floor", "mde", mode="before")
    @classmethod
    def _plain_float(cls, v: Any) -> Any:
        if v is None:
            return None
        v = float(v)
        return None if math.isnan(v) else v

    @model_validator(mode="after")
    def _say_why_null(self) -> "MetricValue":
        if not math.isfinite(self.value) and self.null_reason is None:
            self.null_reason = "not computable (NaN)" if math.isnan(self.value) else ("+inf" if self.value > 0 else "-inf")
        return self

    def field(self, part: str) -> float:
        """``value`` or one of ``p`` / ``p_adj`` / ``ci_low`` / ``ci_high`` (NaN when absent): what gates read."""
        if part in ("", "value"):
            return self.value
        attr = {"p": "p_value", "p_adj": "p_adj", "ci_low": "ci_low", "ci_high": "ci_high"}.get(part)
        if attr is None:
            raise KeyError(f"no metric field {part!r}; one of value, p, p_adj, ci_low, ci_high")
        v = getattr(self, attr)
        return math.nan if v is None else float(v)

    @property
    def has_test(self) -> bool:
        """True when this metric carries a hypothesis test (a p-value)."""
        return self.p_value is not None

    def ci_excludes(self, x: float) -> bool:
        """True when the confidence interval exists and does not contain ``x``."""
        return self.ci_low is not None and self.ci_high is not None and not (self.ci_low <= x <= self.ci_high)

    @property
    def is_finite(self) -> bool:
        return math.isfinite(self.value)


class GroupTable(_Model):
    """A per-group table (rows are groups); cells are numbers, strings or None."""

    name: str
    columns: list[str]
    rows: list[list[float | int | str | None]]
    description: str = ""

    def as_records(self) -> list[dict[str, Any]]:
        """Rows as dictionaries keyed by column name."""
        return [dict(zip(self.columns, row)) for row in self.rows]


class Series(_Model):
    """One line/bar series of a figure."""

    label: str
    x: list[float | int | str]
    y: list[JsonFloat]
    y_low: list[JsonFloat] | None = None
    y_high: list[JsonFloat] | None = None

    @field_validator("y", "y_low", "y_high", mode="before")
    @classmethod
    def _nan_points(cls, v: Any) -> Any:
        return None if v is None else [_nan_from_null(x) for x in v]


class FigureSpec(_Model):
    """A figure as data; ``reports.figures`` draws it in the one shared style."""

    name: str
    kind: Literal["line", "bar", "heatmap", "lorenz", "histogram"]
    title: str
    x_label: str = ""
    y_label: str = ""
    series: list[Series] = Field(default_factory=list)
    # heatmap only: matrix[row][col] with labels
    matrix: list[list[float | None]] | None = None
    row_labels: list[str] | None = None
    col_labels: list[str] | None = None
    caption: str = ""


class Example(_Model):
    """One example row (e.g. prompt / raw output / parsed list). Values are untrusted text."""

    fields: dict[str, str]


class Breach(_Model):
    """A threshold that a metric did not meet."""

    metric: str
    value: JsonFloat  # NaN (a metric that could not be computed breaches) is written as null
    op: str
    threshold: float
    message: str = ""

    @field_validator("value", mode="before")
    @classmethod
    def _nan(cls, v: Any) -> Any:
        return _nan_from_null(v)


class Verdict(_Model):
    """The status of one check (see ``CheckStatus``), its breaches, and why when it is not judged."""

    status: CheckStatus = "not_judged"
    breaches: list[Breach] = Field(default_factory=list)
    evaluated: list[str] = Field(default_factory=list)
    reason: str | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _old_name(cls, v: Any) -> Any:
        return "not_judged" if v == "not_evaluated" else v  # results.json of schema 1.0


class Coverage(_Model):
    """How much of what a check asked the model became evidence; computed once, in ``recaudit.evidence``."""

    requested: int = 0
    answered: int = 0
    usable: int = 0
    outcomes: dict[str, int] = Field(default_factory=dict)
    answered_rate: float | None = None
    usable_rate: float | None = None
    min_answered: float = 0.98
    min_usable: float = 0.0
    sufficient: bool = True
    reason: str | None = None

    @field_validator("answered_rate", "usable_rate", mode="before")
    @classmethod
    def _rate(cls, v: Any) -> Any:
        return None if v is None or (isinstance(v, float) and math.isnan(v)) else v


class Reproducibility(_Model):
    """What is needed to reproduce a result: seeds, model identity, data, versions."""

    recaudit_version: str = ""
    seed: int | None = None
    adapter_fingerprint: dict[str, Any] = Field(default_factory=dict)
    data_hashes: dict[str, str] = Field(default_factory=dict)
    library_versions: dict[str, str] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    cache_stats: dict[str, int] = Field(default_factory=dict)
    started_at: str = ""
    duration_s: float | None = None
    platform: str = ""


class CheckResult(_Model):
    """The typed outcome of one check; the report and the diff read only this."""

    name: str
    check: str
    title: str = ""
    risk: Risk = "fairness"
    params: dict[str, Any] = Field(default_factory=dict)
    metrics: list[MetricValue] = Field(default_factory=list)
    tables: list[GroupTable] = Field(default_factory=list)
    figures: list[FigureSpec] = Field(default_factory=list)
    examples: list[Example] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    references: list[str] = Field(default_factory=list)
    verdict: Verdict = Field(default_factory=Verdict)
    coverage: Coverage | None = None
    reproducibility: Reproducibility = Field(default_factory=Reproducibility)
    error: str | None = None

    @property
    def status(self) -> CheckStatus:
        """The check's status: ``error`` when it crashed, else its verdict's."""
        return "error" if self.error is not None else self.verdict.status

    def metric(self, name: str) -> MetricValue:
        """The metric called ``name``; KeyError names the ones that exist."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"check {self.name!r} has no metric {name!r}; has: {[m.name for m in self.metrics]}")

    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]


# the columns of ``AuditResults.to_frame``
FRAME_COLUMNS = (
    "check", "metric", "measure", "k", "attribute", "value", "stat", "estimate",
    "ci_low", "ci_high", "p", "p_adj", "n", "status",
)


class AuditResults(_Model):
    """All checks of one audit run plus the run's provenance."""

    schema_version: str = SCHEMA_VERSION
    audit_name: str = "recaudit audit"
    created_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    checks: list[CheckResult] = Field(default_factory=list)
    reproducibility: Reproducibility = Field(default_factory=Reproducibility)

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; has: {[c.name for c in self.checks]}")

    def to_json(self, indent: int = 2) -> str:
        """Serialise to strict JSON text (NaN/inf written as null, with ``null_reason`` on metrics)."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "AuditResults":
        """Parse JSON written by ``to_json``."""
        return cls.model_validate_json(text)

    def to_frame(self) -> Any:
        """A tidy pandas DataFrame, one row per metric (columns: ``FRAME_COLUMNS``; names parsed by
        ``recaudit.metric_names``)."""
        import pandas as pd  # here only: the results model imports without pandas

        rows = []
        for c in self.checks:
            for m in c.metrics:
                parts = parse_metric_name(m.name)
                rows.append((c.name, m.name, parts.measure, parts.k, parts.attribute, parts.value, parts.stat,
                             m.value, m.ci_low, m.ci_high, m.p_value, m.p_adj, m.n, c.status))
        frame = pd.DataFrame(rows, columns=list(FRAME_COLUMNS))
        for col in ("estimate", "ci_low", "ci_high", "p", "p_adj"):
            frame[col] = frame[col].astype(float)  # None → NaN: numeric operations just work
        for col in ("k", "n"):
            frame[col] = frame[col].astype("Int64")
        return frame


@dataclass(frozen=True)
class Overall:
    """The audit's one-line verdict: a status word and what happened."""

    status: str  # PASS | FAIL | ERROR | INCOMPLETE | NOT JUDGED
    summary: str
    counts: dict[str, int]

    @property
    def css(self) -> str:
        """The status as a check status name (for badges)."""
        return {"NOT JUDGED": "not_judged"}.get(self.status, self.status.lower())


def overall(results: AuditResults) -> Overall:
    """``PASS`` only when every check was judged and passed; otherwise say what happened, worst first."""
    statuses: list[str] = [c.status for c in results.checks]
    n = len(statuses)
    counts = {s: statuses.count(s) for s in STATUSES}
    if n == 0:
        return Overall("NOT JUDGED", "NOT JUDGED: the audit ran no checks", counts)
    if counts["error"]:
        return Overall("ERROR", f"ERROR: {counts['error']} of {n} checks crashed or are misconfigured", counts)
    if counts["fail"]:
        return Overall("FAIL", f"FAIL: {counts['fail']} of {n} checks breached a threshold", counts)
    if counts["incomplete"]:
        return Overall("INCOMPLETE", f"INCOMPLETE: {counts['incomplete']} of {n} checks lack evidence", counts)
    if counts["not_judged"]:
        return Overall("NOT JUDGED", f"NOT JUDGED: {counts['not_judged']} of {n} checks have no thresholds", counts)
    return Overall("PASS", f"PASS: all {n} checks judged and passed", counts)

