"""Thresholds, the status of each check, the overall verdict and the exit code for CI gates.

A threshold is ``METRIC[.FIELD] OP NUMBER``: FIELD is empty (the point estimate) or one of ``p``,
``p_adj``, ``ci_low``, ``ci_high`` (``snsr.prag@20.max.p >= 0.05``, ``dgu.popularity.ci_high <= 0.2``).
A metric the check did not produce is an error of the audit config, not a failed check.

A check's status, in this order of precedence (``judge``):
  error       the check crashed, or a threshold names a metric it did not produce
  incomplete  too little evidence: coverage below ``min_answered`` / ``min_usable``
  not_judged  evidence is there, but no threshold was configured
  fail        a threshold is breached (a NaN value or a missing p-value breaches)
  incomplete  every threshold holds, but a test of the check is underpowered (its p-value floor
              exceeds α), so holding proves nothing
  pass        judged on sufficient evidence, every threshold holds

Exit codes, each meaning one thing (most severe first when checks differ):
  2 error (usage, config, input, or a check crashed) · 1 a threshold breached ·
  3 incomplete evidence · 4 a check not judged (no thresholds; ``--allow-unjudged`` makes it 0) ·
  0 every check judged and passed.
"""

from __future__ import annotations

import math
import operator
import re
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from recaudit.results import AuditResults, Breach, CheckResult, Coverage, MetricValue, Overall, Verdict, overall

__all__ = ["Overall", "overall"]  # the audit's one-line verdict lives with the results it reads

EXIT_PASS = 0
EXIT_BREACH = 1
EXIT_ERROR = 2
EXIT_INCOMPLETE = 3
EXIT_NOT_JUDGED = 4
EXIT_CODES_HELP = (
    "Exit status: 0 every check judged and passed; 1 a threshold breached; 2 usage, config or input "
    "error, or a check crashed; 3 incomplete evidence (adapter errors, unusable answers or an "
    "underpowered test); 4 a check had no thresholds (not judged; --allow-unjudged turns 4 into 0); "
    "130 interrupted."
)
ALPHA = 0.05
FIELDS = ("p", "p_adj", "ci_low", "ci_high")

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
    """``metric op value``: the metric's point estimate (or ``field`` of it) must satisfy the comparison."""

    metric: str
    op: str
    value: float
    field: str = ""

    @classmethod
    def parse(cls, text: str) -> "Threshold":
        """Parse ``"snsr.prag@20 <= 0.05"``; ValueError says what form is expected."""
        if not isinstance(text, str):
            raise ValueError(f"a threshold is a string like 'snsr.prag@20 <= 0.05', got {text!r}")
        m = _THRESHOLD_RE.match(text)
        if m is None:
            raise ValueError(
                f"cannot parse threshold {text!r}: expected 'METRIC OP NUMBER' with OP one of "
                f"{', '.join(_OPS)} (e.g. 'snsr.prag@20 <= 0.05'; a metric's p-value or interval as "
                "'METRIC.p', '.p_adj', '.ci_low', '.ci_high')"
            )
        return cls(m["metric"], m["op"], float(m["value"]))

    def readings(self) -> list[tuple[str, str]]:
        """The (metric, field) pairs this threshold may mean: the whole name, or NAME + a field suffix."""
        out = [(self.metric, self.field)]
        if not self.field:
            for f in FIELDS:
                if self.metric.endswith("." + f):
                    out.append((self.metric[: -len(f) - 1], f))
        return out

    def resolve(self, produced: dict[str, MetricValue]) -> tuple[MetricValue, str] | None:
        """The metric and field this threshold reads among ``produced``, or None."""
        for name, f in self.readings():
            if name in produced:
                return produced[name], f
        return None

    def holds(self, x: float) -> bool:
        """True when ``x`` satisfies the threshold (NaN never does)."""
        return not math.isnan(x) and _OPS[self.op](x, self.value)

    def __str__(self) -> str:
        name = f"{self.metric}.{self.field}" if self.field else self.metric
        return f"{name} {self.op} {self.value:g}"


