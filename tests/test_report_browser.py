"""The report in a real browser: Debian's headless Chromium renders it with no console errors.

Skipped with a reason when /usr/bin/chromium is absent (install: apt-get install -y chromium).
The screenshot is saved in the test's tmp folder and copied to tests/artifacts/report.png.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import matplotlib.image
import numpy as np
import pytest

from recaudit.reports import render_html
from recaudit.reports.html import SECTION_IDS
from test_audit_support import sample_results

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--hide-scrollbars", "--enable-logging=stderr", "--v=0",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (/usr/bin/chromium); "
                       "install it with `apt-get install -y chromium` to run the browser test"),
]


def _chromium(tmp_path: Path, profile: str, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / profile}", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("browser") / "report.html"
    path.write_text(render_html(sample_results()), encoding="utf-8")
    return path


def test_dom_has_every_section_no_console_errors_and_no_injected_markup(report: Path) -> None:
    done = _chromium(report.parent, "profile-dom", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    console = [ln for ln in done.stderr.splitlines() if ":CONSOLE" in ln]
    assert console == [], "\n".join(console)
    dom = done.stdout
    for section in SECTION_IDS:
        assert f'id="{section}"' in dom
    assert "<script" not in dom
    assert '<img src="x"' not in dom and "<img src=x" not in dom
    assert "&lt;img src=x onerror=alert(1)&gt;" in dom  # the hostile title is shown as text
    assert "&lt;/script&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in dom
    assert dom.count('src="data:image/svg+xml;base64,') == 5  # every figure inlined


def test_screenshot_shows_a_rendered_page(report: Path) -> None:
    shot = report.parent / "report.png"
    done = _chromium(report.parent, "profile-shot", f"--screenshot={shot}", "--window-size=1280,3000", report.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(shot, ARTIFACTS / "report.png")
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (3000, 1280)
    header = np.median(pixels[5:70, 5:1270].reshape(-1, 3), axis=0)
    assert np.allclose(header, [0x1F / 255, 0x2A / 255, 0x44 / 255], atol=0.03), f"no report header (colour {header})"
    assert pixels.std() > 0.1, "the page looks blank"
