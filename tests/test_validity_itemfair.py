"""Validity of the item-side statistics by simulation: calibrated tests, power, interval coverage.

Fast subset here (seconds); the full suite (more seeds, tighter bounds) under ``-m slow``;
figures by benchmarks/validity_itemfair.py into benchmarks/results/validity_itemfair.json.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from recaudit.metrics.concentration import (
    STAT_NAMES,
    jackknife_change,
    jackknife_interval,
    row_stats,
    stat_range,
    swap_test,
)
from recaudit.metrics.group import gu_tests
from recaudit.metrics.multiplicity import holm
from recaudit.probes.item_reference import exposure_population, group_population, synthetic_world

_SPEC = importlib.util.spec_from_file_location(
    "validity_itemfair", Path(__file__).resolve().parents[1] / "benchmarks" / "validity_itemfair.py")
V = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(V)


def _fwer(n_users: int, seeds: int, swap: float = 0.0, alpha: float = 0.05) -> float:
    draw = group_population()
    rng = np.random.default_rng(n_users)
    flagged = 0
    for s in range(seeds):
        rec, ref = draw(n_users, rng, swap)
        flagged += np.nanmin(holm(gu_tests(rec, ref, 500, s).gu_p)) < alpha
    return flagged / seeds


def _coverage(stat: str, n: int, reps: int, truth_draws: int, change: bool = False) -> float:
    draw = exposure_population(n_items=400)
    rng = np.random.default_rng(7 + n)
    shift = 0.1 if change else 0.0
    # θ_n: the expected value of the statistic at n users (see metrics.concentration)
    t_a = np.mean([row_stats(draw(n, rng).sum(axis=0), stat)[0] for _ in range(truth_draws)])
    t_b = np.mean([row_stats(draw(n, rng, shift).sum(axis=0), stat)[0] for _ in range(truth_draws)]) if change else 0.0
    truth = t_b - t_a if change else t_a
    hits = 0
    for _ in range(reps):
        a = draw(n, rng)
        iv = jackknife_change(a, draw(n, rng, shift), stat) if change else jackknife_interval(a, stat)
        hits += iv.low <= truth <= iv.high
    return hits / reps


def test_gu_tests_hold_the_family_wise_rate_under_the_fair_null():
    rate = _fwer(14, 150)
    assert rate <= 0.08  # nominal 0.05; 150 seeds: 0.08 is ~1.7 SE above


def test_gu_tests_hold_the_rate_when_users_share_one_taste():
    # users of near-identical taste (Dirichlet concentration 50): swapping a user's 5 recommended and 10
    # history count rows (the earlier null) flagged 0.08 of these runs; flipping each user's GU contribution holds α
    draw, rng = group_population(concentration=50.0), np.random.default_rng(3)
    flags = [np.nanmin(holm(gu_tests(*draw(14, rng, 0.0), 500, s).gu_p)) < 0.05 for s in range(300)]
    assert np.mean(flags) <= 0.05, np.mean(flags)


def test_item_fairness_probe_null_recommender_false_flag_rate_over_20_seeds():
    # the history-subsample recommender through Probe.run: 0.08-0.12 of runs flagged before the fix
    rates = V.item_fairness_runs(14, 20, 0.0, synthetic_world(n_users=400))
    assert max(rates["rate_popularity"], rates["rate_genre"]) <= 0.05, rates
    assert max(rates["rate_dgu.popularity"], rates["rate_dgu.genre"]) <= 0.10, rates  # one-sided, 20 seeds


def test_gu_tests_find_a_planted_20_percent_popularity_swap():
    assert _fwer(120, 20, swap=0.2) >= 0.95


def test_gu_p_floor_is_exact_for_enumerated_flips():
    rec = np.array([[3.0, 0.0]] * 6)
    ref = np.array([[0.0, 3.0]] * 6)
    t = gu_tests(rec, ref, n_permutations=2000)
    assert t.exact and t.n_flips == 64
    # maximal effect: only the identity and the all-swapped sample reach |GU| = 1
    assert t.gu_p[0] == pytest.approx(2 / 64) == pytest.approx(t.p_floor)


@pytest.mark.parametrize("stat", STAT_NAMES)
def test_jackknife_interval_covers_the_expected_value_at_n(stat):
    cov = _coverage(stat, 10, 150, 300)
    assert 0.88 <= cov <= 0.995, cov


def test_jackknife_bounds_stay_in_range():
    draw = exposure_population(n_items=200)
    rng = np.random.default_rng(0)
    for stat in STAT_NAMES:
        lo, hi = stat_range(stat, 200)
        for _ in range(20):
            iv = jackknife_interval(draw(3, rng, 2.0), stat)
            assert lo <= iv.low <= iv.high <= hi


def test_swap_test_is_calibrated_and_finds_a_planted_change():
    draw = exposure_population(n_items=300)
    rng = np.random.default_rng(1)
    null = [swap_test(draw(10, rng), draw(10, rng), "gini", 1024, s).p_value for s in range(60)]
    assert np.mean(np.array(null) < 0.05) <= 0.12
    planted = [swap_test(draw(10, rng), draw(10, rng, 1.0), "gini", 1024, s).p_value for s in range(10)]
    assert np.mean(np.array(planted) < 0.05) >= 0.9
    assert min(planted) == pytest.approx(2 / 1024)  # the exact floor at 10 users


@pytest.mark.slow
def test_full_item_fairness_false_flag_rate_and_power():
    assert _fwer(14, 1000) <= 0.05
    assert _fwer(120, 100, swap=0.2) >= 0.95


@pytest.mark.slow
@pytest.mark.parametrize("change", [False, True])
@pytest.mark.parametrize("n", [10, 40])
@pytest.mark.parametrize("stat", STAT_NAMES)
def test_full_jackknife_coverage_93_to_97(stat, n, change):
    cov = _coverage(stat, n, 1000, 2000, change)
    assert 0.93 <= cov <= 0.97, cov


def test_gu_jackknife_interval_covers_the_expected_gu():
    from recaudit.metrics.group import group_unfairness, gu_jackknife

    draw, rng = group_population(), np.random.default_rng(5)
    truth = np.mean([group_unfairness(*draw(14, rng, 0.2)) for _ in range(400)], axis=0)
    hits = np.zeros(5)
    for _ in range(150):
        _, lo, hi = gu_jackknife(*draw(14, rng, 0.2))
        hits += (lo <= truth) & (truth <= hi)
    assert np.all((hits / 150 >= 0.86) & (hits / 150 <= 0.995)), hits / 150


def test_delete_d_jackknife_is_the_ordinary_one_at_small_n_and_deletes_n_over_10_later():
    from recaudit.metrics.concentration import delete_d_keep, jackknife_method

    draw, rng = exposure_population(n_items=300), np.random.default_rng(11)
    a = draw(10, rng)
    iv = jackknife_interval(a, "hhi")
    loo = np.array([row_stats(a.sum(axis=0) - a[u], "hhi")[0] for u in range(10)])
    se = np.sqrt(9 / 10 * np.sum((loo - loo.mean()) ** 2))  # the textbook delete-one jackknife
    assert iv.se == pytest.approx(se) and iv.method == "jackknife-t" == jackknife_method(10, "gini")
    keep, d = delete_d_keep(40, "coverage")
    assert d == 4 and keep.shape == (500, 40) and np.all(keep.sum(axis=1) == 36)
    assert np.array_equal(keep, delete_d_keep(40, "coverage")[0])  # seeded: the same subsets every call
    b = draw(40, rng)
    assert jackknife_interval(b, "gini").method == "delete-4-jackknife-t"
    assert jackknife_interval(b, "hhi").method == "jackknife-t"  # smooth in the shares: delete-one
