"""JUnit XML: one testcase per threshold, breached → failure, incomplete/error → error, not judged → skipped."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from recaudit.cli import main
from recaudit.reports.junit import junit_xml
from recaudit.results import AuditResults, Breach, CheckResult, Coverage, MetricValue, Reproducibility, Verdict

XSD = Path(__file__).resolve().parent / "fixtures" / "junit-10.xsd"


def _results() -> AuditResults:
    def check(name: str, status: str, thresholds: list[str], **kw) -> CheckResult:
        verdict = kw.pop("verdict", None) or Verdict(status=status)
        return CheckResult(name=name, check=name, metrics=[MetricValue(name="m", value=0.3), MetricValue(name="q", value=0.1)],
                           reproducibility=Reproducibility(config={"check": name, "thresholds": thresholds}, duration_s=2.0,
                                                           started_at="2026-12-07T10:00:00+00:00"), verdict=verdict, **kw)
    breach = Breach(metric="m", value=0.3, op="<=", threshold=0.2, message="m = 0.3 breaches <= 0.2")
    return AuditResults(audit_name="ci <gate> & \x07bell", checks=[
        check("passing", "pass", ["m <= 0.5", "q <= 0.5"], verdict=Verdict(status="pass", evaluated=["m <= 0.5", "q <= 0.5"])),
        check("failing", "fail", ["m <= 0.2", "q <= 0.5"],
              verdict=Verdict(status="fail", evaluated=["m <= 0.2", "q <= 0.5"], breaches=[breach])),
        check("thin", "incomplete", ["m <= 0.5"],
              verdict=Verdict(status="incomplete", reason="usable 3/40 = 7.5% < min_usable 50%"),
              coverage=Coverage(requested=40, answered=40, usable=3, sufficient=False)),
        check("crashed", "error", [], error="RuntimeError: boom \x00\n\ntraceback"),
        check("unjudged", "not_judged", [], verdict=Verdict(status="not_judged", reason="no thresholds configured")),
    ])


def _cases(root: ET.Element) -> dict[tuple[str, str], ET.Element]:
    return {(s.get("name"), c.get("name")): c for s in root.iter("testsuite") for c in s.iter("testcase")}


def test_one_testcase_per_threshold_with_the_right_outcome():
    root = ET.fromstring(junit_xml(_results()).encode())
    cases = _cases(root)
    assert len(cases) == 2 + 2 + 1 + 1 + 1
    assert list(cases[("passing", "m <= 0.5")]) == []
    failure = cases[("failing", "m <= 0.2")].find("failure")
    assert failure is not None and failure.get("message") == "m = 0.3 breaches <= 0.2"
    assert list(cases[("failing", "q <= 0.5")]) == []
    err = cases[("thin", "m <= 0.5")].find("error")
    assert err is not None and err.get("message").startswith("incomplete evidence: usable 3/40")
    assert cases[("crashed", "crashed")].find("error").get("message") == "RuntimeError: boom "
    assert cases[("unjudged", "unjudged")].find("skipped") is not None
    assert (root.get("tests"), root.get("failures"), root.get("errors"), root.get("skipped")) == ("7", "1", "2", "1")
    suite = next(s for s in root.iter("testsuite") if s.get("name") == "failing")
    assert (suite.get("tests"), suite.get("failures"), suite.get("time")) == ("2", "1", "2.000")


def test_valid_against_the_junit_schema():
    etree = pytest.importorskip("lxml.etree", reason="lxml validates the XSD")
    schema = etree.XMLSchema(etree.parse(str(XSD)))
    doc = etree.fromstring(junit_xml(_results()).encode())
    assert schema.validate(doc), schema.error_log
    # the schema is not vacuous: a testcase without a name is refused
    del doc.find(".//testcase").attrib["name"]
    assert not schema.validate(doc)


def test_report_command_writes_junit(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    path = tmp_path / "results.json"
    path.write_text(_results().to_json())
    out = tmp_path / "ci" / "junit.xml"
    assert main(["report", str(path), "--junit-xml", str(out)]) == 0
    assert ET.parse(out).getroot().get("failures") == "1"
    assert f"junit:   {out}" in capsys.readouterr().out
