"""Thresholds ("metric op value"), verdicts per check, and the audit's exit code for CI gates.

A threshold is judged on the metric's point estimate. A metric that the check did not produce is
an error of the audit config (exit code 2), not a failed check: the audit could not judge it.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from recaudit.results import AuditResults, Breach, CheckResult, Verdict

EXIT_PASS = 0
EXIT_BREACH = 1
EXIT_ERROR = 2

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    "<": operator.lt,
    ">=": operator.ge,
    ">": operator.gt,
    "==": lambda a, b: math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12),
}
_THRESHOLD_RE = re.compile(
    r"^\s*(?P<metric>[^\s<>=]+)\s*(?P<op><=|>=|==|<|>)\s*"
    r"(?P<value>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*$"
)


@dataclass(frozen=True)
class Threshold:
    """``metric op value``: the metric's point estimate must satisfy the comparison."""

    metric: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "Threshold":
        """Parse ``"snsr.prag@20 <= 0.05"``; ValueError says what form is expected."""
        if not isinstance(text, str):
            raise ValueError(f"a threshold is a string like 'snsr.prag@20 <= 0.05', got {text!r}")
        m = _THRESHOLD_RE.match(text)
        if m is None:
            raise ValueError(
                f"cannot parse threshold {text!r}: expected 'METRIC OP NUMBER' with OP one of "
                f"{', '.join(_OPS)} (e.g. 'snsr.prag@20 <= 0.05')"
            )
        return cls(m["metric"], m["op"], float(m["value"]))

    def holds(self, x: float) -> bool:
        """True when ``x`` satisfies the threshold (NaN never does)."""
        return not math.isnan(x) and _OPS[self.op](x, self.value)

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:g}"


def evaluate_verdict(result: CheckResult, thresholds: Sequence[Threshold]) -> Verdict:
    """Judge one check's metrics against its thresholds.

    ``error`` when the check errored or a threshold names a metric the check did not produce;
    ``fail`` when any threshold is breached (a NaN value breaches); ``pass`` when all hold;
    ``not_evaluated`` when the check has no thresholds.
    """
    if result.error is not None:
        return Verdict(status="error")
    if not thresholds:
        return Verdict(status="not_evaluated")
    produced = {m.name: m for m in result.metrics}
    breaches: list[Breach] = []
    evaluated: list[str] = []
    unknown = False
    for t in thresholds:
        metric = produced.get(t.metric)
        if metric is None:
            unknown = True
            breaches.append(
                Breach(
                    metric=t.metric,
                    value=math.nan,
                    op=t.op,
                    threshold=t.value,
                    message=f"threshold on unknown metric {t.metric!r}; check {result.name!r} produced: "
                    f"{', '.join(sorted(produced)) or 'no metrics'}",
                )
            )
            continue
        evaluated.append(str(t))
        if not t.holds(metric.value):
            why = (
                f"{t.metric} is NaN (could not be computed)"
                if math.isnan(metric.value)
                else f"{t.metric} = {metric.value:.6g} breaches {t.op} {t.value:g}"
            )
            breaches.append(Breach(metric=t.metric, value=metric.value, op=t.op, threshold=t.value, message=why))
    status = "error" if unknown else ("fail" if breaches else "pass")
    return Verdict(status=status, breaches=breaches, evaluated=evaluated)


def exit_code(statuses: Iterable[str]) -> int:
    """0 when nothing failed, 1 when a threshold was breached, 2 when a check (or its verdict) errored."""
    statuses = list(statuses)
    if "error" in statuses:
        return EXIT_ERROR
    if "fail" in statuses:
        return EXIT_BREACH
    return EXIT_PASS


def audit_exit_code(results: AuditResults) -> int:
    """The exit code of an audit run, from its checks' verdicts."""
    return exit_code("error" if c.error else c.verdict.status for c in results.checks)
