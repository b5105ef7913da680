"""The audit as JUnit XML for CI systems: one testcase per threshold, one testsuite per check.

Mapping (the common Jenkins / junit-10 format that GitLab, GitHub and Jenkins read):
- a threshold that holds → a passing testcase;
- a breached threshold → ``<failure>`` with the breach message;
- a check with too little evidence (incomplete) → ``<error>`` on each of its thresholds: it was
  not judged, which a CI gate must not read as passed;
- a check that crashed or is misconfigured → ``<error>`` on each threshold (one testcase named
  after the check when it has none);
- a check without thresholds (not judged) → one ``<skipped>`` testcase.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from recaudit.results import AuditResults, CheckResult

_MAX_TEXT = 4000


def check_thresholds(check: CheckResult) -> list[str]:
    """The thresholds configured for a check (from its run config; else those judged)."""
    configured = check.reproducibility.config.get("thresholds")
    if isinstance(configured, list) and configured:
        return [str(t) for t in configured]
    return list(check.verdict.evaluated)


def junit_xml(results: AuditResults) -> str:
    """The audit as JUnit XML text (UTF-8, with declaration)."""
    root = ET.Element("testsuites", name=results.audit_name)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    total_time = 0.0
    for check in results.checks:
        suite, counts = _suite(check)
        root.append(suite)
        for k in totals:
            totals[k] += counts[k]
        total_time += check.reproducibility.duration_s or 0.0
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", str(totals["errors"]))
    root.set("skipped", str(totals["skipped"]))
    root.set("time", f"{total_time:.3f}")
    for el in root.iter():  # check names, messages and tracebacks may carry control characters
        for k, v in el.attrib.items():
            el.set(k, _clean(v))
        if el.text:
            el.text = _clean(el.text)
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def _suite(check: CheckResult) -> tuple[ET.Element, dict[str, int]]:
    status = check.status
    thresholds = check_thresholds(check)
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    duration = check.reproducibility.duration_s or 0.0
    suite = ET.Element("testsuite", name=check.name)
    classname = f"recaudit.{check.check}.{check.name}"
    cases = thresholds or [check.name]
    per_case = duration / len(cases) if cases else 0.0
    breaches = {b.metric: b for b in check.verdict.breaches}
    for t in cases:
        case = ET.SubElement(suite, "testcase", classname=classname, name=t, time=f"{per_case:.3f}")
        counts["tests"] += 1
        if status == "error":
            first = (check.error or "").splitlines()[0] if check.error else (check.verdict.reason or "check error")
            metric = t.split(" ", 1)[0]
            msg = breaches[metric].message if metric in breaches and breaches[metric].message else first
            _child(case, "error", msg, check.error or msg, "CheckError")
            counts["errors"] += 1
        elif status == "incomplete":
            reason = check.verdict.reason or "too little evidence to judge"
            _child(case, "error", f"incomplete evidence: {reason}", reason, "IncompleteEvidence")
            counts["errors"] += 1
        elif status == "not_judged" or not thresholds:
            ET.SubElement(case, "skipped", message=check.verdict.reason or "no thresholds configured")
            counts["skipped"] += 1
        else:
            metric = t.split(" ", 1)[0]
            b = breaches.get(metric)
            if b is not None:
                _child(case, "failure", b.message or f"{b.metric} breaches {b.op} {b.threshold:g}",
                       b.message, "ThresholdBreached")
                counts["failures"] += 1
    for k, v in counts.items():
        suite.set(k, str(v))
    suite.set("time", f"{duration:.3f}")
    if check.reproducibility.started_at:
        suite.set("timestamp", check.reproducibility.started_at[:19])
    return suite, counts


def _child(case: ET.Element, tag: str, message: str, text: str, kind: str) -> None:
    el = ET.SubElement(case, tag, message=_clean(message.splitlines()[0] if message else tag), type=kind)
    el.text = _clean(text[:_MAX_TEXT])


def _clean(text: str) -> str:
    """Drop characters XML 1.0 cannot carry (control characters from model output or tracebacks)."""
    return "".join(ch for ch in text if ch in "\t\n\r" or (ord(ch) >= 0x20 and ord(ch) not in (0xFFFE, 0xFFFF)
                                                            and not 0xD800 <= ord(ch) <= 0xDFFF))
