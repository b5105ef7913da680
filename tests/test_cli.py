"""The command line: subcommand registration, entry points, schema, the embedded default audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import recaudit
from recaudit import cli
from recaudit.audits.config import default_config_text, load_default_config, parse_config
from recaudit.results import AuditResults


def test_version_and_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0 and recaudit.__version__ in capsys.readouterr().out
    assert cli.main([]) == 2
    assert "audit" in capsys.readouterr().err


def test_a_missing_command_module_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "no_such_command"))
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        cli.build_parser()


def test_module_entry_point() -> None:
    done = subprocess.run([sys.executable, "-m", "recaudit", "diff", "--help"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "regression" in done.stdout


def test_schema_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "AuditResults" and {"CheckResult", "MetricValue", "FigureSpec"} <= set(schema["$defs"])
    assert cli.main(["schema", "--config"]) == 0
    assert "checks" in json.loads(capsys.readouterr().out)["properties"]


def test_results_schema_doc_covers_every_field() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "results-schema.md").read_text()
    schema = AuditResults.model_json_schema()
    models = {"AuditResults": schema, **schema["$defs"]}
    missing = [f"{m}.{f}" for m, s in models.items() for f in s.get("properties", {}) if f"`{f}`" not in doc]
    assert missing == [], f"docs/results-schema.md does not describe: {missing}"
    assert all(f"## {m}" in doc or f"### {m}" in doc for m in models), "every model needs a heading"


def test_print_default_config_round_trips(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["audit", "--print-default-config"]) == 0
    printed = capsys.readouterr().out
    assert printed == default_config_text()
    assert parse_config(yaml.safe_load(printed), base_dir=Path.cwd()) == load_default_config()


@pytest.mark.slow
def test_default_audit_runs_within_ten_minutes(tmp_path: Path) -> None:
    """`recaudit audit` with no arguments: the embedded SmolLM2 audit, ≤ 10 min on 2 CPU cores."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "recaudit", "audit", "-q"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    elapsed = time.monotonic() - t0
    assert done.returncode in (0, 1, 3, 4), done.stderr[-3000:]
    run = tmp_path / "recaudit-runs" / "default"
    assert f"report:  {run / 'report.html'}" in done.stdout and f"results: {run / 'results.json'}" in done.stdout
    results = AuditResults.from_json((run / "results.json").read_text())
    assert [c.error for c in results.checks] == [None] * len(results.checks)
    # a check whose usable evidence is below its floor is incomplete, and says so first
    for c in results.checks:
        if c.coverage is not None and not c.coverage.sufficient:
            assert c.status == "incomplete" and f"incomplete: {c.name}" in done.stdout
    first = done.stdout.splitlines()[0]
    assert first.startswith("overall: ")
    if any(c.status == "incomplete" for c in results.checks):
        assert done.returncode in (1, 3) and ("INCOMPLETE" in first or "FAIL" in first)
        html = (run / "report.html").read_text()
        assert html.index("INCOMPLETE") < html.index('id="checks"')
    assert results.reproducibility.adapter_fingerprint["model"].startswith("SmolLM2-135M")
    assert elapsed <= 600, f"the default audit took {elapsed:.0f} s"


def test_every_command_registers_a_subparser():
    """COMMANDS and the parser agree: each module is imported and adds its subcommand."""
    import argparse

    from recaudit.cli import COMMANDS, build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(sub.choices) == sorted(COMMANDS)


def test_data_package_reexports_the_loaders():
    import recaudit.data as data
    from recaudit.data import loaders

    assert data.load_movielens_100k is loaders.load_movielens_100k
    assert set(data.__all__) >= {"load_movielens_100k", "load_movielens_latest_small", "DataFormatError", "demo_catalog"}
