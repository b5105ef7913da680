"""Rows of catalogue and interaction files with their line numbers: reading, field checks, building.

The loaders of ``recaudit.data.loaders`` read every file through these helpers, so a malformed
file always raises ``DataFormatError`` ("file:line: problem"): bytes that do not decode, a wrong
field count, a missing column or key, a value of the wrong type, a duplicate item id, an item
that is not in the catalogue. ``fast_interactions`` is the vectorised path for large files; the
line-by-line reader stays the reference.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd

from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.data.errors import DataFormatError

__all__ = [
    "build_catalog",
    "build_interactions",
    "csv_records",
    "delimited",
    "fast_interactions",
    "float_field",
    "genres_field",
    "id_field",
    "int_field",
    "jsonl_records",
    "read_lines",
    "records",
]


def read_lines(path: Path, encoding: str) -> list[str]:
    """Decoded lines (without newline); DataFormatError on the first line that does not decode."""
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    lines = path.read_bytes().split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = []
    for n, raw in enumerate(lines, start=1):
        try:
            out.append(raw.decode(encoding).rstrip("\r"))
        except UnicodeDecodeError as e:
            raise DataFormatError(path, n, f"not valid {encoding} text (byte {raw[e.start]:#04x} at column {e.start + 1})") from None
    return out


def delimited(path: Path, sep: str, n_fields: int, encoding: str = "utf-8") -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a header-less delimited file with a fixed field count."""
    for n, line in enumerate(read_lines(path, encoding), start=1):
        if not line.strip():
            continue
        fields = line.split(sep)
        if len(fields) != n_fields:
            raise DataFormatError(path, n, f"expected {n_fields} {sep!r}-separated fields, found {len(fields)}")
        yield n, fields


def csv_records(path: Path, required: Sequence[str], encoding: str = "utf-8") -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row dict) of a CSV file with a header holding ``required`` columns."""
    reader = csv.reader(io.StringIO("\n".join(read_lines(path, encoding))))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise DataFormatError(path, 1, "empty file: expected a header row") from None
    missing = [c for c in required if c not in header]
    if missing:
        raise DataFormatError(path, 1, f"missing column(s) {', '.join(missing)} in header {header}")
    try:
        for row in reader:
            if not row or not any(f.strip() for f in row):
                continue
            if len(row) != len(header):
                raise DataFormatError(path, reader.line_num, f"expected {len(header)} fields, found {len(row)}")
            yield reader.line_num, dict(zip(header, row))
    except csv.Error as e:
        raise DataFormatError(path, reader.line_num, f"CSV syntax error: {e}") from None


def jsonl_records(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict]]:
    """(line number, object) of a JSON Lines file whose objects hold the ``required`` keys."""
    for n, line in enumerate(read_lines(path, "utf-8"), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataFormatError(path, n, f"invalid JSON: {e.msg}") from None
        if not isinstance(obj, dict):
            raise DataFormatError(path, n, f"expected a JSON object, found {type(obj).__name__}")
        missing = [c for c in required if c not in obj]
        if missing:
            raise DataFormatError(path, n, f"missing key(s) {', '.join(missing)}")
        yield n, obj


def records(path: Path, required: Sequence[str]) -> Iterator[tuple[int, dict]]:
    """The rows of a .csv or .jsonl file, chosen by its suffix."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return csv_records(path, required)
    if suffix in (".jsonl", ".ndjson"):
        return jsonl_records(path, required)
    raise DataFormatError(path, None, f"unsupported file type {suffix!r}: use .csv or .jsonl")


def int_field(path: Path, line: int, field: str, value: object, *, optional: bool = False) -> int | None:
    """An integer field (None for a blank optional one); DataFormatError naming the line otherwise."""
    if optional and (value is None or (isinstance(value, str) and not value.strip())):
        return None
    try:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, bool):
            raise ValueError
        return int(str(value).strip())
    except ValueError:
        raise DataFormatError(path, line, f"{field} must be an integer, got {value!r}") from None


def float_field(path: Path, line: int, field: str, value: object) -> float:
    """A finite number field; DataFormatError naming the line otherwise."""
    try:
        if isinstance(value, bool):
            raise ValueError
        x = float(str(value).strip())
    except ValueError:
        raise DataFormatError(path, line, f"{field} must be a number, got {value!r}") from None
    if not np.isfinite(x):
        raise DataFormatError(path, line, f"{field} must be finite, got {value!r}")
    return x


