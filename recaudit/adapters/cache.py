"""A persistent answer cache that wraps any Adapter and is itself an Adapter.

One SQLite file (WAL mode) holds one table keyed by (adapter fingerprint id, request key, kind).
Only misses reach the wrapped adapter, in chunks; answers are committed as they arrive (64 per
transaction from an adapter that streams them, ``generate_streaming``; the rest when the chunk is
answered, or when the call fails), so a run that is killed resumes where it stopped. Several threads and processes may
share one file: each thread has its own connection, writers wait on a busy timeout, and rows
are written with ``INSERT OR REPLACE`` inside a transaction. Responses carrying an ``error``
are never stored (the next run retries them), and the fingerprint stored beside the rows is
checked to hold no credential-looking field.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

from recaudit.adapters.base import (
    Adapter,
    AdapterError,
    OnResponse,
    Request,
    Response,
    fingerprint_id,
    generate_streaming,
    requests_per_call,
)

T = TypeVar("T")

SCHEMA = """
CREATE TABLE IF NOT EXISTS answers (
    fingerprint TEXT NOT NULL,
    request TEXT NOT NULL,
    kind TEXT NOT NULL,
    value TEXT NOT NULL,
    created REAL NOT NULL,
    PRIMARY KEY (fingerprint, request, kind)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fingerprints (
    fingerprint TEXT PRIMARY KEY,
    description TEXT NOT NULL
);
"""
_SECRET_KEY = re.compile(r"(api[_-]?key|secret|passw(or)?d|authori[sz]ation|bearer|access[_-]?token|auth[_-]?token|credential)", re.I)
_SECRET_VALUE = re.compile(r"^(sk-|Bearer\s|hf_[A-Za-z0-9]{20,}|ghp_|xox[bp]-)")
_LOOKUP_CHUNK = 500  # below SQLite's default limit of host parameters
_STORE_EVERY = 64  # streamed answers per write transaction


def assert_no_secrets(obj: Any, where: str = "fingerprint") -> None:
    """Raise AdapterError if a dict holds a credential-looking key with a value, or a key-looking string."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if _SECRET_KEY.search(str(k)) and v not in (None, "", False) and not str(k).endswith("_env"):
                raise AdapterError(f"{where} has a credential-looking field {k!r}; refusing to store it")
            assert_no_secrets(v, f"{where}.{k}")
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            assert_no_secrets(v, f"{where}[{i}]")
    elif isinstance(obj, str) and _SECRET_VALUE.match(obj):
        raise AdapterError(f"{where} holds a value that looks like a credential; refusing to store it")


class CachedAdapter:
    """Wrap ``adapter`` with a SQLite cache at ``path``; ``chunk_size`` misses go to it per call."""

    def __init__(self, adapter: Adapter, path: str | Path, chunk_size: int | None = None, timeout_s: float = 60.0):
        # default: several of the adapter's own batches per call, never fewer than 256 (resume granularity)
        if chunk_size is None:
            chunk_size = requests_per_call(adapter, floor=256)
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.inner = adapter
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.chunk_size = chunk_size
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {"hits": 0, "misses": 0, "errors": 0}
        conn = self._conn()
        with conn:
            conn.executescript(SCHEMA)

    # ---- plumbing -------------------------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=self.timeout_s, isolation_level=None)
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout_s * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
        return conn

    def close(self) -> None:
        """Close this thread's connection (others close when their threads end)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def _count(self, key: str, n: int) -> None:
        with self._lock:
            self.stats[key] += n

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The wrapped adapter's fingerprint: caching does not change what a model answers."""
        return self.inner.fingerprint

    def _namespace(self) -> str:
        fp = self.inner.fingerprint
        assert_no_secrets(fp)
        ns = fingerprint_id(fp)
        conn = self._conn()
        conn.execute(
            "INSERT OR IGNORE INTO fingerprints (fingerprint, description) VALUES (?, ?)",
            (ns, json.dumps(fp, sort_keys=True, default=str)),
        )
        return ns

    def _lookup(self, ns: str, kind: str, keys: Sequence[str]) -> dict[str, str]:
        conn = self._conn()
        found: dict[str, str] = {}
        uniq = list(dict.fromkeys(keys))
        for i in range(0, len(uniq), _LOOKUP_CHUNK):
            part = uniq[i : i + _LOOKUP_CHUNK]
            marks = ",".join("?" * len(part))
            rows = conn.execute(
                f"SELECT request, value FROM answers WHERE fingerprint = ? AND kind = ? AND request IN ({marks})",
                (ns, kind, *part),
            ).fetchall()
            found.update(rows)
        return found

    def _store(self, ns: str, kind: str, items: Sequence[tuple[str, str]]) -> None:
        if not items:
            return
        conn = self._conn()
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO answers (fingerprint, request, kind, value, created) VALUES (?, ?, ?, ?, ?)",
                [(ns, k, kind, v, now) for k, v in items],
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def _cached_call(
        self,
        requests: Sequence[Request],
        kind: str,
        compute: Callable[[list[Request], Callable[[int, T], None] | None], list[T]],
        encode: Callable[[T], str | None],
        decode: Callable[[str], T],
        on_answer: Callable[[int, T], None] | None = None,
    ) -> list[T]:
        ns = self._namespace()
        keys = [r.key() for r in requests]
        found = self._lookup(ns, kind, keys)
        out: list[T | None] = [decode(found[k]) if k in found else None for k in keys]
        self._count("hits", sum(1 for v in out if v is not None))
        if on_answer is not None:
            for i, v in enumerate(out):
                if v is not None:
                    on_answer(i, v)
        # identical requests are computed once
        todo: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            if out[i] is None:
                todo.setdefault(k, []).append(i)
        pending = list(todo.items())
        self._count("misses", len(pending))
        for start in range(0, len(pending), self.chunk_size):
            chunk = pending[start : start + self.chunk_size]
            taken = [False] * len(chunk)
            rows: list[tuple[str, str]] = []

            def take(j: int, a: T, chunk: list[tuple[str, list[int]]] = chunk, taken: list[bool] = taken,
                     rows: list[tuple[str, str]] = rows) -> None:
                # answers are stored as they arrive (a killed run keeps them), then handed on
                if taken[j]:
                    return
                taken[j] = True
                key, idx = chunk[j]
                for i in idx:
                    out[i] = a
                blob = encode(a)
                if blob is None:
                    self._count("errors", 1)
                else:
                    rows.append((key, blob))
                if len(rows) >= _STORE_EVERY:
                    self._store(ns, kind, rows)
                    rows.clear()
                if on_answer is not None:
                    for i in idx:
                        on_answer(i, a)

            try:
                answers = compute([requests[idx[0]] for _, idx in chunk], take)
                if len(answers) != len(chunk):
                    raise AdapterError(f"wrapped adapter returned {len(answers)} answers for {len(chunk)} requests")
                for j, a in enumerate(answers):  # what the adapter did not stream
                    take(j, a)
            finally:  # an interrupted call keeps what was answered before it stopped
                self._store(ns, kind, rows)
        return out  # type: ignore[return-value]  # every slot is filled above

    # ---- Adapter --------------------------------------------------------------------------------
    streams_responses = True  # hits at once; misses as the wrapped adapter hands them over

    def generate(self, requests: Sequence[Request], on_response: OnResponse | None = None) -> list[Response]:
        """Cached responses (``cached=True``) plus fresh ones for the misses, in input order
        (``on_response(i, response)``: hits first, then misses as they are answered)."""
        return self._cached_call(
            requests,
            "generate",
            lambda rs, relay: generate_streaming(self.inner, rs, relay),
            _encode_response,
            _decode_response,
            on_response,
        )

    def score(self, requests: Sequence[Request]) -> list[float]:
        """Cached scores plus fresh ones for the misses, in input order."""
        return self._cached_call(
            requests,
            "score",
            lambda rs, _: [float(x) for x in self.inner.score(rs)],
            lambda x: None if x != x else json.dumps(x),  # NaN means "could not score": retry later
            lambda s: float(json.loads(s)),
        )

    def __len__(self) -> int:
        return int(self._conn().execute("SELECT COUNT(*) FROM answers").fetchone()[0])


def _decode_response(blob: str) -> Response:
    d = json.loads(blob)
    d["cached"] = True
    return Response(**d)


def _encode_response(r: Response) -> str | None:
    if r.error:
        return None
    # a shallow dict of the stored fields (all plain values): asdict's deep copy showed at GPU rates
    return _RESPONSE_JSON.encode({name: getattr(r, name) for name in _STORED_FIELDS})


_STORED_FIELDS = tuple(f.name for f in fields(Response) if f.name != "cached")
_RESPONSE_JSON = json.JSONEncoder(ensure_ascii=False)
