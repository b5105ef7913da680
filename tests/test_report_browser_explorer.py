"""The rebuilt summary and the sample explorer in headless Chromium, driven over DevTools (CDP).

A planted run (some answers unparseable) is rendered by `recaudit report`; the test clicks the
explorer's filter labels and counts the records left visible. A run whose every request errored
must say INCOMPLETE at the top. Screenshots go to tests/artifacts/ (gitignored).
"""

from __future__ import annotations

import base64
import json
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from recaudit.adapters import CallableAdapter
from recaudit.adapters.base import Response
from recaudit.audits.config import parse_config
from recaudit.audits.runner import Runner
from recaudit.cli import main

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
ws_client = pytest.importorskip("websockets.sync.client", reason="websockets drives Chromium over CDP")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium)"),
]
CHECK = {"check": "exposure", "params": {"n_users": 6, "strategies": ["simple", "diversify"], "system_prompts": ["normal"],
                                         "baselines": [], "n_bootstrap": 0, "use_embeddings": False},
         "thresholds": ["grounded_rate.simple.normal >= 0.1"]}


class Page:
    """One headless Chromium page and a CDP connection to it."""

    def __init__(self, url: str, profile: Path, width: int = 1400, height: int = 1000):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        self.proc = subprocess.Popen(
            [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
             f"--remote-debugging-port={port}", f"--user-data-dir={profile}", f"--window-size={width},{height}", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while True:
            try:
                tabs = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2))
                pages = [t for t in tabs if t["type"] == "page"]
                if pages:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.proc.kill()
                raise AssertionError("Chromium's DevTools endpoint did not come up")
            time.sleep(0.3)
        self.ws = ws_client.connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        self.n = 0
        # the page may still be about:blank when the endpoint answers: wait for the report itself
        deadline = time.monotonic() + 60
        while not self.eval("document.readyState === 'complete' && !!document.querySelector('#reproducibility')"):
            assert time.monotonic() < deadline, "the report did not load"
            time.sleep(0.2)

    def call(self, method: str, **params):
        self.n += 1
        self.ws.send(json.dumps({"id": self.n, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv(timeout=60))
            if msg.get("id") == self.n:
                assert "error" not in msg, msg
                return msg["result"]

    def eval(self, expr: str):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def click_label(self, text: str) -> None:
        # a real mouse click at the label's centre (no script in the page: the label checks its radio)
        box = self.eval(f"""(() => {{ const l = [...document.querySelectorAll('.sx-filters label')]
            .find(l => l.textContent.trim().startsWith({json.dumps(text)})); l.scrollIntoView({{block: 'center'}});
            const r = l.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; }})()""")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def visible_records(self) -> int:
        return self.eval("[...document.querySelectorAll('.sx-rec')].filter(e => e.offsetParent !== null).length")

    def screenshot(self, name: str) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path = ARTIFACTS / name
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        self.ws.close()
        self.proc.terminate()
        self.proc.wait(timeout=30)


def _run(tmp: Path, adapter) -> Path:
    config = parse_config({"name": "browser run", "adapter": {"kind": "callable", "generate": "test_install_core:ten_titles"},
                           "cache": False, "checks": [CHECK]}, base_dir=tmp)
    run = Runner(config, run_dir=tmp / "run", adapter=adapter, progress=False).run()
    assert main(["report", str(run.results_path)]) == 0
    return run.run_dir / "report.html"


def _half_parseable():
    from test_install_core import ten_titles

    calls = {"n": 0}

    def answer(request):
        calls["n"] += 1
        return ten_titles(request) if calls["n"] % 3 else "Sorry, I cannot recommend anything."
    return CallableAdapter(generate_fn=answer, name="planted")


class AllErrors:
    """Every request fails, as with a server that refuses connections."""

    fingerprint = {"adapter": "openai", "model": "closed-port", "base_url": "http://127.0.0.1:9/v1"}
    preflight_call = False  # the server answered the pre-flight, then went away

    def generate(self, requests):
        return [Response(text="", error="ConnectError: [Errno 111] Connection refused") for _ in requests]

    def score(self, requests):
        return [float("nan") for _ in requests]


def test_summary_and_explorer_filters_work(tmp_path: Path) -> None:
    report = _run(tmp_path, _half_parseable())
    records = [json.loads(ln) for ln in (tmp_path / "run" / "checks" / "exposure.samples.jsonl").read_text().splitlines()]
    unparsed = [r for r in records if r["outcome"] != "usable"]
    unparsed_diversify = [r for r in unparsed if r["unit"].get("strategy") == "diversify"]
    assert 0 < len(unparsed) < len(records) and unparsed_diversify
    page = Page(report.as_uri(), tmp_path / "profile")
    try:
        banner = page.eval("document.querySelector('#overall').innerText")
        assert banner.startswith("Overall: PASS"), banner
        finding = page.eval("document.querySelector('.findings tbody tr').innerText")
        assert "grounded_rate.simple.normal" in finding and "usable" in finding and f"/{len(records)}" in finding
        assert page.visible_records() == len(records)
        page.click_label("unparsed")
        assert page.visible_records() == len(unparsed)
        page.click_label("strategy = diversify")
        assert page.visible_records() == len(unparsed_diversify)  # filters combine
        page.click_label("all")  # the check row's "all": the other two filters stay
        assert page.visible_records() == len(unparsed_diversify)
        page.eval("document.querySelector('#samples').scrollIntoView()")
        assert page.screenshot("report-explorer.png").stat().st_size > 10_000
        height = page.eval("document.documentElement.scrollHeight")
        assert height < 8000, f"the page is {height} px tall"
    finally:
        page.close()


def test_a_run_where_every_request_failed_says_incomplete_at_the_top(tmp_path: Path) -> None:
    report = _run(tmp_path, AllErrors())
    page = Page(report.as_uri(), tmp_path / "profile")
    try:
        first = page.eval("document.querySelector('main h2 + .banner').innerText")
        assert first.startswith("Overall: INCOMPLETE — 1 of 1 checks lack evidence"), first
        assert page.eval("getComputedStyle(document.querySelector('#overall')).backgroundColor") != "rgb(27, 122, 61)"
        assert "closed-port" in page.eval("document.querySelector('header.top').innerText")
        assert "Connection refused" in page.eval("document.querySelector('.sx-list').textContent")
        assert page.screenshot("report-incomplete.png").stat().st_size > 10_000
    finally:
        page.close()
