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
    assert evaluate_verdict(_result(a=1.0), []).status == "not_judged"
    errored = CheckResult(name="c", check="c", error="boom")
    assert evaluate_verdict(errored, [Threshold.parse("a <= 1")]).status == "error"


def test_exit_codes() -> None:
    assert exit_code(["pass", "not_judged"]) == 4
    assert exit_code(["pass", "not_judged"], allow_unjudged=True) == 0
    assert exit_code(["pass", "pass"]) == 0
    assert exit_code(["pass", "incomplete", "not_judged"]) == 3
    assert exit_code(["incomplete", "fail"]) == 1
    assert exit_code(["pass", "fail"]) == 1
    assert exit_code(["fail", "error", "pass"]) == 2
    from recaudit.results import Verdict

    ok = _result(a=1.0).model_copy(update={"verdict": Verdict(status="pass")})
    broken = CheckResult(name="d", check="d", error="boom")  # verdict never set: the error still counts
    assert audit_exit_code(AuditResults(checks=[ok])) == 0
    assert audit_exit_code(AuditResults(checks=[ok, broken])) == 2


def _tested(name: str, value: float, **fields) -> MetricValue:
    return MetricValue(name=name, value=value, **fields)


def test_thresholds_read_p_values_and_interval_bounds() -> None:
    r = CheckResult(name="c", check="c", metrics=[
        _tested("snsr.prag@20.max", 0.3, p_value=0.2, p_adj=0.6, p_floor=0.001, ci_low=0.1, ci_high=0.5),
    ])
    ok = [Threshold.parse("snsr.prag@20.max.p >= 0.05"), Threshold.parse("snsr.prag@20.max.p_adj > 0.5")]
    assert evaluate_verdict(r, ok).status == "pass"
    v = evaluate_verdict(r, [Threshold.parse("snsr.prag@20.max.ci_high <= 0.2")])
    assert v.status == "fail" and v.breaches[0].metric == "snsr.prag@20.max.ci_high" and v.breaches[0].value == 0.5
    assert evaluate_verdict(r, [Threshold.parse("snsr.prag@20.max.ci_low >= 0.1")]).status == "pass"


def test_a_missing_p_value_breaches_a_gate_on_it() -> None:
    r = CheckResult(name="c", check="c", metrics=[_tested("gu", 0.3)])
    v = evaluate_verdict(r, [Threshold.parse("gu.p >= 0.05")])
    assert v.status == "fail" and "missing or NaN" in v.breaches[0].message


def test_insufficient_coverage_is_incomplete_even_when_thresholds_hold_or_breach() -> None:
    from recaudit.evidence import coverage_from_counts

    low = coverage_from_counts({"usable": 3, "unparsed": 7}, min_answered=0.98, min_usable=0.9)
    assert not low.sufficient and "usable 3/10" in low.reason
    for t in ("a <= 1", "a <= 0"):  # holds / breaches: neither is judged on 30% usable answers
        v = evaluate_verdict(_result(a=0.5), [Threshold.parse(t)], coverage=low)
        assert v.status == "incomplete" and "usable 3/10" in v.reason
    # without thresholds too: missing evidence is reported before "no thresholds"
    assert evaluate_verdict(_result(a=0.5), [], coverage=low).status == "incomplete"
    errors = coverage_from_counts({"usable": 97, "adapter_error": 3}, min_answered=0.98, min_usable=0.5)
    assert not errors.sufficient and "answered 97/100" in errors.reason
    fine = coverage_from_counts({"usable": 98, "adapter_error": 2}, min_answered=0.98, min_usable=0.9)
    assert fine.sufficient and evaluate_verdict(_result(a=0.5), [Threshold.parse("a <= 1")], coverage=fine).status == "pass"


def test_an_underpowered_test_cannot_make_its_check_pass() -> None:
    weak = CheckResult(name="c", check="c", metrics=[_tested("snsr", 0.0, p_value=0.4, p_floor=1 / 9, needed_n=5)])
    v = evaluate_verdict(weak, [Threshold.parse("snsr <= 0.05")])
    assert v.status == "incomplete" and "p floor 0.111 > α 0.05" in v.reason and "n ≥ 5" in v.reason
    strong = CheckResult(name="c", check="c", metrics=[_tested("snsr", 0.0, p_value=0.4, p_floor=0.002)])
    assert evaluate_verdict(strong, [Threshold.parse("snsr <= 0.05")]).status == "pass"
    # a breach on an underpowered check is still a breach
    assert evaluate_verdict(weak, [Threshold.parse("snsr >= 1")]).status == "fail"


def test_overall_is_pass_only_when_every_check_was_judged_and_passed() -> None:
    from recaudit.audits.verdicts import overall
    from recaudit.results import Verdict

    def c(name: str, status: str) -> CheckResult:
        return CheckResult(name=name, check=name, verdict=Verdict(status=status))

    assert overall(AuditResults(checks=[c("a", "pass"), c("b", "pass")])).summary == "PASS: all 2 checks judged and passed"
    got = overall(AuditResults(checks=[c("a", "pass")] + [c(f"n{i}", "not_judged") for i in range(4)]))
    assert got.status == "NOT JUDGED" and got.summary == "NOT JUDGED: 4 of 5 checks have no thresholds"
    got = overall(AuditResults(checks=[c("a", "incomplete"), c("b", "incomplete"), c("x", "pass")]))
    assert got.summary == "INCOMPLETE: 2 of 3 checks lack evidence"
    assert overall(AuditResults(checks=[c("a", "incomplete"), c("b", "fail")])).status == "FAIL"
    assert overall(AuditResults(checks=[])).status == "NOT JUDGED"
    assert audit_exit_code(AuditResults(checks=[])) == 4
