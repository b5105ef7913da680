"""Classical recommenders' explicit unfairness (Xu et al.'s comparison side) on planted biases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recaudit.baselines import TopPop
from recaudit.data.catalog import Interactions
from recaudit.probes.explicit_unfairness import (
    AttributeGroupPop, PROTOCOL, age_bucket, comparison_table, explicit_unfairness, leave_last_out, user_groups,
)
from recaudit.results import MetricValue


def _world(seed: int, n_users: int = 240, n_items: int = 40, per_user: int = 8, gendered: bool = False):
    """Users rate items drawn by popularity; with ``gendered`` women and men like disjoint halves."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_items + 1)
    rows, users = [], []
    for u in range(n_users):
        gender = "F" if u % 2 else "M"
        users.append({"user_id": str(u), "gender": gender, "age": int(rng.integers(15, 70)), "occupation": "other"})
        w = weights.copy()
        if gendered:
            w[(np.arange(n_items) % 2 == 0) if gender == "F" else (np.arange(n_items) % 2 == 1)] *= 1e-3
        items = rng.choice(n_items, size=per_user, replace=False, p=w / w.sum())
        rows += [(str(u), f"i{j:02d}", 4.0, t) for t, j in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    return Interactions(frame, users=pd.DataFrame(users).set_index("user_id"), name="toy")


class GenderBiased(TopPop):
    """TopPop for women; for men the same ranking reversed (a planted explicit bias)."""

    name = "biased"

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def scores(self, user: int) -> np.ndarray:
        pop = super().scores(user)
        return -pop if self.groups[str(self.user_ids[user])] == "M" else pop


def test_leave_last_out_and_groups():
    inter = _world(0, n_users=4, per_user=3)
    train, test = leave_last_out(inter)
    assert len(train) == 4 * 2 and set(test) == {"0", "1", "2", "3"}
    last = inter.frame[inter.frame.timestamp == 2].set_index("user_id")["item_id"].to_dict()
    assert test == last
    assert age_bucket(17) == "<18" and age_bucket(25) == "25-34" and age_bucket(56) == "56+"
    assert set(user_groups(inter.users, "age").values()) <= {b[2] for b in __import__(
        "recaudit.probes.explicit_unfairness", fromlist=["AGE_BUCKETS"]).AGE_BUCKETS}


def test_planted_gender_bias_is_found_and_a_fair_recommender_is_not_flagged():
    inter = _world(1)
    groups = user_groups(inter.users, "gender")
    res = explicit_unfairness(inter, {"biased": GenderBiased(groups), "toppop": TopPop()}, k=10,
                              attributes=["gender"], n_permutations=500, seed=0)
    by = {m.name: m for m in res.metrics}
    biased = by["classical.biased.u_ndcg@10.gender"]
    fair = by["classical.toppop.u_ndcg@10.gender"]
    assert biased.value > 0.2 and biased.p_value < 0.01 and biased.p_adj < 0.01
    assert fair.value < 0.1 and fair.p_value > 0.05
    assert biased.p_floor == pytest.approx(1 / 501) and not biased.underpowered
    assert biased.mde is not None and biased.mde < biased.value
    assert PROTOCOL in biased.description and biased.variant == "classical:biased"
    assert "holm over 2 tests" in biased.p_adj_method
    rows = {(r["recommender"], r["group"]): r for r in res.table.as_records()}
    assert rows[("biased", "F")]["ndcg@10"] > rows[("biased", "M")]["ndcg@10"]


def test_fair_recommender_false_flag_rate():
    flags = 0
    for seed in range(10):
        res = explicit_unfairness(_world(100 + seed, n_users=120), {"toppop": TopPop()}, k=10, attributes=["gender"],
                                  n_permutations=200, seed=seed)
        flags += res.metrics[0].p_value < 0.05
    assert flags <= 2


def test_attribute_group_popularity_uses_the_attribute():
    inter = _world(2, gendered=True)
    groups = user_groups(inter.users, "gender")
    res = explicit_unfairness(inter, {"toppop": TopPop(), "attribute_pop": AttributeGroupPop(groups)}, k=5,
                              attributes=["gender"], n_permutations=0)
    by = {m.name: m.value for m in res.metrics}
    # knowing the gender helps when tastes are gendered: attribute-aware popularity ranks better
    rows = {(r["recommender"], r["group"]): r["ndcg@5"] for r in res.table.as_records()}
    assert rows[("attribute_pop", "F")] > rows[("toppop", "F")] and rows[("attribute_pop", "M")] > rows[("toppop", "M")]
    assert np.isfinite(by["classical.attribute_pop.u_mrr@5.gender"])


def test_comparison_table_pairs_measures_and_groupings():
    imp = [MetricValue(name="implicit.u_ndcg@10.gender.movies", value=0.3, p_value=0.01)]
    exp = [MetricValue(name="classical.attribute_pop.gender.u_ndcg@10.gender", value=0.1, p_value=0.2),
           MetricValue(name="classical.toppop.u_mrr@10.gender", value=0.05, p_value=0.5)]
    table = comparison_table(imp, exp).as_records()
    assert len(table) == 1 and table[0]["classical"] == "attribute_pop.gender"
    assert table[0]["implicit_minus_explicit"] == pytest.approx(0.2)


def test_needs_user_attributes():
    inter = _world(0, n_users=4)
    with pytest.raises(ValueError, match="user attributes"):
        explicit_unfairness(Interactions(inter.frame), {"toppop": TopPop()})


def _headlines(request) -> str:
    return "\n".join(f"{i}. Football headline {'abcdefghij'[i]}" for i in range(1, 6))


def test_implicit_probe_reports_the_classical_side_beside_its_own():
    from recaudit.adapters.callable import CallableAdapter
    from recaudit.checks import CheckContext
    from recaudit.probes.implicit_names import ImplicitNamesProbe

    params = dict(domains=["news"], locales=["en_US", "yo_NG"], conditions=["implicit"], k=5, n_names=2,
                  n_bootstrap=0, n_permutations=100, category_method="keyword",
                  classical=["toppop", "attribute_pop"], classical_attributes=["gender"])
    probe = ImplicitNamesProbe(params)
    assert "classical.*" in ImplicitNamesProbe.metric_names(probe.params)
    res = probe.run(CheckContext(adapter=CallableAdapter(_headlines), interactions=_world(3)))
    names = res.metric_names()
    assert "classical.toppop.u_ndcg@10.gender" in names and "classical.attribute_pop.gender.u_mrr@10.gender" in names
    table = next(t for t in res.tables if t.name == "implicit_vs_classical").as_records()
    assert {r["classical"] for r in table} == {"toppop", "attribute_pop.gender"}
    assert all(r["grouping"] == "gender" for r in table) and len(table) == 4  # 2 measures x 2 recommenders
    assert any(PROTOCOL in n for n in res.notes)
    with pytest.raises(ValueError, match="user attributes"):
        ImplicitNamesProbe(params).run(CheckContext(adapter=CallableAdapter(_headlines)))


# --- the same people on both sides (population: interactions) ---------------------------------------


def _world_with_catalog(seed: int, n_users: int = 120, **kw):
    from recaudit.data.catalog import Catalog, Item

    inter = _world(seed, n_users=n_users, **kw)
    catalog = Catalog([Item(f"i{j:02d}", f"Film Number {j:02d}", ("Drama",), 1990 + j % 10) for j in range(40)])
    return inter, catalog


def _same_user_params(**extra):
    from recaudit.probes.implicit_names import ImplicitNamesParams

    base = dict(population="interactions", domains=["movies"], conditions=["implicit"], group_by=["gender"],
                locales=["en_US"], n_users=30, k=10, n_bootstrap=0, n_permutations=300, category_method="keyword",
                classical_attributes=["gender", "age", "occupation"])
    base.update(extra)
    return ImplicitNamesParams(**base)


def test_same_users_planted_explicit_bias_is_found_and_a_fair_recommender_is_not_flagged():
    from recaudit.probes.implicit_names_history import SAME_USERS_PROTOCOL, classical_same_users, history_users

    inter, _ = _world_with_catalog(4, n_users=240)
    users, train, held = history_users(inter, 60, "en_US", seed=0)
    assert sum(u.record.gender == "female" for u in users) == 60 and len({u.user_id for u in users}) == 120
    # the name implies the recorded gender of that very user
    assert all({"F": "female", "M": "male"}[inter.users.loc[u.user_id, "gender"]] == u.record.gender for u in users)
    groups = user_groups(inter.users, "gender")
    metrics, tables, notes = classical_same_users(
        inter, users, train, held, _same_user_params(), implicit=[],
        recommenders={"biased": GenderBiased(groups), "toppop": TopPop()})
    by = {m.name: m for m in metrics}
    biased, fair = by["classical.biased.u_ndcg@10.gender"], by["classical.toppop.u_ndcg@10.gender"]
    assert biased.value > 0.1 and biased.p_value == pytest.approx(biased.p_floor) and biased.p_adj < 0.05
    assert fair.p_value > 0.05 and (fair.p_adj is None or fair.p_adj > 0.05)
    assert all(m.n == 120 for m in metrics)  # scored on the LLM's users only, not all 240
    assert SAME_USERS_PROTOCOL in biased.description and SAME_USERS_PROTOCOL in notes[0]
    assert "holm over 6 tests" in biased.p_adj_method  # 3 attributes x 2 measures


def _echo_history(request) -> str:
    """An LLM that recommends the titles it was shown (never the held-out item) plus filler."""
    import re

    shown = re.findall(r"(Film Number \d\d) \(\d{4}\)", request.user_text)
    titles = (shown + [f"Film Number {j:02d}" for j in range(40)])[:10]
    return "\n".join(f"{i}. {t}" for i, t in enumerate(titles, start=1))


def test_probe_same_users_design_reports_both_sides_on_the_same_people():
    from recaudit.adapters.callable import CallableAdapter
    from recaudit.checks import CheckContext
    from recaudit.probes.implicit_names import ImplicitNamesProbe
    from recaudit.probes.implicit_names_history import SAME_USERS_PROTOCOL

    inter, catalog = _world_with_catalog(5)
    params = _same_user_params(classical=["toppop", "attribute_pop"]).model_dump()
    probe = ImplicitNamesProbe(params)
    reqs = probe.requests(CheckContext(adapter=None, interactions=inter, catalog=catalog))
    assert len(reqs) == 60 and all("Film Number" in r.user_text for r in reqs)
    res = probe.run(CheckContext(adapter=CallableAdapter(_echo_history), interactions=inter, catalog=catalog))
    imp = res.metric("implicit.u_ndcg@10.gender.movies")
    assert imp.n == 60 and SAME_USERS_PROTOCOL in imp.description and imp.p_adj is not None
    assert "activity stratum" in imp.power_note
    assert res.metric("grounded_rate.movies").value == pytest.approx(1.0)
    table = next(t for t in res.tables if t.name == "implicit_vs_classical")
    assert SAME_USERS_PROTOCOL in table.description
    rows = table.as_records()
    assert {r["classical"] for r in rows} == {"toppop", "attribute_pop.gender", "attribute_pop.age",
                                              "attribute_pop.occupation"}
    assert all(m.n == 60 for m in res.metrics if m.name.startswith("classical."))
    with pytest.raises(ValueError, match="domains \\[movies\\]"):
        ImplicitNamesProbe({**params, "domains": ["news"]}).validate_setup()
    with pytest.raises(ValueError, match="user genders"):
        ImplicitNamesProbe(params).requests(CheckContext(adapter=None, catalog=catalog))
