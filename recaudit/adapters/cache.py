"""A persistent answer cache that wraps any Adapter and is itself an Adapter.

One SQLite file (WAL mode) holds one table keyed by (adapter fingerprint id, request key, kind).
Only misses reach the wrapped adapter, in chunks; each answer is committed, in its own transaction,
as the adapter hands it over (``generate_streaming``; a non-streaming adapter's answers when its
call returns), so a run killed with ``kill -9`` loses only the requests in flight. Several threads and processes may share
one file: each thread has its own connection, writers wait on a busy timeout, and rows are written
with ``INSERT OR REPLACE`` inside a transaction. Responses carrying an ``error`` are never stored
(the next run retries them), and the fingerprint stored beside the rows is checked to hold no
credential-looking field. ``inspect_cache_file`` checks a cache path without writing to it (a
directory, an unwritable place, garbage, a truncated file or another program's database are
refused with one line naming the file); ``CachedAdapter`` runs it before it opens the file.
"""

from __future__ import annotations

import json
import os
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
_INSERT = "INSERT OR REPLACE INTO answers (fingerprint, request, kind, value, created) VALUES (?, ?, ?, ?, ?)"
_LOOKUP_CHUNK = 500  # below SQLite's default limit of host parameters
_SQLITE_MAGIC = b"SQLite format 3\x00"
# the columns each recaudit table must have (a file with other tables is another program's database)
_TABLES = {"answers": {"fingerprint", "request", "kind", "value", "created"}, "fingerprints": {"fingerprint", "description"}}
_QUICK_CHECK_MAX_BYTES = 1 << 30  # a full quick_check of a larger cache would delay every run start


def inspect_cache_file(path: str | Path) -> dict[str, Any]:
    """Check a cache path without writing anything: ``{"path", "exists", "answers", "fingerprints"}``,
    or AdapterError (one line naming the file) for a directory, an unwritable place, a file that is
    not SQLite, a truncated or corrupt one, or a database with tables recaudit did not make."""
    p = Path(path)
    if p.is_dir():
        raise AdapterError(f"cache path {p} is a directory (a folder, not a file); give a file path such as {p / 'cache.sqlite'}")
    if not p.exists():
        parent = next((a for a in [p.parent, *p.parent.parents] if a.exists()), None)
        if parent is not None and not parent.is_dir():
            raise AdapterError(f"cache path {p}: {parent} is a file, not a folder")
        if parent is not None and not os.access(parent, os.W_OK | os.X_OK):
            raise AdapterError(f"cache path {p}: folder {parent} is not writable")
        return {"path": str(p), "exists": False, "answers": 0, "fingerprints": 0}
    if not os.access(p, os.R_OK):
        raise AdapterError(f"cache file {p} is not readable")
    if not os.access(p, os.W_OK) or not os.access(p.parent, os.W_OK | os.X_OK):
        raise AdapterError(f"cache file {p} is not writable (or its folder is not: SQLite writes a -wal file beside it)")
    size = p.stat().st_size
    if size == 0:
        return {"path": str(p), "exists": True, "answers": 0, "fingerprints": 0}
    with open(p, "rb") as f:
        header = f.read(100)
    if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
        raise AdapterError(f"cache file {p} is not a SQLite database (garbage or another format); move it away or pick another cache path")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    wal = p.with_name(p.name + "-wal")
    if page_size < 512 or (size % page_size and not wal.exists()):
        raise AdapterError(f"cache file {p} is truncated ({size} bytes, not a whole number of {page_size}-byte pages)")
    try:
        conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, timeout=5.0)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            foreign = tables - set(_TABLES) - {"sqlite_sequence", "sqlite_stat1"}
            if foreign:
                raise AdapterError(
                    f"cache file {p} holds tables recaudit did not make ({', '.join(sorted(foreign)[:5])}); it is another program's database"
                )
            for table in tables & set(_TABLES):
                cols = {r[1] for r in conn.execute(f"PRAGMA table_info({table})")}
                if not _TABLES[table] <= cols:
                    raise AdapterError(f"cache file {p}: table {table} lacks columns {sorted(_TABLES[table] - cols)} (another schema)")
            if size <= _QUICK_CHECK_MAX_BYTES:
                verdict = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
                if verdict != "ok":
                    raise AdapterError(f"cache file {p} is corrupt (SQLite quick_check: {' '.join(str(verdict).split())[:120]})")
            n = conn.execute("SELECT COUNT(*) FROM answers").fetchone()[0] if "answers" in tables else 0
            m = conn.execute("SELECT COUNT(*) FROM fingerprints").fetchone()[0] if "fingerprints" in tables else 0
        finally:
            conn.close()
    except sqlite3.DatabaseError as e:
        raise AdapterError(f"cache file {p} cannot be read as a recaudit cache ({' '.join(str(e).split())})") from None
    return {"path": str(p), "exists": True, "answers": int(n), "fingerprints": int(m)}


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
        inspect_cache_file(self.path)  # refuse a directory, garbage or a foreign database before writing
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise AdapterError(f"cache path {self.path}: cannot create its folder ({e.strerror or e})") from None
        self.chunk_size = chunk_size
        self.timeout_s = timeout_s
        self._local = threading.local()
        self._lock = threading.Lock()
        self.stats: dict[str, int] = {"hits": 0, "misses": 0, "errors": 0}
        try:
            conn = self._conn()
            with conn:
                conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as e:
            raise AdapterError(f"cache file {self.path} cannot be used ({' '.join(str(e).split())})") from None

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

    def _store_rows(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Commit (fingerprint, kind, request key, value) rows in one transaction."""
        if not rows:
            return
        conn = self._conn()
        now = time.time()
        if len(rows) == 1:  # autocommit: one statement is its own transaction, no BEGIN/COMMIT round trips
            ns, kind, k, v = rows[0]
            conn.execute(_INSERT, (ns, k, kind, v, now))
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(_INSERT, [(ns, k, kind, v, now) for ns, kind, k, v in rows])
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

            def take(j: int, a: T, chunk: list[tuple[str, list[int]]] = chunk, taken: list[bool] = taken) -> None:
                # each answer is committed as it arrives (a killed run keeps it), then handed on
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
                    # one transaction per answer: ~50 us on a busy laptop disk (WAL, synchronous=NORMAL),
                    # a few % of a thread at GPU answer rates; a writer thread lagged behind under CPU
                    # contention and lost more than the requests in flight at kill -9
                    self._store_rows([(ns, kind, key, blob)])
                if on_answer is not None:
                    for i in idx:
                        on_answer(i, a)

            answers = compute([requests[idx[0]] for _, idx in chunk], take)
            if len(answers) != len(chunk):
                raise AdapterError(f"wrapped adapter returned {len(answers)} answers for {len(chunk)} requests")
            for j, a in enumerate(answers):  # what the adapter did not stream
                take(j, a)
        return out  # type: ignore[return-value]  # every slot is filled above

    # ---- Adapter --------------------------------------------------------------------------------
    streams_responses = True  # StreamingAdapter: hits at once; misses as the wrapped adapter hands them over

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
