"""Atomic file writes, the one way recaudit writes a file a reader or a re-run may open: the text goes
to a temporary file beside the target, is fsynced, then renamed into place, so nobody ever sees half
a file (a killed run leaves the old file or none)."""

from __future__ import annotations

import contextlib
import gzip
import os
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_text(path: str | Path, *, compress: bool = False) -> Iterator[IO[str]]:
    """A text handle whose content replaces ``path`` only when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if compress:
            with open(tmp, "wb") as raw, gzip.open(raw, "wt", encoding="utf-8", compresslevel=1) as f:
                yield f
                f.flush()
            with open(tmp, "rb") as raw_again:
                os.fsync(raw_again.fileno())
        else:
            with open(tmp, "w", encoding="utf-8", newline="") as f:
                yield f
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_text(path) as f:
        f.write(text)
    return Path(path)
