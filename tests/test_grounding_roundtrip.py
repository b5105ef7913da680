"""Catalogue round trip: every MovieLens 100K title (and a sample of ml-latest-small; all of it under slow),
written as an LLM lists it, comes back through parse_list + Grounder as its own item."""

from __future__ import annotations

import importlib.util
import random
import sys

import pytest

from recaudit.data.catalog import Catalog

_spec = importlib.util.spec_from_file_location(
    "grounding_roundtrip", __import__("pathlib").Path(__file__).parents[1] / "benchmarks" / "grounding_roundtrip.py"
)
rt = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("grounding_roundtrip", rt)  # dataclasses look their module up
_spec.loader.exec_module(rt)


_LOADED: dict = {}


def _load(shared_data, name: str):
    """Each data set is loaded once per session (ml-latest-small's ratings take seconds)."""
    if name not in _LOADED:
        if not (shared_data / name).exists():
            pytest.skip(f"{name} not in the shared data")
        _LOADED[name] = rt.load(shared_data, name)
    return _LOADED[name]


def _check(catalog: Catalog, items, form: str, with_year: bool) -> None:
    o = rt.round_trip(catalog, rt.make_lists(items, seed=0), form, with_year)
    assert o.n == len(items)
    if with_year:
        assert (o.exact + o.duplicate) / o.n >= 0.995, o.as_dict()
        assert o.wrong - o.wrong_flagged <= 0.005 * o.n
    else:  # without a year a remake pair cannot be told apart, but every such miss must say so
        assert o.wrong == o.wrong_flagged, o.examples["wrong"]
        assert (o.exact + o.duplicate + o.wrong) / o.n >= 0.995, o.as_dict()


@pytest.mark.parametrize("with_year", [True, False])
@pytest.mark.parametrize("form", rt.FORMS)
def test_ml100k_every_title_round_trips(shared_data, form, with_year):
    catalog, items = _load(shared_data, "ml-100k")
    _check(catalog, items, form, with_year)


def test_ml100k_duplicates_are_merged(shared_data):
    catalog, items = _load(shared_data, "ml-100k")
    g = rt.Grounder(catalog, use_embeddings=False)
    assert len(g.duplicate_groups) == 18  # ML-100K lists 18 films twice (same title and year)
    for group in g.duplicate_groups:
        assert len({(catalog.get(i).year) for i in group}) == 1
        assert all(g.canonical_id(i) == group[0] for i in group)


@pytest.mark.parametrize("with_year", [True, False])
@pytest.mark.parametrize("form", rt.FORMS)
def test_ml_latest_small_sample_round_trips(shared_data, form, with_year):
    catalog, items = _load(shared_data, "ml-latest-small")
    _check(catalog, random.Random(1).sample(items, 1500), form, with_year)


@pytest.mark.slow
@pytest.mark.parametrize("with_year", [True, False])
@pytest.mark.parametrize("form", rt.FORMS)
def test_ml_latest_small_every_title_round_trips(shared_data, form, with_year):
    catalog, items = _load(shared_data, "ml-latest-small")
    _check(catalog, items, form, with_year)
