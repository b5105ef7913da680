"""CachedAdapter under kill -9: a killed run loses only the requests in flight; bad cache paths and
files are refused in one line before anything is written."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from recaudit.adapters import AdapterError, CachedAdapter, CallableAdapter, Request
from recaudit.adapters.cache import inspect_cache_file

REPO = Path(__file__).resolve().parents[1]
N, CONCURRENCY = 300, 4

CHILD = r'''
import sys, threading, time
from concurrent.futures import ThreadPoolExecutor, as_completed
from recaudit.adapters import CachedAdapter, Request, Response
cache_path, log_path, n, c = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
log = open(log_path, "a", buffering=1)
lock = threading.Lock()

class Streaming:
    """C requests in flight; each logged when sent, answered 3 ms later, handed over at once."""
    streams_responses = True
    in_flight = c
    fingerprint = {"adapter": "test", "name": "streaming"}
    pool = ThreadPoolExecutor(c)

    def one(self, r):
        with lock:
            log.write(r.user_text + "\n")
        time.sleep(0.003)
        return Response(text="answer " + r.user_text)

    def generate(self, requests, on_response=None):
        futs = {self.pool.submit(self.one, r): i for i, r in enumerate(requests)}
        out = [None] * len(requests)
        for f in as_completed(futs):
            out[futs[f]] = f.result()
            if on_response:
                with lock:
                    log.write("handed " + requests[futs[f]].user_text + "\n")
                on_response(futs[f], out[futs[f]])
        return out

CachedAdapter(Streaming(), cache_path).generate([Request.chat(f"q{i}") for i in range(n)])
'''


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _committed(cache: Path) -> set[str]:
    if not cache.exists():
        return set()
    conn = sqlite3.connect(cache)
    try:
        vals = [v for (v,) in conn.execute("SELECT value FROM answers")]
    finally:
        conn.close()
    import json

    return {json.loads(v)["text"].removeprefix("answer ") for v in vals}


def _start(cache: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", CHILD, str(cache), str(log), str(N), str(CONCURRENCY)], env=env)


def test_kill_9_loses_only_requests_in_flight(tmp_path):
    rng = random.Random(16)
    cache = tmp_path / "c.sqlite"
    committed: set[str] = set()
    kills = 0
    for round_ in range(5):
        log = tmp_path / f"sent{round_}.log"
        proc = _start(cache, log)
        remaining = N - len(committed)
        kill_at = rng.randint(10, max(11, remaining - 40)) if round_ < 4 else None
        deadline = time.monotonic() + 60
        while kill_at is not None and sum(not x.startswith("handed") for x in _lines(log)) < kill_at and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if kill_at is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait(timeout=60)
        lines = _lines(log)
        sent = [x for x in lines if not x.startswith("handed ")]
        handed = {x.removeprefix("handed ") for x in lines if x.startswith("handed ")}
        assert len(sent) == len(set(sent))  # nothing sent twice within a run
        assert not set(sent) & committed  # a run sends only what no earlier run committed
        inspect_cache_file(cache)  # the file survived the kill intact
        now = _committed(cache)
        assert committed <= now
        lost = set(sent) - now  # sent, and not kept: the next run recomputes these
        if kill_at is None:
            assert proc.returncode == 0 and not lost
        else:
            # of the answers handed to the cache, at most the one being committed at the kill is lost
            assert len(lost & handed) <= 1, (round_, sorted(lost & handed))
            # the rest were in flight: sent, not yet handed over (the adapter's workers plus answers
            # its calling thread had not yet picked up on a busy CPU)
            assert len(lost) <= CONCURRENCY + 8, (round_, len(lost))
        committed = now
    assert kills >= 3 and committed == {f"q{i}" for i in range(N)}


def test_bad_cache_paths_and_files_are_refused_in_one_line(tmp_path):
    (tmp_path / "dir.sqlite").mkdir()
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database at all\n" * 50)
    foreign = tmp_path / "foreign.sqlite"
    conn = sqlite3.connect(foreign)
    conn.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
    conn.commit()
    conn.close()
    good = tmp_path / "good.sqlite"
    made = CachedAdapter(CallableAdapter(lambda r: "x" * 5000), good)
    made.generate([Request.chat(f"p{i}") for i in range(40)])
    made.close()
    conn = sqlite3.connect(good)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA journal_mode = DELETE")  # everything in the main file, no -wal beside it
    conn.close()
    truncated = tmp_path / "truncated.sqlite"
    data = good.read_bytes()
    assert len(data) > 8192
    truncated.write_bytes(data[: len(data) // 2 + 100])
    (tmp_path / "afile").write_text("x")
    cases = {
        tmp_path / "dir.sqlite": "is a directory",
        garbage: "not a SQLite database",
        foreign: "another program's database",
        truncated: "truncated",
        tmp_path / "afile" / "c.sqlite": "is a file, not a folder",
    }
    for path, words in cases.items():
        before = sorted(p.name for p in tmp_path.rglob("*"))
        with pytest.raises(AdapterError) as e:
            CachedAdapter(CallableAdapter(lambda r: "x"), path)
        msg = str(e.value)
        assert words in msg and str(path) in msg and "\n" not in msg, msg
        assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written beside it
    assert inspect_cache_file(good)["answers"] == 40
    assert inspect_cache_file(tmp_path / "new" / "c.sqlite")["exists"] is False


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write anywhere")
def test_unwritable_cache_folder_is_refused(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(AdapterError, match="not writable"):
            inspect_cache_file(ro / "c.sqlite")
    finally:
        ro.chmod(0o700)
