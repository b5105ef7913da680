"""Python snippets marked `<!-- snippet: NAME -->` in README.md and docs/*.md run as written."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_SNIPPET = re.compile(r"<!-- snippet: (?P<name>[\w-]+) -->\s*```python\n(?P<code>.*?)```", re.S)


def _snippets() -> list[tuple[str, str]]:
    out = []
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for m in _SNIPPET.finditer(doc.read_text(encoding="utf-8")):
            out.append((f"{doc.name}:{m['name']}", m["code"]))
    return out


def test_the_python_api_snippet_exists():
    assert any(name.endswith(":python-api") for name, _ in _snippets())


@pytest.mark.parametrize("name,code", _snippets(), ids=[n for n, _ in _snippets()])
def test_snippet_runs(name: str, code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    script = tmp_path / "snippet.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
    out = capsys.readouterr().out
    if name.endswith(":python-api"):
        assert out.startswith("pass 5/5 answers usable") and "exposure.gini.simple.normal" in out
