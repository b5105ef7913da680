"""The HTML report: self-contained, every section, untrusted text stays text; figures; CSV; re-render."""

from __future__ import annotations

import base64
import csv
import io
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest

from recaudit.cli import main
from recaudit.reports import metrics_csv, render_html
from recaudit.reports.figures import figure_svg, lorenz_curve, render_figure
from recaudit.reports.html import SECTION_IDS, fmt_number
from recaudit.results import FigureSpec, Series
from test_audit_support import HOSTILE, SCRIPT_END, sample_results


class _Elements(HTMLParser):
    """Collects start tags with attributes and the text, as a browser would parse them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Elements:
    p = _Elements()
    p.feed(html)
    return p


@pytest.fixture(scope="module")
def html() -> str:
    return render_html(sample_results())


def test_every_section_and_check_is_present(html: str) -> None:
    ids = {a.get("id") for _, a in _parse(html).tags}
    assert set(SECTION_IDS) <= ids
    assert {"check-1-fairllm", "check-2-exposure", "check-3-unlearning"} <= ids


def test_hostile_text_is_text_not_markup(html: str) -> None:
    doc = _parse(html)
    assert not [t for t, _ in doc.tags if t in ("script", "iframe", "object", "embed", "link")]
    assert not [a for t, a in doc.tags if any(k.startswith("on") for k in a)]
    images = [a for t, a in doc.tags if t == "img"]
    assert images and all(a["src"].startswith("data:image/svg+xml;base64,") for a in images)
    text = "".join(doc.text)
    assert HOSTILE in text and SCRIPT_END in text  # shown to the reader, as text
    assert "<title>Audit &lt;/title&gt;&lt;/script&gt;" in html


def test_report_is_self_contained(html: str) -> None:
    doc = _parse(html)
    for tag, attrs in doc.tags:
        for key in ("src", "href"):
            value = attrs.get(key) or ""
            assert not value.startswith(("http:", "https:", "//")), (tag, key, value)
    csp = [a for t, a in doc.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


def test_summary_verdicts_metrics_and_provenance(html: str) -> None:
    text = " ".join("".join(_parse(html).text).split())
    assert "Overall: ERROR — 1 of 3 checks crashed or are misconfigured" in text
    assert "1 passed, 1 failed, 1 errored" in text
    assert "snsr.prag@20.max = 0.12 breaches <= 0.05" in text
    assert "[0.08, 0.16]" in text and "0.004" in text  # CI and p-value
    assert "Disparate treatment of users or items" in text and "The right to be forgotten" in text
    assert "Zhang et al., Is ChatGPT Fair for Recommendation?, RecSys 2023" in text
    assert "abc123" in text and "torch" in text and "2.13.0" in text and "Linux; x86_64; 2 CPUs" in text


def test_figures_are_wellformed_svg_without_text_or_script() -> None:
    for check in sample_results().checks:
        for spec in check.figures:
            svg = figure_svg(spec)
            root = ET.fromstring(svg)
            elements = list(root.iter())
            assert not [e for e in elements if e.tag.endswith(("}script", "}text", "}foreignObject"))]
            assert not [k for e in elements for k in e.attrib if k.lower().startswith("on")]
            assert figure_svg(spec) == svg  # deterministic


def test_figure_uri_round_trips() -> None:
    spec = FigureSpec(name="h", kind="histogram", title="counts $5 and $", series=[Series(label="n", x=[1, 2, 3], y=[4, 0, 1])])
    uri = render_figure(spec)
    assert base64.b64decode(uri.split(",", 1)[1]).startswith(b"<?xml")


def test_lorenz_curve_by_hand() -> None:
    x, y = lorenz_curve([8, 1, 2, 1])
    assert x == pytest.approx([0, 0.25, 0.5, 0.75, 1])
    assert y == pytest.approx([0, 1 / 12, 2 / 12, 4 / 12, 1])
    assert lorenz_curve([0, 0]) == ([0.0, 1.0], [0.0, 1.0])


def test_a_broken_figure_does_not_break_the_report() -> None:
    results = sample_results()
    results.checks[1].figures.append(
        FigureSpec(name="bad", kind="line", title="mismatch", series=[Series(label="s", x=[1, 2, 3], y=[1.0])])
    )
    text = "".join(_parse(render_html(results)).text)
    assert "figure bad could not be drawn" in text


def test_number_format() -> None:
    assert [fmt_number(v) for v in (None, 3, 0.123456, 12345.6, 0.00001234, float("nan"), float("inf"), 0.0)] == [
        "—", "3", "0.1235", "12,346", "1.23e-05", "NaN", "∞", "0",
    ]


def test_metrics_csv_rows_and_formula_neutralising() -> None:
    results = sample_results()
    results.checks[1].name = "=HYPERLINK(1)"
    rows = list(csv.DictReader(io.StringIO(metrics_csv(results))))
    assert len(rows) == 3  # 2 + 1 metrics; the errored check has none
    first = rows[0]
    assert (first["check"], first["metric"], float(first["value"]), float(first["ci_high"])) == ("fairllm", "snsr.prag@20.max", 0.12, 0.16)
    assert first["thresholds"] == "snsr.prag@20.max <= 0.05" and first["breached"] == "yes" and first["status"] == "fail"
    assert rows[1]["thresholds"] == "" and rows[1]["breached"] == ""
    assert rows[2]["check"] == "'=HYPERLINK(1)"


def test_report_command_rerenders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = sample_results()
    path = tmp_path / "results.json"
    path.write_text(results.to_json())
    assert main(["report", str(path)]) == 0
    assert (tmp_path / "report.html").read_text() == render_html(results)
    assert (tmp_path / "metrics.csv").read_text() == metrics_csv(results)
    assert str(tmp_path / "report.html") in capsys.readouterr().out
    (tmp_path / "bad.json").write_text('{"checks": 3}')
    assert main(["report", str(tmp_path / "bad.json")]) == 2
    assert "not a recaudit results file (checks" in capsys.readouterr().err
