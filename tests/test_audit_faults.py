"""Whole audits against recaudit's fault-injecting OpenAI-compatible server on 127.0.0.1.

Transient faults lose nothing; permanent ones make the affected check incomplete (exit 3) and a
re-run after the server recovers sends exactly the failed requests; a server that is down, a bad
key or an unknown model end in one line, exit 2, within 10 s, with nothing written.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import test_audit_support  # noqa: F401 - registers the t_* checks
from fault_server import FaultServer, closed_port_url, stable_fraction
from recaudit.cli import main

N = 24
SECRET = "s3cr3t-token-xyz"


def length_answer(prompt: str) -> str:
    """What echo_length answers: 'item N' → N+1 x's, so a clean run's metric is (N+1)/2."""
    last = prompt.rsplit(" ", 1)[-1]
    return "x" * (int(last) + 1) if last.isdigit() else "ok"  # the pre-flight's one-token prompt


def _config(tmp: Path, url: str, *, model: str = "m", extra_adapter: str = "", checks: str | None = None) -> Path:
    checks = checks or f'[{{check: t_length, params: {{n: {N}}}, thresholds: ["length.mean <= 99"]}}]'
    cfg = tmp / "audit.yaml"
    cfg.write_text(
        "name: faults\n"
        f"adapter: {{kind: openai, base_url: '{url}', model: {model}, api_key_env: FAULT_KEY, timeout_s: 0.25, "
        f"max_retries: 6, backoff_s: 0.01, max_concurrency: 4{extra_adapter}}}\n"
        "plugins: [test_audit_support]\noutput_dir: run\n"
        f"checks: {checks}\n",
        encoding="utf-8",
    )
    return cfg


@pytest.fixture(autouse=True)
def _key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAULT_KEY", SECRET)


def _metric(tmp: Path) -> float:
    from recaudit.results import AuditResults

    return AuditResults.from_json((tmp / "run" / "results.json").read_text()).check("t_length").metric("length.mean").value


def test_transient_faults_lose_nothing_and_change_nothing(tmp_path: Path, capsys) -> None:
    clean_dir, faulty_dir = tmp_path / "clean", tmp_path / "faulty"
    clean_dir.mkdir(), faulty_dir.mkdir()
    with FaultServer(length_answer, key=SECRET) as srv:
        assert main(["audit", str(_config(clean_dir, srv.url)), "-q"]) == 0
    with FaultServer(length_answer, key=SECRET, transient=0.3, slow_s=0.6) as srv:
        assert main(["audit", str(_config(faulty_dir, srv.url)), "-q"]) == 0
        faulted = [p for p in srv.counts if srv.fault_for(p, 0)]
        assert len(faulted) >= 3  # the plan did fault something
        assert set(srv.answered) == {f"t_length item {i}" for i in range(N)}  # nothing lost
        assert all(srv.answered[p] >= 1 for p in srv.answered)
    assert _metric(faulty_dir) == _metric(clean_dir) == pytest.approx((N + 1) / 2)


def test_permanent_failures_are_incomplete_then_repaired_by_rerun(tmp_path: Path, capsys) -> None:
    broken = {f"t_length item {i}" for i in range(N) if stable_fraction(f"t_length item {i}") < 0.25}
    assert 2 <= len(broken) <= N // 2
    with FaultServer(length_answer, key=SECRET, permanent=lambda p: p in broken, permanent_status=503) as srv:
        cfg = _config(tmp_path, srv.url)
        assert main(["audit", str(cfg), "-q"]) == 3
        out = capsys.readouterr().out
        assert out.splitlines()[0] == "overall: INCOMPLETE: 1 of 1 checks lack evidence"
        assert "incomplete: t_length" in out and f"answered {N - len(broken)}/{N}" in out
        srv.set_plan(permanent=None)  # the server recovers
        srv.reset_counts()
        assert main(["audit", str(cfg), "-q"]) == 0
        assert set(srv.counts) == broken  # exactly the failed requests were sent again
        assert all(n == 1 for n in srv.counts.values())
    assert _metric(tmp_path) == pytest.approx((N + 1) / 2)
    written = [p for p in (tmp_path / "run").rglob("*") if p.is_file()]
    assert written and not any(SECRET.encode() in p.read_bytes() for p in written)


@pytest.mark.parametrize("case", ["down", "bad-key", "unknown-model"])
def test_unreachable_or_refusing_server_is_exit_2_fast_nothing_written(tmp_path: Path, capsys, case: str) -> None:
    with FaultServer(length_answer, key=SECRET if case != "bad-key" else "another-key") as srv:
        url = closed_port_url() if case == "down" else srv.url
        cfg = _config(tmp_path, url, model="nope" if case == "unknown-model" else "m")
        t0 = time.monotonic()
        rc = main(["audit", str(cfg), "-q"])
        elapsed = time.monotonic() - t0
    err = capsys.readouterr().err
    errors = [ln for ln in err.splitlines() if "error" in ln]
    assert rc == 2 and elapsed < 10, (rc, elapsed, err)
    assert len(errors) == 1 and "Traceback" not in err
    assert {"down": "127.0.0.1", "bad-key": "401", "unknown-model": "nope"}[case] in errors[0]
    assert not (tmp_path / "run").exists()


def test_a_setting_the_server_would_drop_is_refused_before_the_run(tmp_path: Path, capsys) -> None:
    checks = "[{check: fairllm, params: {domains: [movie], n_names: 1, attributes: [gender], repetition_penalty: 1.3}}]"
    with FaultServer(length_answer, key=SECRET, family="ollama") as srv:
        rc = main(["audit", str(_config(tmp_path, srv.url, checks=checks)), "-q"])
        assert sum(srv.counts.values()) == 0
    err = capsys.readouterr().err
    assert rc == 2 and "repetition_penalty" in err and "fairllm" in err
    assert not (tmp_path / "run").exists()


def test_a_key_inside_base_url_is_redacted_in_every_written_file(tmp_path: Path) -> None:
    with FaultServer(length_answer) as srv:
        url = srv.url + f"?api_key={SECRET}"
        assert main(["audit", str(_config(tmp_path, url)), "-q"]) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "audit.yaml"]
    assert any(p.name == "results.json" for p in written)
    assert not [str(p) for p in written if SECRET.encode() in p.read_bytes()]
