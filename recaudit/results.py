"""Typed audit results: metrics with CIs, group tables, figures as data, verdicts, provenance.

Everything a check produces is one ``CheckResult``; an audit is one ``AuditResults``. Both
serialise to JSON and back without loss (pydantic), so the report and the diff never need the
model that produced them. Figures are stored as data (``FigureSpec``) and drawn by ``reports``.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

SCHEMA_VERSION = "1.0"

Risk = Literal["fairness", "robustness", "privacy", "performance", "utility"]
Direction = Literal["lower_is_better", "higher_is_better", "neutral"]
CheckStatus = Literal["pass", "fail", "error", "not_evaluated"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class MetricValue(_Model):
    """One number with its uncertainty; ``name`` is the key thresholds refer to (e.g. ``snsr.prag@20``)."""

    name: str
    value: float
    ci_low: float | None = None
    ci_high: float | None = None
    ci_level: float = 0.95
    p_value: float | None = None
    n: int | None = None
    direction: Direction = "neutral"
    variant: str | None = None
    description: str = ""

    @field_validator("value", "ci_low", "ci_high", "p_value", mode="before")
    @classmethod
    def _plain_float(cls, v: Any) -> Any:
        # numpy scalars serialise badly; coerce once here so every producer can pass them.
        return None if v is None else float(v)

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
    y: list[float]
    y_low: list[float] | None = None
    y_high: list[float] | None = None


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
    value: float
    op: str
    threshold: float
    message: str = ""


class Verdict(_Model):
    """Pass/fail of one check against its configured thresholds."""

    status: CheckStatus = "not_evaluated"
    breaches: list[Breach] = Field(default_factory=list)
    evaluated: list[str] = Field(default_factory=list)


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
    reproducibility: Reproducibility = Field(default_factory=Reproducibility)
    error: str | None = None

    def metric(self, name: str) -> MetricValue:
        """The metric called ``name``; KeyError names the ones that exist."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise KeyError(f"check {self.name!r} has no metric {name!r}; has: {[m.name for m in self.metrics]}")

    def metric_names(self) -> list[str]:
        return [m.name for m in self.metrics]


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
        """Serialise to JSON text (NaN/inf kept as JSON constants)."""
        return self.model_dump_json(indent=indent)

    @classmethod
    def from_json(cls, text: str) -> "AuditResults":
        """Parse JSON written by ``to_json``."""
        return cls.model_validate_json(text)
