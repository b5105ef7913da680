"""Gini, HHI, entropy, coverage, Lorenz and recency against hand-computed values."""

import math

import numpy as np
import pytest

from recaudit.metrics.concentration import (
    coverage,
    entropy,
    exposure_matrix,
    gini,
    hhi,
    item_years,
    lorenz_curve,
    recency_from_exposure,
    recency_stats,
)


def test_uniform_exposure():
    e = [3, 3, 3, 3]
    assert gini(e, include_unexposed=True) == pytest.approx(0.0)
    assert hhi(e) == pytest.approx(0.25)
    assert entropy(e) == pytest.approx(math.log(4))
    assert coverage(e) == 1.0


def test_all_exposure_on_one_item():
    e = [0, 0, 0, 4]
    assert gini(e, include_unexposed=True) == pytest.approx(3 / 4)  # (n-1)/n
    assert gini(e, include_unexposed=False) == pytest.approx(0.0)  # one exposed item: equal among exposed
    assert hhi(e) == pytest.approx(1.0)
    assert entropy(e) == pytest.approx(0.0)
    assert coverage(e) == pytest.approx(0.25)


def test_two_item_toy_case():
    e = [1, 3]
    # sorted [1, 3]: ((2-3)*1 + (4-3)*3) / (2*4)
    assert gini(e, include_unexposed=True) == pytest.approx(0.25)
    assert hhi(e) == pytest.approx(1 / 16 + 9 / 16)
    assert entropy(e) == pytest.approx(-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))


def test_include_unexposed_is_the_difference_between_half_and_zero():
    e = [0, 0, 2, 2]
    assert gini(e, include_unexposed=True) == pytest.approx(0.5)
    assert gini(e, include_unexposed=False) == pytest.approx(0.0)
    assert coverage(e) == 0.5


def test_gini_is_one_minus_twice_area_under_lorenz():
    rng = np.random.default_rng(0)
    e = rng.poisson(2.0, size=50).astype(float)
    x, y = lorenz_curve(e, include_unexposed=True, n_points=None)
    area = np.trapezoid(y, x)
    assert gini(e, include_unexposed=True) == pytest.approx(1 - 2 * area)


def test_lorenz_curve_by_hand_and_resampled():
    x, y = lorenz_curve([0, 0, 2, 2], include_unexposed=True, n_points=None)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(y, [0, 0, 0, 0.5, 1])
    gx, gy = lorenz_curve([0, 0, 2, 2], include_unexposed=True, n_points=5)
    np.testing.assert_allclose(gy, y)
    assert len(lorenz_curve(np.ones(1000), include_unexposed=True, n_points=11)[0]) == 11


def test_nothing_exposed_is_nan():
    for f in (hhi, entropy):
        assert math.isnan(f([0, 0]))
    assert math.isnan(gini([0, 0], include_unexposed=True))


def test_negative_exposure_is_rejected():
    with pytest.raises(ValueError, match="non-negative"):
        gini([1, -1], include_unexposed=True)


def test_exposure_matrix_counts_and_rejects_unknown_items():
    m = exposure_matrix([["a", "b"], ["b", "b"]], ["a", "b", "c"])
    np.testing.assert_array_equal(m, [[1, 1, 0], [0, 2, 0]])
    with pytest.raises(ValueError, match="'z'"):
        exposure_matrix([["z"]], ["a"])


def test_recency_stats_skip_unknown_years():
    years = item_years([["a", "b"], ["c", "d"]], {"a": 1990, "b": 2000, "c": None, "d": 2010})
    flat = [y for ys in years for y in ys]
    r = recency_stats(flat)
    assert r.median_year == 2000 and r.n == 3
    assert r.std_year == pytest.approx(math.sqrt(200 / 3))
    assert math.isnan(recency_stats([None]).median_year)


def test_recency_from_exposure_weights_years_by_exposure():
    r = recency_from_exposure([2, 0, 1, 1], [1990, 1950, None, 2000])
    # years 1990, 1990, 2000 (the unknown year and the unexposed item are skipped)
    assert r.median_year == 1990 and r.n == 3
    assert r.std_year == pytest.approx(np.std([1990, 1990, 2000]))
    with pytest.raises(ValueError, match="years"):
        recency_from_exposure([1, 1], [2000])


def test_basic_interval_corrects_the_plug_in_entropy_bias():
    """Plug-in entropy of a small sample is biased low and its bootstrap more so: over 20 samples the
    percentile interval never covers the true ln 40, the basic (reflected) interval nearly always does."""
    from recaudit.metrics.concentration import entropy
    from recaudit.metrics.stats import bootstrap_ci

    stat = lambda m: entropy(m.sum(axis=0))  # noqa: E731
    covered = {"percentile": 0, "basic": 0}
    for seed in range(20):
        rows = np.eye(40)[np.random.default_rng(seed).integers(0, 40, size=120)]  # 120 users, one draw each
        for method in covered:
            iv = bootstrap_ci(rows, stat, 200, seed=0, method=method)
            covered[method] += iv.low <= math.log(40) <= iv.high
    assert covered["percentile"] <= 2 and covered["basic"] >= 17


def test_bca_and_basic_match_percentile_for_an_unbiased_symmetric_statistic():
    from recaudit.metrics.stats import bootstrap_ci

    x = np.linspace(-1, 1, 41)  # symmetric: no median bias, zero jackknife skewness
    pct = bootstrap_ci(x, np.mean, 2000, seed=3)
    for method in ("bca", "basic"):
        other = bootstrap_ci(x, np.mean, 2000, seed=3, method=method)
        assert abs(other.low - pct.low) < 0.02 and abs(other.high - pct.high) < 0.02
    with pytest.raises(ValueError, match="method"):
        bootstrap_ci(x, np.mean, 10, method="student")


def test_bca_shifts_toward_a_skewed_statistics_tail():
    """For exp(mean) of a sample (skewed, biased up) BCa moves both ends relative to the percentile interval."""
    from recaudit.metrics.stats import bootstrap_ci

    x = np.random.default_rng(0).normal(0, 1, 25)
    pct = bootstrap_ci(x, lambda a: float(np.exp(a.mean() * 3)), 2000, seed=1)
    bca = bootstrap_ci(x, lambda a: float(np.exp(a.mean() * 3)), 2000, seed=1, method="bca")
    assert bca.low <= bca.value <= bca.high
    assert (bca.low, bca.high) != (pct.low, pct.high)
