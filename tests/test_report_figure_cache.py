"""Figures kept in the run folder: the same spec is drawn once, a changed spec is drawn again."""

from __future__ import annotations

import recaudit.reports.figures as figures
from recaudit.atomic import write_text_atomic
from recaudit.reports.figure_cache import cached_svg, figure_cache
from recaudit.results import FigureSpec, Series


def _spec(y: float) -> FigureSpec:
    return FigureSpec(name="f", kind="bar", title="t <b>", x_label="x", y_label="y",
                      series=[Series(label="s", x=["a", "b"], y=[1.0, y])])


def test_same_spec_is_drawn_once_and_gives_the_same_bytes(tmp_path, monkeypatch):
    drawn = []
    real = figures.figure_svg

    def counting(spec):
        drawn.append(spec)
        return real(spec)

    monkeypatch.setattr(figures, "figure_svg", counting)
    with figure_cache(tmp_path / "figs", write_text_atomic):
        first = cached_svg(_spec(2.0))
        again = cached_svg(_spec(2.0))
        other = cached_svg(_spec(3.0))
    assert len(drawn) == 2  # the repeated spec came from the folder
    assert first == again == real(_spec(2.0)) and other != first
    assert len(list((tmp_path / "figs").glob("*.svg"))) == 2
    # outside a cache block nothing is kept and every call draws
    cached_svg(_spec(2.0))
    assert len(drawn) == 3


def test_unwritable_cache_folder_still_draws(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with figure_cache(blocker / "figs", write_text_atomic):  # a folder under a file cannot be made
        assert cached_svg(_spec(2.0)).startswith(b"<?xml")
