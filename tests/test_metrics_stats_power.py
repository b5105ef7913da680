"""Power floors, MDEs and multiplicity corrections against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recaudit.metrics.multiplicity import adjust, bh, holm
from recaudit.metrics.power import (
    distinct_relabelings,
    mde_paired_t,
    needed_blocks,
    p_floor_blocks,
    p_floor_sign_flip,
    p_floor_two_sample,
    power_report,
)
from recaudit.metrics.stats import permutation_test


def test_floors_of_the_issue_designs():
    # religion: 3 instructions × 3 values shuffled within each -> (3!)^3 = 216 relabelings
    assert distinct_relabelings([[0, 1, 2]] * 3) == 216
    assert p_floor_blocks([[0, 1, 2]] * 3) == pytest.approx(1 / 216)
    assert p_floor_blocks([[0, 1, 2]] * 3, n_permutations=99) == pytest.approx(0.01)
    assert p_floor_blocks([[0, 0, 1]]) == pytest.approx(1 / 3)
    assert p_floor_sign_flip(4) == 1 / 16
    assert p_floor_two_sample(6, 3) == 1 / 20


def test_the_floor_is_attained_by_a_maximal_effect():
    # 6 units, 3 treated, the largest effect possible: the exact one-sided p is 1/C(6,3) = 0.05
    x = np.array([0.0, 0.1, 0.2, 10.0, 10.1, 10.2])
    lab = np.array([0, 0, 0, 1, 1, 1])
    _, p = permutation_test(lambda m: (m * x).sum(axis=1) / 3 - ((1 - m) * x).sum(axis=1) / 3, lab, 4000, seed=0,
                            vectorized=True)
    assert p == pytest.approx(p_floor_two_sample(6, 3), abs=0.012)


def test_needed_blocks_and_report():
    assert needed_blocks([0, 1, 2], alpha=0.05) == 2  # 6 -> 36 relabelings
    assert needed_blocks([0, 1, 2], alpha=0.01) == 3
    assert needed_blocks([0, 1], alpha=0.05, n_permutations=10) is None
    rep = power_report(p_floor_sign_flip(3), needed_n=5)
    assert rep.underpowered and rep.needed_n == 5 and "0.125" in rep.reason
    assert not power_report(0.001).underpowered


def test_mde_paired_t_reaches_80_percent_power_by_simulation():
    n, sd = 12, 1.0
    mde = mde_paired_t(sd, n)
    from scipy.stats import ttest_1samp

    rng = np.random.default_rng(0)
    hits = ttest_1samp(rng.normal(mde, sd, (3000, n)), 0, axis=1, alternative="greater").pvalue < 0.05
    assert 0.77 <= np.mean(hits) <= 0.83
    assert math.isnan(mde_paired_t(1.0, 1))


def test_holm_and_bh_hand_computed():
    p = [0.01, 0.04, 0.03, 0.20]
    # Holm: sorted 0.01,0.03,0.04,0.20 × 4,3,2,1 = 0.04,0.09,0.08,0.20 -> monotone 0.04,0.09,0.09,0.20
    np.testing.assert_allclose(holm(p), [0.04, 0.09, 0.09, 0.20])
    # BH: sorted × 4/rank = 0.04, 0.06, 0.0533, 0.20 -> step-up min 0.04, 0.0533, 0.0533, 0.20
    np.testing.assert_allclose(bh(p), [0.04, 0.16 / 3, 0.16 / 3, 0.20])
    assert adjust([0.01, None, 0.5], "holm") == [pytest.approx(0.02), None, pytest.approx(0.5)]
    with pytest.raises(ValueError):
        adjust([0.1], "bonferroni")


def test_disclose_holm_family_mde_and_needed_n():
    from recaudit.metrics.power import disclose, mde_normal, sign_flip_needed_n

    # 2^(1-6) = 1/32 per test, × 5 tests (Holm's first step) = 0.156 > 0.05: underpowered, no MDE
    weak = disclose(1 / 32, family=5, null_sd=0.1, two_sided=True, needed_n=sign_flip_needed_n(5), target=None)
    assert weak.underpowered and weak.mde is None and weak.needed_n == 8 and "× 5 tests" in weak.power_note
    assert 2.0 ** (1 - 8) * 5 <= 0.05 < 2.0 ** (1 - 7) * 5  # 8 users is the fewest that reach α
    ok = disclose(1 / 1024, family=5, null_sd=0.1, two_sided=True, target=None)
    assert not ok.underpowered and ok.needed_n is None
    assert ok.mde == pytest.approx(mde_normal(0.1, 0.01, two_sided=True)) == pytest.approx((2.5758 + 0.8416) * 0.1, rel=1e-4)
    # a floor between α and the 0.01 target: not underpowered, but says the sample reaching the target
    mid = disclose(1 / 36, 1000, None, "instructions", 5)
    assert not mid.underpowered and mid.needed_n == 5 and "cannot reach p ≤ 0.01" in mid.power_note
    assert disclose(1e-6, 99).p_floor == pytest.approx(0.01)  # never below 1/(B+1)
    f = ok.fields(0.002, 0.01)
    assert f["p_value"] == 0.002 and f["p_adj"] == 0.01 and f["p_adj_method"] == "holm" and "needed_n_01" not in f
