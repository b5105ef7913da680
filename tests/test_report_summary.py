"""The rebuilt summary and explorer as HTML: key findings, coverage, header, demo warning, print, caps."""

from __future__ import annotations

import hashlib
import re

from recaudit.reports import render_html
from recaudit.reports.explorer import MAX_PER_CHECK, build_explorer
from recaudit.reports.html import _css_string, coverage_line, finding, headline_metric
from recaudit.results import CheckResult, Coverage, MetricValue, Verdict
from test_audit_support import HOSTILE, SCRIPT_END, sample_results
from test_report_html import _parse


def _text(html: str) -> str:
    return " ".join("".join(_parse(html).text).split())


def test_key_finding_has_estimate_ci_p_floor_attribute_and_flags():
    m = MetricValue(name="snsr.prag@10.race", value=0.042, ci_low=0.0, ci_high=0.08, p_value=0.26, p_adj=0.52,
                    p_adj_method="holm", p_floor=0.004, n=40, underpowered=True, needed_n=400)
    f = finding(m)
    assert f.estimate == "snsr.prag@10.race = 0.042 [0, 0.08]"
    assert f.details == ["p = 0.26", "p_adj = 0.52 (holm)", "p-value floor 0.004", "attribute race", "n = 40"]
    assert f.flags == ["underpowered (needs n ≥ 400)"]


def test_headline_prefers_breached_then_thresholded_then_tested():
    ms = [MetricValue(name="a", value=1), MetricValue(name="b.max", value=2, p_value=0.1), MetricValue(name="c", value=3)]
    c = CheckResult(name="x", check="x", metrics=ms)
    assert headline_metric(c).name == "b.max"
    c.verdict = Verdict(status="pass", evaluated=["c <= 5"])
    assert headline_metric(c).name == "c"
    c.verdict = Verdict(status="fail", evaluated=["c <= 5", "a.p <= 0.5"], breaches=[])
    c.verdict.breaches = []
    from recaudit.results import Breach
    c.verdict.breaches.append(Breach(metric="a.p", value=0.9, op="<=", threshold=0.5))
    assert headline_metric(c).name == "a"


def test_coverage_line():
    c = CheckResult(name="x", check="x", coverage=Coverage(requested=480, answered=470, usable=412,
                                                           outcomes={"usable": 412, "unparsed": 58, "adapter_error": 10}))
    assert coverage_line(c) == "usable 412/480 (86%) · answered 470/480 · 58 unparsed · 10 adapter error"


def test_header_names_model_data_hash_and_demo_warning():
    results = sample_results()
    html = render_html(results)
    text = _text(html)
    digest = hashlib.sha256(results.to_json().encode()).hexdigest()
    assert re.search(rf"results\.json SHA-256 ?{digest}", text)
    assert "Model under audit" in text and HOSTILE in text  # the fingerprint's name, as text
    assert "catalog:demo abc123" in text
    assert "not evidence about any model you ship" not in text
    results.reproducibility.config["adapter"] = {"kind": "default"}
    assert "a demo, not evidence about any model you ship" in _text(render_html(results))
    assert "page \" counter(page) \" of \" counter(pages)" in html and "Auditor" in text and "Decision" in text


def test_running_header_cannot_escape_css():
    s = _css_string('x"; } body { display:none } </style><script>')
    assert s.startswith('"') and s.endswith('"') and s.count('"') == 2 and "<" not in s and "}" not in s
    html = render_html(sample_results(), title=f"T {SCRIPT_END}")
    style = re.search(r"<style>(.*?)</style>", html, re.S).group(1)
    assert "</" not in style and "<script" not in style.lower()  # only escaped text: \\00003cscript


def test_essential_metrics_and_the_rest_collapsed():
    results = sample_results()
    results.checks[1].metrics += [MetricValue(name=f"extra.m{i}", value=i) for i in range(20)]
    html = render_html(results)
    assert "15 more metrics" in _text(html)  # 21 metrics, 6 essential (gini thresholded + 5)


def test_explorer_is_capped_escaped_and_filters_by_generated_ids():
    checks = sample_results().checks
    recs = [{"index": i, "kind": "generate", "messages": [["user", f"prompt {i} {HOSTILE}"]], "answer": SCRIPT_END,
             "outcome": "usable" if i % 2 else "unparsed", "unit": {"attribute": ("gender", "race")[i % 2], "value": f"v{i % 3}",
                                                                  "user_id": str(i)}}
            for i in range(MAX_PER_CHECK + 5)]
    html = render_html(sample_results(), samples={"fairllm": recs})
    assert f"{MAX_PER_CHECK} of {MAX_PER_CHECK + 5} records shown; 5 more of fairllm" in _text(html)
    # a run folder's report reads only the shown records and counts the rest
    head_only = render_html(sample_results(), samples={"fairllm": recs[:MAX_PER_CHECK]}, sample_totals={"fairllm": 32000})
    assert f"{MAX_PER_CHECK} of 32000 records shown; {32000 - MAX_PER_CHECK} more of fairllm" in _text(head_only)
    assert "<script>" not in html and "&lt;/script&gt;" in html
    ex = build_explorer([type("V", (), {"result": c})() for c in checks], {"fairllm": recs})
    assert [o.label for o in ex.tags] == ["attribute = gender", "value = v0", "attribute = race", "value = v1", "value = v2"]
    assert not [o for o in ex.tags if o.label.startswith("user_id")]
    assert all(re.fullmatch(r"[#.:~ \-a-z0-9{}=;\[\]()]+", rule.replace("background:#1f2a44", "").replace("color:#fff", ""))
               for rule in ex.css.splitlines())


def test_line_charts_draw_the_ci_band():
    from recaudit.reports.figures import figure_svg
    from recaudit.results import FigureSpec, Series

    plain = Series(label="a", x=[1, 5, 10], y=[0.9, 0.8, 0.7])
    banded = Series(label="a", x=[1, 5, 10], y=[0.9, 0.8, 0.7], y_low=[0.8, 0.7, 0.6], y_high=[1.0, 0.9, 0.8])
    without = figure_svg(FigureSpec(name="l", kind="line", title="t", series=[plain])).decode()
    with_band = figure_svg(FigureSpec(name="l", kind="line", title="t", series=[banded])).decode()
    # the band is one translucent filled polygon (matplotlib's fill_between collection)
    assert "fill-opacity: 0.2" in with_band and "fill-opacity: 0.2" not in without