def id_field(path: Path, line: int, field: str, value: object) -> str:
    """An id (a string or a number) as a non-empty, stripped string."""
    s = str(value).strip() if value is not None else ""
    if not s or isinstance(value, (dict, list, bool)):
        raise DataFormatError(path, line, f"{field} must be a non-empty string or number, got {value!r}")
    return s


def genres_field(path: Path, line: int, value: object) -> tuple[str, ...]:
    """Genres from a list of strings or a pipe-separated string ("(no genres listed)" dropped)."""
    if value is None:
        return ()
    if isinstance(value, list):
        if not all(isinstance(g, str) for g in value):
            raise DataFormatError(path, line, f"genres must be strings, got {value!r}")
        parts = value
    elif isinstance(value, str):
        parts = value.split("|")
    else:
        raise DataFormatError(path, line, f"genres must be a list or a pipe-separated string, got {value!r}")
    return tuple(g.strip() for g in parts if g.strip() and g.strip() != "(no genres listed)")


def build_catalog(path: Path, items: list[tuple[int, Item]], name: str) -> Catalog:
    """A Catalog from (line, item) pairs; DataFormatError on a duplicate id or no items."""
    seen: dict[str, int] = {}
    for line, it in items:
        if it.item_id in seen:
            raise DataFormatError(path, line, f"duplicate item_id {it.item_id!r} (first on line {seen[it.item_id]})")
        seen[it.item_id] = line
    if not items:
        raise DataFormatError(path, None, "no items")
    return Catalog([it for _, it in items], name=name)


def build_interactions(
    path: Path, rows: Iterable[tuple[int, str, str, float, int]], catalog: Catalog | None, name: str,
    users: pd.DataFrame | None = None,
) -> Interactions:
    """Interactions from checked rows, each item (and user) checked against the catalogue (user table)."""
    cols: dict[str, list] = {"user_id": [], "item_id": [], "rating": [], "timestamp": []}
    for line, user, item, rating, ts in rows:
        if catalog is not None and item not in catalog:
            raise DataFormatError(path, line, f"item_id {item!r} is not in the catalogue {catalog.name!r}")
        if users is not None and user not in users.index:
            raise DataFormatError(path, line, f"user_id {user!r} is not in the user table")
        cols["user_id"].append(user)
        cols["item_id"].append(item)
        cols["rating"].append(rating)
        cols["timestamp"].append(ts)
    if not cols["user_id"]:
        raise DataFormatError(path, None, "no interactions")
    frame = pd.DataFrame(cols).astype({"rating": "float64", "timestamp": "int64"})
    return Interactions(frame, users=users, name=name)


def fast_interactions(
    path: Path, columns: dict[str, str | int | None], catalog: Catalog | None, name: str,
    users: pd.DataFrame | None = None, sep: str = ",", header: bool = True,
) -> Interactions | None:
    """Vectorised read of a large interaction file; None when anything looks wrong.

    The line-by-line reader stays the reference: on None the caller re-reads slowly, which
    either raises the precise DataFormatError (file:line) or accepts what pandas would not.
    """
    try:
        raw = pd.read_csv(path, sep=sep, header=0 if header else None, dtype=str, keep_default_na=False,
                          skip_blank_lines=False, encoding="utf-8", engine="c")
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError, OSError):
        return None
    if raw.empty or any(src is not None and src not in raw.columns for src in columns.values()):
        return None
    frame = pd.DataFrame({key: raw[columns[key]].str.strip() for key in ("user_id", "item_id")})
    rating = pd.to_numeric(raw[columns["rating"]], errors="coerce")
    ts_src = columns.get("timestamp")
    ts = pd.to_numeric(raw[ts_src], errors="coerce") if ts_src is not None else pd.Series(np.arange(len(raw)))
    ok = (
        (frame["user_id"] != "").all() and (frame["item_id"] != "").all()
        and np.isfinite(rating.to_numpy(dtype=float)).all()
        and ts.notna().all() and (ts == ts.round()).all()
        and (catalog is None or frame["item_id"].isin(set(catalog.ids)).all())
        and (users is None or frame["user_id"].isin(set(users.index)).all())
    )
    if not ok:
        return None
    frame["rating"] = rating.astype("float64")
    frame["timestamp"] = ts.astype("int64").to_numpy()
    return Interactions(frame, users=users, name=name)
