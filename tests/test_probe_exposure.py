"""Exposure probe: request grid, planted concentration found, fair-role effect detected, baselines beside."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recaudit.adapters import CallableAdapter
from recaudit.checks import CheckContext, load_checks
from recaudit.probes.item_reference import most_popular, numbered, synthetic_world, uniform_random
from recaudit.probes.exposure import STRATEGIES, ExposureProbe
from recaudit.results import CheckResult

FAST = dict(use_embeddings=False, n_bootstrap=200, baselines=[])
ONE = dict(FAST, strategies=["simple"], system_prompts=["normal"])


@pytest.fixture(scope="module")
def world():
    return synthetic_world()


def _ctx(fn, world) -> CheckContext:
    catalog, inter = world
    return CheckContext(adapter=CallableAdapter(fn), catalog=catalog, interactions=inter)


def test_requests_cover_users_strategies_and_roles_deterministically(world):
    probe = ExposureProbe(dict(FAST, n_users=7))
    ctx = _ctx(lambda r: "", world)
    reqs = probe.requests(ctx)
    assert len(reqs) == 7 * len(STRATEGIES) * 2
    assert [r.key() for r in reqs] == [r.key() for r in probe.requests(ctx)]
    cells = {(r.meta()["strategy"], r.meta()["system"]) for r in reqs}
    assert cells == {(s, r) for s in STRATEGIES for r in ("normal", "fair")}
    fair = next(r for r in reqs if r.meta()["system"] == "fair")
    assert "fair movies recommender" in fair.system_text
    genre = next(r for r in reqs if r.meta()["strategy"] == "genre_focused")
    assert "My favourite genres are " in genre.user_text and "{" not in genre.user_text
    assert reqs[0].repetition_penalty == 1.3 and reqs[0].temperature == 0.0


def test_always_popular_concentrates_exposure_by_hand(world):
    catalog, _ = world
    res = ExposureProbe(dict(ONE, n_users=60)).run(_ctx(most_popular(catalog, 10), world))
    # the same 10 of 600 items for everyone: Gini = 1 - 10/600, HHI = 1/10, H = ln 10, coverage 10/600
    assert res.metric("exposure.gini.simple.normal").value == pytest.approx(1 - 10 / 600)
    assert res.metric("exposure.hhi.simple.normal").value == pytest.approx(0.1)
    assert res.metric("exposure.entropy.simple.normal").value == pytest.approx(math.log(10))
    assert res.metric("coverage.simple.normal").value == pytest.approx(10 / 600)
    years = sorted(it.year for it in sorted(catalog.items, key=lambda it: (-it.popularity, it.item_id))[:10])
    assert res.metric("recency.median_year.simple.normal").value == pytest.approx(np.median(years))
    assert res.metric("grounded_rate.simple.normal").value == 1.0


def test_random_recommender_spreads_exposure_far_more(world):
    catalog, _ = world
    popular = ExposureProbe(dict(ONE, n_users=100)).run(_ctx(most_popular(catalog, 10), world))
    random = ExposureProbe(dict(ONE, n_users=100)).run(_ctx(uniform_random(catalog, 10), world))
    g_pop, g_rnd = popular.metric("exposure.gini.simple.normal"), random.metric("exposure.gini.simple.normal")
    assert g_pop.value > 0.95 and g_rnd.value < 0.5 and g_rnd.ci_high < g_pop.value
    assert random.metric("exposure.entropy.simple.normal").value > popular.metric("exposure.entropy.simple.normal").value + 2
    assert random.metric("coverage.simple.normal").value > 0.7


def test_fair_role_effect_is_detected_with_a_paired_ci(world):
    catalog, _ = world
    popular, rand = most_popular(catalog, 10), uniform_random(catalog, 10)
    res = ExposureProbe(dict(FAST, n_users=60, strategies=["simple", "surprise"])).run(
        _ctx(lambda r: (rand if r.meta()["system"] == "fair" else popular)(r), world))
    for s in ("simple", "surprise"):
        change = res.metric(f"exposure.gini_change.{s}.fair")
        assert change.value < -0.3 and change.ci_high < 0
    heat = next(f for f in res.figures if f.name == "gini_grid")
    assert heat.row_labels == ["simple", "surprise"] and heat.col_labels == ["normal", "fair"]


def test_baseline_rows_share_users_and_show_toppop_concentration(world):
    catalog, _ = world
    res = ExposureProbe(dict(ONE, n_users=40, baselines=["toppop", "itemknn", "bpr"],
                             baseline_options={"bpr": {"epochs": 5}})).run(_ctx(uniform_random(catalog, 10), world))
    grid = {r[0]: r for r in res.tables[0].rows}
    assert set(grid) == {"simple · normal", "toppop", "itemknn", "bpr"}
    assert res.metric("baseline.toppop.gini").value > 0.95
    assert res.metric("baseline.toppop.gini").value > res.metric("exposure.gini.simple.normal").value
    for b in ("toppop", "itemknn", "bpr"):
        for m in ("gini", "hhi", "entropy", "coverage", "median_year", "std_year", "hit_rate"):
            assert f"baseline.{b}.{m}" in res.metric_names()
    lorenz = next(f for f in res.figures if f.name == "lorenz_exposure")
    assert [s.label for s in lorenz.series] == ["simple · normal", "toppop", "itemknn", "bpr"]
    for s in lorenz.series:
        assert s.x[0] == 0 and s.x[-1] == 1 and s.y[-1] == pytest.approx(1) and np.all(np.diff(s.y) >= -1e-12)
    hist = next(f for f in res.figures if f.name == "release_years")
    assert [s.label for s in hist.series] == ["history", "model · normal", "toppop", "itemknn", "bpr"]
    assert all(sum(s.y) == pytest.approx(1) for s in hist.series)
    CheckResult.model_validate_json(res.model_dump_json())


def test_include_unexposed_switches_the_gini_population(world):
    catalog, _ = world
    res = ExposureProbe(dict(ONE, n_users=30, include_unexposed=False)).run(_ctx(most_popular(catalog, 10), world))
    assert res.metric("exposure.gini.simple.normal").value == pytest.approx(0.0)  # equal among the 10 exposed


def test_ungrounded_and_unparsed_answers_are_counted(world):
    catalog, _ = world
    answer = numbered([catalog.items[0].title, "A Film That Does Not Exist"])
    res = ExposureProbe(dict(ONE, n_users=5)).run(_ctx(lambda r: answer, world))
    assert res.metric("grounded_rate.simple.normal").value == pytest.approx(0.5)
    grounding = res.tables[2]
    assert grounding.name == "grounding" and grounding.rows[0][grounding.columns.index("method.ungrounded")] == 5


def test_prompt_overrides_and_clear_errors(world):
    ctx = _ctx(lambda r: "", world)
    over = ExposureProbe(dict(ONE, n_users=2, prompts={"strategies": {"simple": "Liked:\n{history}\nGive {k}."}}))
    assert over.requests(ctx)[0].user_text.startswith("Liked:\n- ")
    with pytest.raises(ValueError, match="unknown"):
        ExposureProbe(dict(FAST, strategies=["telepathy"])).templates()
    with pytest.raises(ValueError, match="must use"):
        ExposureProbe(dict(ONE, prompts={"strategies": {"simple": "Give {k} movies."}})).templates()
    with pytest.raises(ValueError, match="unknown key"):
        ExposureProbe(dict(ONE, prompts={"nonsense": {}})).templates()
    with pytest.raises(ValueError, match="must not repeat"):
        ExposureProbe(dict(strategies=["simple", "simple"]))
    with pytest.raises(ValueError, match="needs a catalogue"):
        ExposureProbe(ONE).requests(CheckContext(adapter=CallableAdapter(lambda r: "")))


def test_registered():
    assert load_checks().get("exposure") is ExposureProbe


@pytest.mark.slow
def test_smollm2_on_demo_users(smollm2_adapter):
    from recaudit.data.loaders import demo_catalog, demo_interactions

    ctx = CheckContext(adapter=smollm2_adapter, catalog=demo_catalog(), interactions=demo_interactions())
    res = ExposureProbe(dict(n_users=3, strategies=["simple"], n_bootstrap=100, baselines=["toppop"])).run(ctx)
    assert 0 <= res.metric("exposure.gini.simple.normal").value <= 1
    assert "exposure.gini_change.simple.fair" in res.metric_names()


# --- Deldjoo 2024's prompting-side measures ---------------------------------------------------------


def _deldjoo_run(fn, **params):
    from recaudit.adapters import CallableAdapter
    from recaudit.checks import CheckContext
    from recaudit.probes.item_reference import synthetic_world
    from recaudit.probes.exposure import ExposureProbe

    catalog, inter = synthetic_world(n_users=40)
    base = dict(use_embeddings=False, baselines=["toppop"], n_users=8, strategies=["simple"], n_bootstrap=50,
                n_permutations=64, min_history=5)
    ctx = CheckContext(adapter=CallableAdapter(fn), catalog=catalog, interactions=inter)
    return ExposureProbe(dict(base, **params)).run(ctx), catalog


def test_temporal_stability_is_one_for_a_deterministic_recommender_and_below_for_a_drifting_one():
    from recaudit.probes.item_reference import numbered, synthetic_world

    catalog, _ = synthetic_world(n_users=40)
    titles = catalog.titles
    steady = lambda r: numbered(titles[:10])  # noqa: E731
    drift = lambda r: numbered(titles[r.seed * 5 : r.seed * 5 + 10])  # noqa: E731  half the list moves each repeat
    res, _ = _deldjoo_run(steady, n_repeats=3)
    assert res.metric("stability.simple.normal").value == 1.0
    res, _ = _deldjoo_run(drift, n_repeats=3)
    # runs 0/1 and 1/2 share 5 of 15 items, runs 0/2 none: (1/3 + 1/3 + 0) / 3
    assert res.metric("stability.simple.normal").value == pytest.approx(2 / 9)
    res, _ = _deldjoo_run(steady)
    assert not any(n.startswith("stability.") for n in res.metric_names())  # one run: no stability


def test_genre_dominance_and_ranking_accuracy_on_held_out_likes():
    from recaudit.probes.item_common import split_users
    from recaudit.probes.exposure import ExposureParams
    from recaudit.probes.item_reference import numbered, synthetic_world

    catalog, inter = synthetic_world(n_users=40)
    p = ExposureParams(use_embeddings=False, n_users=8, min_history=5)
    held = {s.user_id: s.heldout[0] for s in split_users(inter, p, "exposure")}
    other = [t for t in catalog.titles][:9]
    # the held-out item first, then 9 fixed items (not held out by anyone)
    fn = lambda r: numbered([catalog.get(held[r.meta()["user_id"]]).title] + [t for t in other if t != catalog.get(held[r.meta()["user_id"]]).title][:9])  # noqa: E731
    res, _ = _deldjoo_run(fn)
    assert res.metric("ndcg.simple.normal").value == pytest.approx(1.0)
    assert res.metric("recall.simple.normal").value == pytest.approx(1.0)
    assert "baseline.toppop.ndcg" in res.metric_names()
    dom = res.metric("genre_dominance.simple.normal")
    table = {r[0]: r for r in res.tables[[t.name for t in res.tables].index("genre_shares")].rows}
    row = table["simple · normal"]
    assert dom.value == pytest.approx(max(v for v in row[2:] if v is not None)) and row[1] in dom.description