def evaluate_verdict(
    result: CheckResult, thresholds: Sequence[Threshold], coverage: Coverage | None = None, alpha: float = ALPHA
) -> Verdict:
    """The status of one check: see the module docstring for the order of precedence."""
    if result.error is not None:
        return Verdict(status="error", reason=result.error.splitlines()[0])
    coverage = coverage if coverage is not None else result.coverage
    produced = {m.name: m for m in result.metrics}
    breaches: list[Breach] = []
    evaluated: list[str] = []
    unknown: list[str] = []
    for t in thresholds:
        hit = t.resolve(produced)
        if hit is None:
            unknown.append(t.metric)
            breaches.append(
                Breach(
                    metric=t.metric, value=math.nan, op=t.op, threshold=t.value,
                    message=f"threshold on unknown metric {t.metric!r}; check {result.name!r} produced: "
                    f"{', '.join(sorted(produced)) or 'no metrics'}",
                )
            )
            continue
        metric, f = hit
        label = f"{metric.name}.{f}" if f else metric.name
        evaluated.append(str(t))
        x = metric.field(f)
        if not t.holds(x):
            why = (
                f"{label} is missing or NaN (could not be computed)"
                if math.isnan(x)
                else f"{label} = {x:.6g} breaches {t.op} {t.value:g}"
            )
            breaches.append(Breach(metric=label, value=x, op=t.op, threshold=t.value, message=why))
    if unknown:
        return Verdict(status="error", breaches=breaches, evaluated=evaluated,
                       reason=f"threshold on unknown metric {unknown[0]!r}")
    if coverage is not None and not coverage.sufficient:
        return Verdict(status="incomplete", evaluated=[], reason=coverage.reason or "too little evidence")
    if not thresholds:
        return Verdict(status="not_judged", reason="no thresholds configured")
    if breaches:
        return Verdict(status="fail", breaches=breaches, evaluated=evaluated,
                       reason=f"{len(breaches)} of {len(thresholds)} thresholds breached")
    weak = underpowered_tests(result, alpha)
    if weak:
        return Verdict(status="incomplete", evaluated=evaluated, reason=weak)
    return Verdict(status="pass", evaluated=evaluated)


def underpowered_tests(result: CheckResult, alpha: float = ALPHA) -> str | None:
    """One line naming the check's tests whose p-value floor exceeds α (None when every test can reach α)."""
    weak = [m for m in result.metrics if m.has_test and (m.underpowered or (m.p_floor is not None and m.p_floor > alpha))]
    if not weak:
        return None
    first = weak[0]
    need = f"; needs n ≥ {first.needed_n}" if first.needed_n else ""
    floor = f"p floor {first.p_floor:.3g} > α {alpha:g}" if first.p_floor is not None else "underpowered"
    more = f" (and {len(weak) - 1} more)" if len(weak) > 1 else ""
    return f"test {first.name} underpowered: {floor}{need}{more}"


def exit_code(statuses: Iterable[str], allow_unjudged: bool = False) -> int:
    """The most severe status's code: error 2 > fail 1 > incomplete 3 > not_judged 4 (0 if allowed) > pass 0."""
    statuses = set(statuses)
    if "error" in statuses:
        return EXIT_ERROR
    if "fail" in statuses:
        return EXIT_BREACH
    if "incomplete" in statuses:
        return EXIT_INCOMPLETE
    if "not_judged" in statuses or "not_evaluated" in statuses:
        return EXIT_PASS if allow_unjudged else EXIT_NOT_JUDGED
    return EXIT_PASS


def audit_exit_code(results: AuditResults, allow_unjudged: bool = False) -> int:
    """The exit code of an audit run, from its checks' statuses (an audit with no checks is not judged)."""
    if not results.checks:
        return EXIT_PASS if allow_unjudged else EXIT_NOT_JUDGED
    return exit_code((c.status for c in results.checks), allow_unjudged)
