"""The command line's start-up: --help imports no command module, help texts agree, completion, pipes."""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recaudit import cli
from recaudit.cli.completion import bash_script, command_options

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def test_top_level_help_imports_no_heavy_module():
    code = ("import sys; from recaudit.cli import main\n"
            "try: main(['--help'])\nexcept SystemExit: pass\n"
            "heavy = [m for m in ('pandas', 'pydantic', 'numpy', 'torch', 'yaml', 'recaudit.audits') if m in sys.modules]\n"
            "print('HEAVY', heavy)")
    done = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, timeout=120)
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr
    assert "completion" in done.stdout and "re-render report.html" in done.stdout


def test_command_help_matches_each_module():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {a.dest: a.help for a in sub._choices_actions}
    assert helps == cli.COMMAND_HELP


def test_a_subcommand_still_parses_fully(capsys: pytest.CaptureFixture[str]):
    with pytest.raises(SystemExit):
        cli.main(["report", "--help"])
    assert "--junit-xml" in capsys.readouterr().out


def test_completion_lists_commands_and_options(capsys: pytest.CaptureFixture[str]):
    opts = command_options()
    assert "--junit-xml" in opts["audit"] and "bash" in opts["completion"] and "shilling" in opts["attack"]
    assert cli.main(["completion", "zsh"]) == 0
    assert "bashcompinit" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes(tmp_path: Path):
    script = tmp_path / "c.bash"
    script.write_text(bash_script())
    probe = (f"source {script}; COMP_WORDS=(recaudit au); COMP_CWORD=1; _recaudit; echo \"${{COMPREPLY[*]}}\"; "
             "COMP_WORDS=(recaudit audit --ju); COMP_CWORD=2; _recaudit; echo \"${COMPREPLY[*]}\"")
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=30)
    assert done.stdout.splitlines() == ["audit", "--junit-xml"], done.stdout + done.stderr


def test_help_into_a_closed_pipe_has_no_traceback():
    done = subprocess.run(f"{sys.executable} -m recaudit --help | head -c 10", shell=True, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert "Traceback" not in done.stderr and done.stdout == "usage: rec"


def test_a_missing_optional_dependency_is_one_line_naming_the_extra(monkeypatch, capsys):
    import recaudit.cli.schema as schema

    def needs_flwr(args):
        raise ModuleNotFoundError("No module named 'flwr'", name="flwr")

    monkeypatch.setattr(schema, "run_schema", needs_flwr)
    assert cli.main(["schema"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["recaudit schema: needs the federated extra (flwr is not installed): pip install 'recaudit[federated]'"]

    def needs_other(args):
        raise ModuleNotFoundError("No module named 'zzz'", name="zzz")

    monkeypatch.setattr(schema, "run_schema", needs_other)
    assert cli.main(["schema"]) == 2
    assert "error: ModuleNotFoundError: No module named 'zzz'" in capsys.readouterr().err
