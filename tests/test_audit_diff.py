"""`recaudit diff`: a planted regression is found, and only it; noise and improvements are not regressions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recaudit.audits.diff import compare_metric, diff_results
from recaudit.cli import main
from recaudit.results import AuditResults, CheckResult, MetricValue, Verdict


def _audit(values: dict[str, tuple[float, float | None, float | None, str]], status: str = "pass") -> AuditResults:
    metrics = [MetricValue(name=k, value=v, ci_low=lo, ci_high=hi, direction=d) for k, (v, lo, hi, d) in values.items()]
    return AuditResults(checks=[CheckResult(name="fairllm", check="fairllm", metrics=metrics, verdict=Verdict(status=status))])


OLD = {
    "snsr.prag@20.max": (0.10, 0.08, 0.12, "lower_is_better"),  # will regress: CIs separate, bad direction
    "snsr.jaccard@20.max": (0.10, 0.05, 0.15, "lower_is_better"),  # moves up within overlapping CIs: noise
    "parse_rate.mean": (0.80, 0.75, 0.85, "higher_is_better"),  # improves clearly
    "gini": (0.40, None, None, "lower_is_better"),  # no CI, moves below tolerance
    "items.unique": (30.0, None, None, "neutral"),  # neutral metric moves a lot: changed, not regressed
}
NEW = {
    "snsr.prag@20.max": (0.20, 0.17, 0.23, "lower_is_better"),
    "snsr.jaccard@20.max": (0.14, 0.09, 0.19, "lower_is_better"),
    "parse_rate.mean": (0.95, 0.92, 0.98, "higher_is_better"),
    "gini": (0.405, None, None, "lower_is_better"),
    "items.unique": (45.0, None, None, "neutral"),
}


def test_one_planted_regression_is_reported_exactly() -> None:
    d = diff_results(_audit(OLD), _audit(NEW))
    assert [(c.check, c.metric) for c in d.regressions] == [("fairllm", "snsr.prag@20.max")]
    assert d.regressions[0].delta == pytest.approx(0.10)
    kinds = {c.metric: c.kind for c in d.changes}
    assert kinds == {
        "snsr.prag@20.max": "regressed",
        "snsr.jaccard@20.max": "unchanged",
        "parse_rate.mean": "improved",
        "gini": "unchanged",
        "items.unique": "changed",
    }
    assert d.has_regressions


def test_without_cis_the_tolerance_decides() -> None:
    old = MetricValue(name="gini", value=0.40, direction="lower_is_better")
    assert compare_metric("c", old, old.model_copy(update={"value": 0.409})).kind == "unchanged"  # below 0.05 * 0.4
    assert compare_metric("c", old, old.model_copy(update={"value": 0.45})).kind == "regressed"
    assert compare_metric("c", old, old.model_copy(update={"value": 0.45}), tolerance=0.1).kind == "unchanged"


def test_added_removed_nan_and_verdict_changes() -> None:
    old = _audit({"a": (1.0, None, None, "neutral"), "gone": (1.0, None, None, "neutral")}, status="pass")
    new = _audit({"a": (float("nan"), None, None, "neutral"), "new": (1.0, None, None, "neutral")}, status="fail")
    d = diff_results(old, new)
    assert {c.metric: c.kind for c in d.changes} == {"a": "changed", "gone": "removed", "new": "added"}
    assert d.regressions == [] and d.has_regressions  # the verdict went from pass to fail
    assert [(v.old, v.new, v.is_worse) for v in d.verdicts] == [("pass", "fail", True)]


def test_diff_command_output_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    old.write_text(_audit(OLD).to_json())
    new.write_text(_audit(NEW).to_json())
    assert main(["diff", str(old), str(new)]) == 1
    out = capsys.readouterr().out
    regressed = [ln for ln in out.splitlines() if ln.startswith("REGRESSED")]
    assert len(regressed) == 1 and "fairllm / snsr.prag@20.max" in regressed[0] and "CIs do not overlap" in regressed[0]
    assert "summary: 1 regressed, 1 improved, 1 changed, 0 added, 0 removed, 2 unchanged" in out

    assert main(["diff", str(old), str(new), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert [c["metric"] for c in data["changes"] if c["kind"] == "regressed"] == ["snsr.prag@20.max"]

    assert main(["diff", str(old), str(old)]) == 0
    assert main(["diff", str(old), str(tmp_path / "missing.json")]) == 2
    assert "no such results file" in capsys.readouterr().err
