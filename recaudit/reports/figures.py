"""Draw ``FigureSpec`` data in the report's one shared style, as SVG data URIs.

Titles, labels and tick names come from results (item titles, user attributes) and are untrusted:
text is drawn as paths (``svg.fonttype = path``, no SVG ``<text>``), mathtext parsing is off (a ``$``
in a title is just a dollar sign), and the SVG is embedded as a base64 ``data:`` URI in an ``<img>``,
where browsers run no script. The same spec always yields the same bytes (fixed hash salt, no date).

Data conventions per kind (see docs/results-schema.md):
- ``line``: each series is a line over ``x``; ``y_low``/``y_high`` draw a shaded interval.
- ``bar``: grouped bars over the categories ``x``; ``y_low``/``y_high`` draw error bars.
- ``heatmap``: ``matrix[row][col]`` with ``row_labels``/``col_labels``; ``None`` cells are blank.
- ``lorenz``: ``x`` = cumulative share of items, ``y`` = cumulative share of exposure (both 0..1);
  with empty ``x``, ``y`` holds raw per-item values and the curve is computed. A dashed line of
  equality is drawn.
- ``histogram``: with empty ``x``, ``y`` holds raw values to bin; otherwise ``x`` are bin centres and
  ``y`` counts.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from recaudit.results import FigureSpec, Series  # noqa: E402

# Okabe–Ito: distinguishable under the common colour-vision deficiencies.
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]
HEATMAP_CMAP = "cividis"
MAX_TICK_LABEL = 28
MAX_ANNOTATED_CELLS = 144

STYLE: dict[str, Any] = {
    "figure.figsize": (6.4, 3.6),
    "figure.dpi": 100,
    "figure.constrained_layout.use": True,
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "axes.axisbelow": True,
    "grid.color": "#dddddd",
    "grid.linewidth": 0.6,
    "axes.prop_cycle": matplotlib.cycler(color=PALETTE),
    "legend.frameon": False,
    "legend.fontsize": 8,
    "lines.linewidth": 1.6,
    "lines.markersize": 4,
    "text.parse_math": False,
    "svg.fonttype": "path",
    "svg.hashsalt": "recaudit",
}


def render_figure(spec: FigureSpec) -> str:
    """The figure as a ``data:image/svg+xml;base64,...`` URI for an ``<img src>``."""
    return "data:image/svg+xml;base64," + base64.b64encode(figure_svg(spec)).decode("ascii")


def figure_svg(spec: FigureSpec) -> bytes:
    """The figure as SVG bytes in the shared style."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        try:
            _DRAW[spec.kind](ax, spec)
            ax.set_title(_short(spec.title, 80))
            ax.set_xlabel(_short(spec.x_label, 60))
            ax.set_ylabel(_short(spec.y_label, 60))
            buf = io.BytesIO()
            fig.savefig(buf, format="svg", metadata={"Date": None})
        finally:
            plt.close(fig)
    return buf.getvalue()


def _draw_line(ax: Any, spec: FigureSpec) -> None:
    for s in spec.series:
        x = _positions(ax, s.x)
        (line,) = ax.plot(x, _floats(s.y), marker="o", label=s.label)
        if s.y_low is not None and s.y_high is not None:
            ax.fill_between(x, _floats(s.y_low), _floats(s.y_high), color=line.get_color(), alpha=0.2, linewidth=0)
    _legend(ax, spec.series)


def _draw_bar(ax: Any, spec: FigureSpec) -> None:
    categories: list[Any] = []
    for s in spec.series:
        categories += [c for c in s.x if c not in categories]
    n = max(len(spec.series), 1)
    width = 0.8 / n
    base = np.arange(len(categories), dtype=float)
    for i, s in enumerate(spec.series):
        pos = np.array([categories.index(c) for c in s.x], dtype=float) + (i - (n - 1) / 2) * width
        y = np.asarray(_floats(s.y))
        yerr = None
        if s.y_low is not None and s.y_high is not None:
            yerr = np.clip(np.vstack([y - _floats(s.y_low), np.asarray(_floats(s.y_high)) - y]), 0, None)
        ax.bar(pos, y, width=width, yerr=yerr, capsize=2, label=s.label, error_kw={"linewidth": 0.8})
    ax.set_xticks(base, [_short(str(c)) for c in categories], rotation=_rotation(categories), ha=_ha(categories))
    ax.grid(axis="x", visible=False)
    _legend(ax, spec.series)


