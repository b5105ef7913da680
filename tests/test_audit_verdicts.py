"""Thresholds, verdicts and exit codes."""

from __future__ import annotations

import math

import pytest

from recaudit.audits.verdicts import Threshold, audit_exit_code, evaluate_verdict, exit_code
from recaudit.results import AuditResults, CheckResult, MetricValue


def _result(**metrics: float) -> CheckResult:
    return CheckResult(name="c", check="c", metrics=[MetricValue(name=k, value=v) for k, v in metrics.items()])


@pytest.mark.parametrize(
    "text, expected",
    [
        ("snsr.prag@20 <= 0.05", Threshold("snsr.prag@20", "<=", 0.05)),
        ("auc>=0.7", Threshold("auc", ">=", 0.7)),
        ("  mia.advantage.apa < 1e-2 ", Threshold("mia.advantage.apa", "<", 0.01)),
        ("exposure.lift.deepwordbug > -.5", Threshold("exposure.lift.deepwordbug", ">", -0.5)),
        ("n == 3", Threshold("n", "==", 3.0)),
    ],
)
def test_threshold_parses(text: str, expected: Threshold) -> None:
    assert Threshold.parse(text) == expected


@pytest.mark.parametrize("text", ["snsr <= ", "<= 0.5", "snsr =< 0.5", "snsr <= abc", "a b <= 1", "x != 1"])
def test_threshold_rejects_malformed(text: str) -> None:
    with pytest.raises(ValueError, match="METRIC OP NUMBER"):
        Threshold.parse(text)


def test_verdict_pass_fail_and_boundaries() -> None:
    r = _result(a=0.05, b=0.9)
    assert evaluate_verdict(r, [Threshold.parse("a <= 0.05"), Threshold.parse("b > 0.5")]).status == "pass"
    v = evaluate_verdict(r, [Threshold.parse("a < 0.05"), Threshold.parse("b > 0.5")])
    assert v.status == "fail"
    assert [b.metric for b in v.breaches] == ["a"]
    assert v.evaluated == ["a < 0.05", "b > 0.5"]


def test_nan_breaches_and_unknown_metric_is_error() -> None:
    assert evaluate_verdict(_result(a=math.nan), [Threshold.parse("a <= 1")]).status == "fail"
    v = evaluate_verdict(_result(a=0.0), [Threshold.parse("a <= 1"), Threshold.parse("zzz <= 1")])
    assert v.status == "error"
    assert "unknown metric 'zzz'" in v.breaches[0].message and "a" in v.breaches[0].message


def test_no_thresholds_and_errored_check() -> None:
    assert evaluate_verdict(_result(a=1.0), []).status == "not_evaluated"
    errored = CheckResult(name="c", check="c", error="boom")
    assert evaluate_verdict(errored, [Threshold.parse("a <= 1")]).status == "error"


def test_exit_codes() -> None:
    assert exit_code(["pass", "not_evaluated"]) == 0
    assert exit_code(["pass", "fail"]) == 1
    assert exit_code(["fail", "error", "pass"]) == 2
    ok = _result(a=1.0)
    broken = CheckResult(name="d", check="d", error="boom")  # verdict never set: the error still counts
    assert audit_exit_code(AuditResults(checks=[ok])) == 0
    assert audit_exit_code(AuditResults(checks=[ok, broken])) == 2
