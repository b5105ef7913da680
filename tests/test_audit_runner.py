"""The audit runner: failure isolation, verdicts and exit codes, the run folder, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import test_audit_support as support
from recaudit.audits.config import parse_config
from recaudit.audits.runner import Runner
from recaudit.results import AuditResults

TESTS = Path(__file__).resolve().parent
ADAPTER = {"kind": "callable", "generate": "test_audit_support:echo_length"}


def _config(tmp_path: Path, checks: list[dict], **extra):
    raw = {"name": "runner test", "adapter": ADAPTER, "plugins": ["test_audit_support"], "output_dir": "run",
           "checks": checks, **extra}
    return parse_config(raw, base_dir=tmp_path)


@pytest.fixture()
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "calls.txt"
    monkeypatch.setenv(support.CALLS_ENV, str(path))
    return path


def test_failing_check_is_isolated_and_exit_code_is_2(tmp_path: Path, calls: Path) -> None:
    config = _config(tmp_path, [
        {"check": "t_length", "params": {"n": 4}, "thresholds": ["length.mean <= 2.5"]},
        {"check": "t_fail"},
        {"check": "t_length", "name": "long", "params": {"n": 10}, "thresholds": ["length.mean <= 2.5"]},
    ])
    run = Runner(config, progress=False).run()
    by_name = {c.name: c for c in run.results.checks}
    assert list(by_name) == ["t_length", "t_fail", "long"]  # config order, all present
    assert by_name["t_length"].metric("length.mean").value == pytest.approx(2.5)  # (4 + 1) / 2
    assert by_name["t_length"].verdict.status == "pass"
    assert by_name["long"].metric("length.mean").value == pytest.approx(5.5)
    assert by_name["long"].verdict.status == "fail"
    assert by_name["long"].verdict.breaches[0].message == "length.mean = 5.5 breaches <= 2.5"
    failed = by_name["t_fail"]
    assert failed.verdict.status == "error" and failed.error.startswith("RuntimeError: planted failure in t_fail")
    assert "test_audit_support.py" in failed.error  # a traceback summary for whoever debugs it
    assert failed.risk == "robustness" and failed.title == "Test: always fails"
    assert run.exit_code == 2
    # the run folder: one file per check, results.json readable on its own
    assert sorted(p.name for p in (run.run_dir / "checks").iterdir()) == [
        "long.json", "long.samples.jsonl", "t_fail.json", "t_fail.samples.jsonl", "t_length.json", "t_length.samples.jsonl"
    ]
    reloaded = AuditResults.from_json(run.results_path.read_text())
    assert reloaded.check("long").verdict.status == "fail"
    rep = reloaded.reproducibility
    assert rep.seed == 0 and rep.adapter_fingerprint["adapter"] == "callable"
    assert {"python", "pydantic", "numpy"} <= set(rep.library_versions)
    assert rep.config["checks"][0]["check"] == "t_length" and rep.duration_s is not None


def test_exit_code_1_on_breach_and_0_on_pass(tmp_path: Path, calls: Path) -> None:
    breach = _config(tmp_path / "a", [{"check": "t_length", "params": {"n": 4}, "thresholds": ["length.mean < 2.5"]}])
    assert Runner(breach, progress=False).run().exit_code == 1
    ok = _config(tmp_path / "b", [{"check": "t_length", "params": {"n": 4}, "thresholds": ["length.max >= 4"]},
                                  {"check": "t_hang"}])
    run = Runner(ok, progress=False).run()
    assert run.exit_code == 4  # t_hang has no thresholds: not judged, so the audit cannot pass
    assert [c.verdict.status for c in run.results.checks] == ["pass", "not_judged"]
    alone = _config(tmp_path / "c", [{"check": "t_length", "params": {"n": 4}, "thresholds": ["length.max >= 4"]}])
    assert Runner(alone, progress=False).run().exit_code == 0


def test_threshold_on_metric_not_produced_is_reported_after_the_run(tmp_path: Path, calls: Path) -> None:
    # t_hang declares no metric names, so the threshold can only be judged once the check has run
    run = Runner(_config(tmp_path, [{"check": "t_hang", "thresholds": ["answer <= 3"]}]), progress=False).run()
    verdict = run.results.checks[0].verdict
    assert verdict.status == "error" and run.exit_code == 2
    assert "unknown metric 'answer'" in verdict.breaches[0].message and "answers" in verdict.breaches[0].message


def test_rerun_reuses_finished_checks_and_rejudges_thresholds(tmp_path: Path, calls: Path) -> None:
    checks = [{"check": "t_length", "params": {"n": 4}, "thresholds": ["length.mean <= 3"]}, {"check": "t_fail"}]
    first = Runner(_config(tmp_path, checks), progress=False).run()
    assert support.count_calls(calls, "t_length") == 4
    assert first.computed == ["t_length", "t_fail"]

    checks[0]["thresholds"] = ["length.mean <= 2"]  # stricter threshold: judged again, nothing recomputed
    second = Runner(_config(tmp_path, checks), progress=False).run()
    assert second.reused == ["t_length"] and second.computed == ["t_fail"]  # errored checks are retried
    assert support.count_calls(calls, "t_length") == 4
    assert second.results.check("t_length").verdict.status == "fail"
    assert second.results.check("t_fail").reproducibility.cache_stats == {"hits": 1, "misses": 0, "errors": 0}

    checks[0]["params"] = {"n": 5}  # new params: a different key, so the check runs again
    third = Runner(_config(tmp_path, checks), progress=False).run()
    assert "t_length" in third.computed
    assert support.count_calls(calls, "t_length") == 5  # only 'item 4' is new; items 0-3 come from the cache

    fresh = Runner(_config(tmp_path, checks), progress=False, fresh=True).run()
    assert fresh.reused == [] and support.count_calls(calls, "t_length") == 5


def test_cache_false_writes_no_cache(tmp_path: Path, calls: Path) -> None:
    run = Runner(_config(tmp_path, [{"check": "t_length"}], cache=False), progress=False).run()
    assert not (run.run_dir / "cache.sqlite").exists()
    assert run.results.reproducibility.cache_stats == {}


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"runner exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"{path} did not appear within {timeout} s")
        time.sleep(0.1)


def test_killed_run_resumes_from_finished_checks_and_cache(tmp_path: Path) -> None:
    cfg = tmp_path / "audit.yaml"
    cfg.write_text(
        "name: kill test\n"
        'adapter: {kind: callable, generate: "test_audit_support:echo_length"}\n'
        "plugins: [test_audit_support]\noutput_dir: run\n"
        "checks:\n"
        '  - {check: t_length, params: {n: 4}, thresholds: ["length.mean <= 3"]}\n'
        "  - {check: t_hang, params: {n: 3}}\n"
    )
    calls, hang = tmp_path / "calls.txt", tmp_path / "hanging"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
           support.CALLS_ENV: str(calls)}
    cmd = [sys.executable, "-m", "recaudit", "audit", str(cfg), "-q", "--allow-unjudged"]

    proc = subprocess.Popen(cmd, env={**env, support.HANG_ENV: str(hang)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_for(hang, proc, timeout=120)  # t_length is done and t_hang has its 3 answers
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    run = tmp_path / "run"
    assert (run / "checks" / "t_length.json").exists()
    assert not (run / "checks" / "t_hang.json").exists() and not (run / "results.json").exists()
    assert not list(run.rglob("*.tmp")), "no temporary file may be left behind"
    assert support.count_calls(calls, "t_length") == 4 and support.count_calls(calls, "t_hang") == 3

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 reused" in done.stdout
    assert support.count_calls(calls, "t_length") == 4, "the finished check must not be recomputed"
    assert support.count_calls(calls, "t_hang") == 3, "the cached answers must be reused"
    results = AuditResults.from_json((run / "results.json").read_text())
    assert results.check("t_hang").reproducibility.cache_stats["hits"] == 3
    assert results.check("t_hang").metric("answers").value == 3
    envelope = json.loads((run / "checks" / "t_length.json").read_text())
    assert envelope["result"]["verdict"]["status"] == "pass"


def test_request_chunk_keeps_a_batched_adapter_fed():
    """The runner hands an adapter several of what it keeps in flight per call, never fewer than configured."""
    from types import SimpleNamespace

    from recaudit.adapters.base import BATCHES_PER_CALL
    from recaudit.adapters.hf.engine import MAX_AUTO_SLOTS
    from recaudit.adapters.hf import HFCausalLM
    from recaudit.audits.runner import request_chunk

    assert request_chunk(8, SimpleNamespace(batch_size=512)) == BATCHES_PER_CALL * 512
    assert request_chunk(8, SimpleNamespace(in_flight=16, batch_size=2)) == BATCHES_PER_CALL * 16
    assert request_chunk(64, SimpleNamespace(batch_size=2)) == 64
    assert request_chunk(8, object()) == 8
    auto = HFCausalLM.__new__(HFCausalLM)
    auto.batch_size = 0  # engine slots sized from free memory: up to MAX_AUTO_SLOTS in flight
    assert request_chunk(8, auto) == BATCHES_PER_CALL * MAX_AUTO_SLOTS


def test_a_probes_requests_are_built_once_checked_then_sent(tmp_path: Path, calls: Path, monkeypatch) -> None:
    """The settings check and the run share one build of each probe's requests."""
    built: list[int] = []
    original = support.LengthCheck.requests

    def counting(self, ctx):
        built.append(self.params.n)
        return original(self, ctx)

    monkeypatch.setattr(support.LengthCheck, "requests", counting)
    config = _config(tmp_path, [{"check": "t_length", "params": {"n": 3}}, {"check": "t_fail"}])
    run = Runner(config, progress=False).run()
    assert built == [3]
    assert run.results.checks[0].metric("length.mean").value == pytest.approx(2.0)  # (3 + 1) / 2
    assert calls.read_text(encoding="utf-8").count("generate\tt_length item") == 3


def test_a_reused_probes_requests_are_not_built_again(tmp_path: Path, calls: Path, monkeypatch) -> None:
    """A re-run reuses a finished probe without building (or settings-checking) its requests; a changed one is built."""
    built: list[int] = []
    original = support.LengthCheck.requests

    def counting(self, ctx):
        built.append(self.params.n)
        return original(self, ctx)

    monkeypatch.setattr(support.LengthCheck, "requests", counting)
    checks = [{"check": "t_length", "params": {"n": 3}}, {"check": "t_fail"}]
    Runner(_config(tmp_path, checks), progress=False).run()
    again = Runner(_config(tmp_path, checks), progress=False).run()
    assert built == [3] and again.reused == ["t_length"]  # t_fail errored, so it runs again
    changed = Runner(_config(tmp_path, [{"check": "t_length", "params": {"n": 4}}]), progress=False).run()
    assert built == [3, 4] and changed.computed == ["t_length"]
