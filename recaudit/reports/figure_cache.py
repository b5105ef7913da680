"""Drawn figures kept in the run folder, so re-rendering an unchanged report draws nothing.

A warm re-run of a finished audit re-judges its checks in a second; drawing the report's figures
with matplotlib took longer than everything else. Each SVG is stored under the SHA-256 of the
figure's spec, matplotlib's version and the source of ``reports/figures.py`` (so a change to how
figures are drawn redraws them); a hit neither draws nor imports matplotlib.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Callable, Iterator

from recaudit.results import FigureSpec

Writer = Callable[[Path, str], object]
# reports only read results: the caller (the CLI) hands in how a file is written (recaudit.atomic)
_FOLDER: ContextVar[tuple[Path, Writer] | None] = ContextVar("recaudit_figure_cache", default=None)


@contextmanager
def figure_cache(folder: Path | None, write: Writer | None = None) -> Iterator[None]:
    """Within the block, figures are read from ``folder`` and new ones stored with ``write(path, text)``
    (None: always drawn)."""
    token = _FOLDER.set((folder, write) if folder is not None and write is not None else None)
    try:
        yield
    finally:
        _FOLDER.reset(token)


def render_figure(spec: FigureSpec) -> str:
    """The figure as a ``data:image/svg+xml;base64,...`` URI, from the cache when it holds it."""
    return "data:image/svg+xml;base64," + base64.b64encode(cached_svg(spec)).decode("ascii")


def cached_svg(spec: FigureSpec) -> bytes:
    """``figures.figure_svg(spec)``, drawn only when the active cache folder does not hold it."""
    active = _FOLDER.get()
    path = active[0] / f"{_key(spec)}.svg" if active is not None else None
    if path is not None and path.is_file():
        return path.read_bytes()
    from recaudit.reports.figures import figure_svg

    svg = figure_svg(spec)
    if path is not None and active is not None:
        try:
            active[1](path, svg.decode("utf-8"))  # SVG is text
        except OSError:  # a read-only run folder still gets its report; only the cache is lost
            pass
    return svg


def _key(spec: FigureSpec) -> str:
    blob = f"{_drawing_version()}|{spec.model_dump_json()}"
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


@lru_cache(maxsize=1)
def _drawing_version() -> str:
    """matplotlib's version and a digest of the drawing code."""
    spec = importlib.util.find_spec("recaudit.reports.figures")
    source = Path(spec.origin).read_bytes() if spec and spec.origin else b""
    try:
        mpl = metadata.version("matplotlib")
    except metadata.PackageNotFoundError:
        mpl = "?"
    return f"{mpl}:{hashlib.sha256(source).hexdigest()[:16]}"
