"""CachedAdapter: hits/misses, resume after a crash, concurrent writers, no secrets, no errors stored."""

from __future__ import annotations

import math
import multiprocessing as mp
import sqlite3
import threading

import pytest

from recaudit.adapters import AdapterError, CachedAdapter, CallableAdapter, Request, Response


def _answer(r: Request) -> str:
    return "answer to " + r.user_text


def _score(r: Request) -> float:
    return (len(r.user_text) % 10) / 10


def _make_crashing(crash_after: int | None):
    """Adapters built here share one fingerprint (same function qualname) whether they crash or not."""
    state = {"n": 0}

    def gen(r: Request) -> str:
        state["n"] += 1
        if crash_after is not None and state["n"] > crash_after:
            raise RuntimeError("simulated crash")
        return _answer(r)

    return CallableAdapter(generate_fn=gen, name="crashy")


def _reqs(n: int, prefix: str = "q") -> list[Request]:
    return [Request.chat(f"{prefix}{i}") for i in range(n)]


def test_hits_misses_order_and_dedup(tmp_path):
    inner = CallableAdapter(_answer, _score)
    cache = CachedAdapter(inner, tmp_path / "c.sqlite", chunk_size=3)
    reqs = _reqs(5) + [Request.chat("q1")]
    first = cache.generate(reqs)
    assert [r.text for r in first] == [_answer(r) for r in reqs]
    assert inner.calls == 5 and cache.stats == {"hits": 0, "misses": 5, "errors": 0}
    again = cache.generate(list(reversed(reqs)))
    assert [r.text for r in again] == [_answer(r) for r in reversed(reqs)]
    assert all(r.cached for r in again) and inner.calls == 5 and cache.stats["hits"] == 6
    assert cache.score(reqs) == [_score(r) for r in reqs] == cache.score(reqs)
    assert inner.calls == 10  # 5 distinct scores computed once
    assert len(cache) == 10


def test_settings_change_the_key(tmp_path):
    inner = CallableAdapter(_answer)
    cache = CachedAdapter(inner, tmp_path / "c.sqlite")
    cache.generate([Request.chat("x", max_new_tokens=5)])
    cache.generate([Request.chat("x", max_new_tokens=6)])
    assert inner.calls == 2


def test_resume_after_crash_recomputes_only_unfinished(tmp_path):
    path = tmp_path / "c.sqlite"
    reqs = _reqs(10)
    crashing = _make_crashing(crash_after=5)
    with pytest.raises(RuntimeError, match="simulated crash"):
        CachedAdapter(crashing, path, chunk_size=2).generate(reqs)
    healthy = _make_crashing(crash_after=None)
    assert healthy.fingerprint == crashing.fingerprint
    out = CachedAdapter(healthy, path, chunk_size=2).generate(reqs)
    assert [r.text for r in out] == [_answer(r) for r in reqs]
    assert healthy.calls == 6  # chunks 1-2 (4 requests) were committed before the crash
    assert sum(r.cached for r in out) == 4


class _Flaky:
    """Fails every other request (Response.error) and cannot score some requests (NaN)."""

    fingerprint = {"adapter": "flaky"}

    def __init__(self):
        self.calls = 0

    def generate(self, requests):
        self.calls += len(requests)
        return [Response(text="", finish_reason="error", error="boom") if i % 2 else Response(text="ok")
                for i, _ in enumerate(requests)]

    def score(self, requests):
        self.calls += len(requests)
        return [float("nan"), 0.5][: len(requests)]


def test_errors_and_nan_scores_are_not_cached(tmp_path):
    inner = _Flaky()
    cache = CachedAdapter(inner, tmp_path / "c.sqlite")
    reqs = _reqs(4)
    first = cache.generate(reqs)
    assert [r.error for r in first] == [None, "boom", None, "boom"]
    assert cache.stats["errors"] == 2
    inner.calls = 0
    cache.generate(reqs)
    assert inner.calls == 2  # only the failed ones retried
    s = cache.score(reqs[:2])
    assert math.isnan(s[0]) and s[1] == 0.5
    inner.calls = 0
    cache.score(reqs[:2])
    assert inner.calls == 1  # only the NaN (unscorable) request is asked again


def test_credential_in_fingerprint_is_refused(tmp_path):
    class Leaky(CallableAdapter):
        @property
        def fingerprint(self):
            return {"adapter": "leaky", "headers": {"api_key": "sk-abc123"}}

    with pytest.raises(AdapterError, match="credential"):
        CachedAdapter(Leaky(_answer), tmp_path / "c.sqlite").generate(_reqs(1))

    class Leaky2(CallableAdapter):
        @property
        def fingerprint(self):
            return {"adapter": "leaky", "note": "Bearer abc"}

    with pytest.raises(AdapterError, match="credential"):
        CachedAdapter(Leaky2(_answer), tmp_path / "c.sqlite").generate(_reqs(1))
    # naming the variable that holds a key is fine
    ok = CallableAdapter(_answer)
    CachedAdapter(ok, tmp_path / "c.sqlite").generate(_reqs(1))


def test_threads_share_one_cache(tmp_path):
    inner = CallableAdapter(_answer)
    cache = CachedAdapter(inner, tmp_path / "c.sqlite", chunk_size=4)
    reqs = _reqs(60)
    errors: list[BaseException] = []

    def work(offset: int):
        try:
            for _ in range(3):
                mine = reqs[offset : offset + 30]
                out = cache.generate(mine)
                assert [r.text for r in out] == [_answer(r) for r in mine]
        except BaseException as e:  # pragma: no cover - surfaced below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(o,)) for o in (0, 10, 20, 30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(cache) == 60
    assert inner.calls <= 4 * 30  # overlap may race, but each thread computes at most its own once


def _process_writer(path: str, start: int, n: int) -> None:
    cache = CachedAdapter(CallableAdapter(_answer, name="proc"), path, chunk_size=5)
    for _ in range(2):
        out = cache.generate(_reqs(n, "p")[start:])
        assert [r.text for r in out] == [_answer(r) for r in _reqs(n, "p")[start:]]


def test_two_processes_write_concurrently(tmp_path):
    path = str(tmp_path / "c.sqlite")
    CachedAdapter(CallableAdapter(_answer, name="proc"), path)  # create the schema first
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_process_writer, args=(path, s, 120)) for s in (0, 40)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0]
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(conn.execute("SELECT request, value FROM answers").fetchall())
    assert len(rows) == 120
    check = CachedAdapter(CallableAdapter(_answer, name="proc"), path)
    assert [r.text for r in check.generate(_reqs(120, "p"))] == [_answer(r) for r in _reqs(120, "p")]
    assert check.inner.calls == 0