def _draw_heatmap(ax: Any, spec: FigureSpec) -> None:
    m = np.array([[math.nan if v is None else float(v) for v in row] for row in (spec.matrix or [[]])], dtype=float)
    if m.size == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        return
    img = ax.imshow(m, cmap=HEATMAP_CMAP, aspect="auto")
    ax.figure.colorbar(img, ax=ax, shrink=0.85)
    rows = spec.row_labels or [str(i) for i in range(m.shape[0])]
    cols = spec.col_labels or [str(j) for j in range(m.shape[1])]
    ax.set_yticks(range(m.shape[0]), [_short(r) for r in rows])
    ax.set_xticks(range(m.shape[1]), [_short(c) for c in cols], rotation=_rotation(cols), ha=_ha(cols))
    ax.grid(False)
    if m.size <= MAX_ANNOTATED_CELLS:
        finite = m[np.isfinite(m)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0.0
        for (r, c), v in np.ndenumerate(m):
            if math.isfinite(v):
                ax.text(c, r, f"{v:.2g}", ha="center", va="center", fontsize=7, color="white" if v < mid else "black")


def _draw_lorenz(ax: Any, spec: FigureSpec) -> None:
    ax.plot([0, 1], [0, 1], linestyle="--", color="#888888", linewidth=1, label="equality")
    for s in spec.series:
        if s.x:
            x, y = _floats(s.x), _floats(s.y)
        else:
            x, y = lorenz_curve(s.y)
        ax.plot(x, y, label=s.label)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend()


def _draw_histogram(ax: Any, spec: FigureSpec) -> None:
    for s in spec.series:
        if s.x:
            x = _floats(s.x)
            width = 0.8 * (min(np.diff(sorted(x))) if len(x) > 1 else 1.0)
            ax.bar(x, _floats(s.y), width=width, alpha=0.7, label=s.label)
        else:
            values = [v for v in _floats(s.y) if math.isfinite(v)]
            ax.hist(values, bins="auto", alpha=0.7, label=s.label)
    _legend(ax, spec.series)


_DRAW = {
    "line": _draw_line,
    "bar": _draw_bar,
    "heatmap": _draw_heatmap,
    "lorenz": _draw_lorenz,
    "histogram": _draw_histogram,
}


def lorenz_curve(values: Sequence[float]) -> tuple[list[float], list[float]]:
    """Cumulative share of items (ascending by value) against cumulative share of the total."""
    v = np.sort(np.clip(np.asarray(values, dtype=float), 0, None))
    total = v.sum()
    if v.size == 0 or total <= 0:
        return [0.0, 1.0], [0.0, 1.0]
    x = np.concatenate([[0.0], np.arange(1, v.size + 1) / v.size])
    y = np.concatenate([[0.0], np.cumsum(v) / total])
    return x.tolist(), y.tolist()


def _positions(ax: Any, x: Sequence[Any]) -> list[float]:
    """Numeric x as is; categorical x at 0..n-1 with its labels as ticks."""
    if all(isinstance(v, (int, float)) for v in x):
        return [float(v) for v in x]
    ax.set_xticks(range(len(x)), [_short(str(v)) for v in x], rotation=_rotation(x), ha=_ha(x))
    return list(range(len(x)))


def _floats(values: Sequence[Any]) -> list[float]:
    return [math.nan if v is None else float(v) for v in values]


def _legend(ax: Any, series: Sequence[Series]) -> None:
    if len(series) > 1 or (series and series[0].label):
        ax.legend()


def _short(text: str, limit: int = MAX_TICK_LABEL) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _rotation(labels: Sequence[Any]) -> int:
    return 30 if len(labels) > 6 or any(len(str(s)) > 10 for s in labels) else 0


def _ha(labels: Sequence[Any]) -> str:
    return "right" if _rotation(labels) else "center"
