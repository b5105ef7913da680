"""Compare two audits (e.g. two model versions): which metrics moved, which moved the wrong way.

A metric *regressed* when it moved in its bad direction (``MetricValue.direction``) and the move is
beyond noise: when both values have confidence intervals, the intervals do not overlap; without
intervals, the change exceeds ``max(tolerance, rel_tolerance * |old|)``. The same test in the good
direction is an improvement; a beyond-noise move of a ``neutral`` metric is reported as changed.
Non-overlap of two CIs is a conservative test (two 95% intervals that just touch correspond to a
difference significant well beyond 5%), so a flagged regression is a real one.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from recaudit.results import AuditResults, CheckResult, MetricValue

ChangeKind = Literal["regressed", "improved", "changed", "unchanged", "added", "removed"]
_ORDER: tuple[ChangeKind, ...] = ("regressed", "improved", "changed", "added", "removed", "unchanged")


@dataclass(frozen=True)
class MetricChange:
    """How one metric of one check differs between the old and the new audit."""

    check: str
    metric: str
    variant: str | None
    kind: ChangeKind
    old: float | None
    new: float | None
    old_ci: tuple[float, float] | None
    new_ci: tuple[float, float] | None
    direction: str
    reason: str

    @property
    def delta(self) -> float | None:
        return None if self.old is None or self.new is None else self.new - self.old

    def label(self) -> str:
        return f"{self.check} / {self.metric}" + (f" ({self.variant})" if self.variant else "")


@dataclass(frozen=True)
class VerdictChange:
    """A check whose status differs (e.g. pass → fail)."""

    check: str
    old: str
    new: str

    @property
    def is_worse(self) -> bool:
        rank = {"not_evaluated": 0, "not_judged": 0, "pass": 0, "incomplete": 1, "fail": 2, "error": 3}
        return rank.get(self.new, 0) > rank.get(self.old, 0)


@dataclass
class AuditDiff:
    """All metric and verdict changes between two audits."""

    changes: list[MetricChange] = field(default_factory=list)
    verdicts: list[VerdictChange] = field(default_factory=list)

    def of_kind(self, kind: ChangeKind) -> list[MetricChange]:
        return [c for c in self.changes if c.kind == kind]

    @property
    def regressions(self) -> list[MetricChange]:
        return self.of_kind("regressed")

    @property
    def has_regressions(self) -> bool:
        """True when a metric regressed or a check's verdict got worse (the CI gate)."""
        return bool(self.regressions) or any(v.is_worse for v in self.verdicts)

    def counts(self) -> dict[str, int]:
        return {k: len(self.of_kind(k)) for k in _ORDER}

    def to_dict(self) -> dict:
        return {
            "counts": self.counts(),
            "changes": [{**asdict(c), "delta": c.delta} for c in self.changes],
            "verdicts": [asdict(v) | {"worse": v.is_worse} for v in self.verdicts],
        }

    def to_text(self, show_unchanged: bool = False) -> str:
        """A human-readable summary, regressions first."""
        lines = []
        for kind in _ORDER:
            if kind == "unchanged" and not show_unchanged:
                continue
            for c in self.of_kind(kind):
                lines.append(f"{kind.upper():<10} {c.label()}: {_value(c.old, c.old_ci)} → {_value(c.new, c.new_ci)}  ({c.reason})")
        for v in self.verdicts:
            lines.append(f"{'VERDICT':<10} {v.check}: {v.old} → {v.new}" + ("  (worse)" if v.is_worse else ""))
        counts = self.counts()
        lines.append("summary: " + ", ".join(f"{n} {k}" for k, n in counts.items()))
        return "\n".join(lines)


def diff_results(
    old: AuditResults, new: AuditResults, tolerance: float = 0.01, rel_tolerance: float = 0.05
) -> AuditDiff:
    """Compare every metric of every check present in either audit."""
    if tolerance < 0 or rel_tolerance < 0:
        raise ValueError("tolerance and rel_tolerance must be >= 0")
    out = AuditDiff()
    old_checks = {c.name: c for c in old.checks}
    new_checks = {c.name: c for c in new.checks}
    for name in list(old_checks) + [n for n in new_checks if n not in old_checks]:
        o, n = old_checks.get(name), new_checks.get(name)
        old_metrics = _metrics(o)
        new_metrics = _metrics(n)
        for key in list(old_metrics) + [k for k in new_metrics if k not in old_metrics]:
            out.changes.append(
                compare_metric(name, old_metrics.get(key), new_metrics.get(key), tolerance, rel_tolerance)
            )
        so, sn = _status(o), _status(n)
        if so != sn:
            out.verdicts.append(VerdictChange(name, so, sn))
    return out


def compare_metric(
    check: str, old: MetricValue | None, new: MetricValue | None, tolerance: float = 0.01, rel_tolerance: float = 0.05
) -> MetricChange:
    """Classify the change of one metric (see the module docstring for the rule)."""
    ref = new or old
    assert ref is not None
    base: dict[str, Any] = dict(
        check=check,
        metric=ref.name,
        variant=ref.variant,
        old=None if old is None else old.value,
        new=None if new is None else new.value,
        old_ci=_ci(old),
        new_ci=_ci(new),
        direction=ref.direction,
    )
    if old is None:
        return MetricChange(kind="added", reason="only in the new audit", **base)
    if new is None:
        return MetricChange(kind="removed", reason="only in the old audit", **base)
    if math.isnan(old.value) or math.isnan(new.value):
        same = math.isnan(old.value) and math.isnan(new.value)
        return MetricChange(kind="unchanged" if same else "changed", reason="NaN on " + ("both sides" if same else "one side"), **base)
    delta = new.value - old.value
    o_ci, n_ci = _ci(old), _ci(new)
    if o_ci is not None and n_ci is not None:
        beyond = n_ci[0] > o_ci[1] or n_ci[1] < o_ci[0]
        why = "CIs do not overlap" if beyond else "CIs overlap"
    else:
        limit = max(tolerance, rel_tolerance * abs(old.value))
        beyond = abs(delta) > limit
        why = f"|Δ| {'>' if beyond else '≤'} tolerance {limit:.3g} (no CIs)"
    why = f"Δ {delta:+.4g}; {why}"
    if not beyond:
        return MetricChange(kind="unchanged", reason=why, **base)
    direction = new.direction if new.direction != "neutral" else old.direction
    if direction == "neutral":
        return MetricChange(kind="changed", reason=why + "; no preferred direction", **base)
    worse = delta > 0 if direction == "lower_is_better" else delta < 0
    base["direction"] = direction
    return MetricChange(kind="regressed" if worse else "improved", reason=why + f"; {direction.replace('_', ' ')}", **base)


def _metrics(check: CheckResult | None) -> dict[tuple[str, str | None], MetricValue]:
    return {} if check is None else {(m.name, m.variant): m for m in check.metrics}


def _status(check: CheckResult | None) -> str:
    if check is None:
        return "absent"
    return check.status


def _ci(m: MetricValue | None) -> tuple[float, float] | None:
    if m is None or m.ci_low is None or m.ci_high is None:
        return None
    return (m.ci_low, m.ci_high)


def _value(x: float | None, ci: tuple[float, float] | None) -> str:
    if x is None:
        return "—"
    return f"{x:.4g}" + (f" [{ci[0]:.4g}, {ci[1]:.4g}]" if ci else "")
