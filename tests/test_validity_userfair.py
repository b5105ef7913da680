"""Validity of fairllm's and implicit_names' tests: power disclosure, planted effects, nulls, coverage.

Fast subset here (a few seconds); the full simulation (paper-sized samples, ≥ 20 seeds) is
``-m slow`` and ``benchmarks/validity_userfair.py`` (figures in benchmarks/results/validity_userfair.json).
"""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from recaudit.adapters.callable import CallableAdapter
from recaudit.checks import CheckContext
from recaudit.metrics.intervals import t_interval
from recaudit.metrics.multiplicity import adjust as holm
from recaudit.metrics.power import stratified_floor, within_block_floor

_SPEC = importlib.util.spec_from_file_location(
    "validity_userfair", Path(__file__).resolve().parents[1] / "benchmarks" / "validity_userfair.py")
V = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(V)


# --- power disclosure, exact -----------------------------------------------------------------------


def test_exact_floors_by_hand():
    assert within_block_floor(4, 3) == pytest.approx(1 / 16) and within_block_floor(3, 3) == pytest.approx(1 / 9)
    # two locales, 2 women + 2 men each: C(4,2)^2 = 36 arrangements, the observed one and its mirror
    labels, strata = np.array([0, 0, 1, 1, 0, 0, 1, 1]), np.array([0, 0, 0, 0, 1, 1, 1, 1])
    assert stratified_floor(labels, strata) == pytest.approx(2 / 36)
    # unequal group sizes: no relabeling keeps the counts, so only the observed arrangement
    assert stratified_floor(np.array([0, 1, 1]), np.array([0, 0, 0])) == pytest.approx(1 / 3)


def test_holm_by_hand():
    assert holm([0.01, 0.04, 0.03, None]) == pytest.approx([0.03, 0.06, 0.06, None], nan_ok=True) or \
        holm([0.01, 0.04, 0.03, None])[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])


def test_t_interval_by_hand():
    mean, lo, hi = t_interval(np.array([0.2, 0.4, 0.6]), 0.95)
    half = 4.302652729911275 * 0.2 / math.sqrt(3)
    assert (mean, lo, hi) == pytest.approx((0.4, max(0.0, 0.4 - half), min(1.0, 0.4 + half)))
    assert t_interval(np.array([0.5, 0.6, 0.7, 0.8]), 0.95)[1] > 0  # unclipped when inside [0, 1]


def test_fairllm_default_sample_is_flagged_underpowered_and_the_new_one_is_not():
    gen = CallableAdapter(V.fairllm_recommender(0, "a female", 1.0))
    small = V.fairllm_probe(3, 0, attributes=("gender", "religion")).run(CheckContext(adapter=gen))
    g = small.metric("snsr.prag@10.gender")
    assert g.p_floor == pytest.approx(1 / 16) and g.underpowered and g.needed_n == 5 and "underpowered" in g.power_note
    assert small.metric("snsr.prag@10.religion").p_floor == pytest.approx(1 / 9)
    assert abs(g.p_value - g.p_floor) < 0.03  # a maximal effect sits at the floor (Monte Carlo error)
    five = V.fairllm_probe(5, 0, attributes=("gender",)).run(CheckContext(adapter=gen))
    m = five.metric("snsr.prag@10.gender")
    assert m.p_floor == pytest.approx(4.0**-4) and not m.underpowered and m.p_value < 0.01
    assert m.mde is not None and 0 < m.mde < m.value
    assert m.p_adj_method.startswith("holm over 1 attributes")
    sim = five.metric("sim.prag@10.gender.a_female")
    assert sim.ci_method == "t" and sim.ci_unreliable  # 5 < 10 instructions


def test_implicit_floor_and_holm_fields():
    probe = V.implicit_probe(2, 0)
    gender_of = {u.name: u.gender for u in probe.users()}
    res = probe.run(CheckContext(adapter=CallableAdapter(V.implicit_recommender(0, gender_of, 1.0))))
    m = res.metric("implicit.js.gender.news")
    assert m.p_floor == pytest.approx(2 / 36) and m.underpowered and m.needed_n == 3
    assert m.p_adj is not None and m.p_adj >= m.p_value and "holm" in m.p_adj_method
    head = res.metric("implicit.js.max")
    assert head.underpowered and head.p_floor == pytest.approx(min(1, 2 * 2 / 36))


# --- planted and null recommenders (fast subset) -------------------------------------------------


def test_fast_fairllm_power_fwer_coverage():
    assert V.fairllm_power(50, 3)["power"] == 1.0
    null = V.fairllm_fwer(10, 8)
    assert null["fwer_holm"] <= 0.25 and null["fwer_headline"] <= 0.25
    cov = V.fairllm_coverage(10, 8, n_draws=800)["coverage"]
    assert all(0.8 <= c <= 1.0 for c in cov.values()), cov


def test_fast_implicit_power_and_null():
    assert V.implicit_power(25, 1)["power_js"] == 1.0
    power = V.implicit_power(50, 2)
    assert power["power_u_ndcg"] == 1.0 and power["family"] == "holm over 8 tests (implicit.*)"
    null = V.implicit_fwer(4, 4)
    assert null["fwer"] <= 1 / 4 and null["family"].startswith("holm over 8 tests")


def test_planted_swap_removes_what_it_says():
    # the earlier planting re-drew relevant items for women, so a "20% swap" removed only ~12% of them
    assert V.relevant_share_removed(0.2, n=1500) == pytest.approx(0.2, abs=0.03)
    assert V.relevant_share_removed(0.2, legacy=True, n=1500) == pytest.approx(0.117, abs=0.03)
    assert V.relevant_share_removed(0.0, n=500) == pytest.approx(0.0, abs=0.04)


# --- full simulation -------------------------------------------------------------------------------


@pytest.mark.slow
def test_full_power_fwer_coverage():
    assert V.fairllm_power(500, 20)["power"] >= 0.95
    imp = V.implicit_power(50, 40)
    assert imp["power_js"] >= 0.95 and imp["power_u_ndcg"] >= 0.95
    # ≤ 0.05 within sampling error: the Clopper–Pearson interval over 60 seeds must reach 0.05
    f = V.fairllm_fwer(10, 60)
    assert f["ci95_holm"][0] <= 0.05 and f["fwer_holm"] <= 0.1
    i = V.implicit_fwer(4, 100)  # any of the check's 8 tests, Holm over all of them
    assert i["ci95"][0] <= 0.05 and i["fwer"] <= 0.1
    cov = V.fairllm_coverage(10, 150, n_draws=10000)
    assert all(0.93 <= c <= 0.97 for c in cov["coverage"].values()), cov
