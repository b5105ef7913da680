"""Every bad input ends in one clear line and exit 2, with nothing half-written left behind."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import test_audit_support  # noqa: F401 - registers the t_* checks used by the configs
from recaudit.cli import main

TESTS = Path(__file__).resolve().parent
ADAPTER = '{kind: callable, generate: "test_audit_support:echo_length"}'


def _config(tmp: Path, *, checks: str = '[{check: t_length, params: {n: 2}, thresholds: ["length.mean <= 9"]}]',
            extra: str = "", output_dir: str = "run") -> Path:
    cfg = tmp / "audit.yaml"
    cfg.write_text(f"name: bad input\nadapter: {ADAPTER}\nplugins: [test_audit_support]\n"
                   f"output_dir: {output_dir}\ncache: true\nchecks: {checks}\n{extra}", encoding="utf-8")
    return cfg


def _results(tmp: Path) -> Path:
    """A real results.json, from a tiny audit in its own folder."""
    cfg = _config(tmp, output_dir="good")
    assert main(["audit", str(cfg), "-q"]) == 0
    return tmp / "good" / "results.json"


# each case: (id, setup(tmp) -> argv, the words the one error line must contain)
def _non_utf8_config(tmp: Path) -> list[str]:
    cfg = _config(tmp)
    cfg.write_bytes(cfg.read_bytes() + b"\n# caf\xe9\n")
    return ["audit", str(cfg)]


def _output_dir_is_a_file(tmp: Path) -> list[str]:
    (tmp / "run").write_text("a file where the run folder should go")
    return ["audit", str(_config(tmp))]


def _output_dir_under_a_file(tmp: Path) -> list[str]:
    (tmp / "blocker").write_text("x")
    return ["audit", str(_config(tmp, output_dir="blocker/run"))]


def _cache_is_a_folder(tmp: Path) -> list[str]:
    (tmp / "c.sqlite").mkdir()
    return ["audit", str(_rewrite(tmp, "cache: true", "cache: c.sqlite"))]


def _cache_garbage(tmp: Path) -> list[str]:
    (tmp / "c.sqlite").write_bytes(b"this is not a database\x00" * 64)
    return ["audit", str(_rewrite(tmp, "cache: true", "cache: c.sqlite"))]


def _cache_truncated(tmp: Path) -> list[str]:
    db = tmp / "c.sqlite"
    con = sqlite3.connect(db)
    con.execute("create table answers (k text primary key, v text)")
    con.executemany("insert into answers values (?, ?)", [(str(i), "x" * 500) for i in range(200)])
    con.commit()
    con.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 3])
    return ["audit", str(_rewrite(tmp, "cache: true", "cache: c.sqlite"))]


def _cache_foreign(tmp: Path) -> list[str]:
    con = sqlite3.connect(tmp / "c.sqlite")
    con.execute("create table invoices (id integer primary key, total real)")
    con.commit()
    con.close()
    return ["audit", str(_rewrite(tmp, "cache: true", "cache: c.sqlite"))]


def _rewrite(tmp: Path, old: str, new: str) -> Path:
    cfg = _config(tmp)
    cfg.write_text(cfg.read_text().replace(old, new))
    return cfg


def _report_to_unwritable(tmp: Path) -> list[str]:
    results = _results(tmp)
    (tmp / "blocker").write_text("x")
    return ["report", str(results), "-o", str(tmp / "blocker" / "report.html"), "--csv", str(tmp / "m.csv")]


def _report_non_utf8(tmp: Path) -> list[str]:
    bad = tmp / "results.json"
    bad.write_bytes(b'{"audit_name": "caf\xe9"}')
    return ["report", str(bad)]


def _diff_non_utf8(tmp: Path) -> list[str]:
    good = _results(tmp)
    bad = tmp / "bad.json"
    bad.write_bytes(b"\xff\xfe{}")
    return ["diff", str(good), str(bad)]


def _unknown_attribute(tmp: Path) -> list[str]:
    checks = "[{check: fairllm, params: {attributes: [gender, zodiac], n_names: 1, domains: [movie]}}]"
    return ["audit", str(_config(tmp, checks=checks))]


def _unknown_locale(tmp: Path) -> list[str]:
    checks = "[{check: implicit_names, params: {locales: [xx_XX], n_names: 1}}]"
    return ["audit", str(_config(tmp, checks=checks))]


def _missing_names_file(tmp: Path) -> list[str]:
    checks = "[{check: fairllm, params: {names_paths: {movie: ./nowhere.csv}, domains: [movie], n_names: 1}}]"
    return ["audit", str(_config(tmp, checks=checks))]


def _interactions_with_unknown_items(tmp: Path) -> list[str]:
    (tmp / "items.csv").write_text("item_id,title\n1,Heat (1995)\n2,Alien (1979)\n")
    (tmp / "ratings.csv").write_text("user_id,item_id,rating,timestamp\n1,1,5,10\n1,99,4,11\n")
    extra = "data: {kind: files, catalog: items.csv, interactions: ratings.csv}\n"
    return ["audit", str(_config(tmp, extra=extra))]


def _federate_wrong_clients(tmp: Path) -> list[str]:
    fed = tmp / "fed"
    fed.mkdir()
    (fed / "federation.json").write_text('{"n_clients": 3, "scheme": "iid", "seed": 0}')
    return ["federate", "pplr", "--data", str(fed), "--clients", "5", "--out", str(tmp / "fed.json"),
            "--workdir", str(tmp / "work")]


CASES: list[tuple[str, Callable[[Path], list[str]], tuple[str, ...]]] = [
    ("config-not-utf8", _non_utf8_config, ("UTF-8",)),
    ("output-dir-is-file", _output_dir_is_a_file, ("not a folder",)),
    ("output-dir-unwritable", _output_dir_under_a_file, ("output_dir",)),
    ("cache-is-folder", _cache_is_a_folder, ("cache", "folder")),
    ("cache-garbage", _cache_garbage, ("cache",)),
    ("cache-truncated", _cache_truncated, ("cache",)),
    ("cache-foreign-schema", _cache_foreign, ("cache",)),
    ("report-o-unwritable", _report_to_unwritable, ("cannot write",)),
    ("results-not-utf8-report", _report_non_utf8, ("results.json", "UTF-8")),
    ("results-not-utf8-diff", _diff_non_utf8, ("bad.json",)),
    ("unknown-attribute", _unknown_attribute, ("zodiac",)),
    ("unknown-locale", _unknown_locale, ("xx_XX",)),
    ("missing-names-file", _missing_names_file, ("nowhere.csv",)),
    ("interactions-unknown-items", _interactions_with_unknown_items, ("not in the catalogue", "99")),
    ("federate-clients-mismatch", _federate_wrong_clients, ("--clients 5", "has 3 clients")),
]


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.mark.parametrize("setup, words", [(c[1], c[2]) for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_left(tmp_path: Path, setup, words, capsys) -> None:
    argv = setup(tmp_path)
    capsys.readouterr()
    before = _files(tmp_path)
    rc = main(argv)
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert rc == 2, err
    assert "Traceback" not in err
    assert len(lines) == 1, err
    for w in words:
        assert w in lines[0], lines[0]
    left = _files(tmp_path) - before
    assert not left, f"left behind: {sorted(map(str, left))}"


def test_an_exception_inside_a_check_is_exit_2_never_1(tmp_path: Path, capsys) -> None:
    cfg = _config(tmp_path, checks="[{check: t_fail}]")
    assert main(["audit", str(cfg), "-q"]) == 2


def test_closed_pipe_is_no_traceback(tmp_path: Path) -> None:
    """``recaudit diff --json a b | head``: the reader goes away; the command ends quietly."""
    results = _results(tmp_path)
    code = (
        "import os, sys\n"
        "r, w = os.pipe(); os.close(r)\n"  # a pipe whose reader has already gone
        "sys.stdout = os.fdopen(w, 'w')\n"
        "from recaudit.cli import main\n"
        "rc = main(['diff', '--json', sys.argv[1], sys.argv[1]])\n"
        "sys.stderr.write(f'rc={rc}\\n')\n"
        "os._exit(rc)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(results)], capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(TESTS), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr, done.stderr[-1500:]
    assert "rc=0" in done.stderr and done.returncode == 0
