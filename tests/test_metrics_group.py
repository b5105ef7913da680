"""GU / DGU / MGU against hand-computed values, incidence shares for multi-genre items, CIs."""

import math

import numpy as np
import pytest

from recaudit.metrics.group import (
    dgu,
    group_unfairness,
    group_unfairness_report,
    gu_metric_frame,
    incidence_counts,
    mgu,
    pooled_shares,
)

MEMBERSHIP = {"a1": ["A"], "a2": ["A"], "a3": ["A"], "b1": ["B"], "b2": ["B"]}
GROUPS = ["A", "B"]


def test_two_group_toy_case_by_hand():
    history = incidence_counts([["a1", "b1"], ["a2", "b2"]], MEMBERSHIP, GROUPS)
    recs = incidence_counts([["a1", "a2", "a3"], ["a1", "b1", "a2", "a3"]], MEMBERSHIP, GROUPS)
    np.testing.assert_array_equal(recs, [[3, 0], [3, 1]])
    gu = group_unfairness(recs, history)
    # recommended shares 6/7, 1/7; history shares 1/2, 1/2
    np.testing.assert_allclose(gu, [6 / 7 - 0.5, 1 / 7 - 0.5])
    assert dgu(gu) == pytest.approx(5 / 7)
    assert mgu(gu) == pytest.approx(5 / 14)


def test_recommendations_matching_history_shares_have_zero_gu():
    history = incidence_counts([["a1", "b1"]], MEMBERSHIP, GROUPS)
    recs = incidence_counts([["a2", "b2", "a3", "b1"]], MEMBERSHIP, GROUPS)
    gu = group_unfairness(recs, history)
    np.testing.assert_allclose(gu, [0.0, 0.0])
    assert dgu(gu) == 0.0 and mgu(gu) == 0.0


def test_all_recommendations_in_one_group_of_three():
    members = {"x": ["X"], "y": ["Y"], "z": ["Z"]}
    history = incidence_counts([["x", "y", "z"]], members, ["X", "Y", "Z"])
    recs = incidence_counts([["x", "x", "x"]], members, ["X", "Y", "Z"])
    gu = group_unfairness(recs, history)
    np.testing.assert_allclose(gu, [2 / 3, -1 / 3, -1 / 3])
    assert dgu(gu) == pytest.approx(1.0)
    assert mgu(gu) == pytest.approx(4 / 9)


def test_multi_genre_items_count_once_per_incidence():
    members = {"x": ["Action", "Comedy"], "y": ["Comedy"], "n": []}
    counts = incidence_counts([["x", "y", "n", "unknown"]], members, ["Action", "Comedy"])
    np.testing.assert_array_equal(counts, [[1, 2]])
    np.testing.assert_allclose(pooled_shares(counts), [1 / 3, 2 / 3])
    # GU sums to zero over genres even with multi-membership
    other = incidence_counts([["y"]], members, ["Action", "Comedy"])
    assert group_unfairness(counts, other).sum() == pytest.approx(0.0)


def test_empty_recommendations_give_nan_not_zero():
    gu = group_unfairness(np.zeros((2, 2)), np.ones((2, 2)))
    assert np.isnan(gu).all() and math.isnan(dgu(gu))


def test_report_point_values_and_cis_over_users():
    rng = np.random.default_rng(1)
    recs = rng.multinomial(10, [0.7, 0.2, 0.1], size=200).astype(float)
    hist = rng.multinomial(10, [0.4, 0.3, 0.3], size=200).astype(float)
    rep = group_unfairness_report(recs, hist, ["g0", "g1", "g2"], n_bootstrap=300, seed=0)
    gu = group_unfairness(recs, hist)
    np.testing.assert_allclose([g.gu for g in rep.groups], gu)
    assert rep.dgu == pytest.approx(dgu(gu)) and rep.mgu == pytest.approx(mgu(gu))
    assert [g.sign for g in rep.groups] == ["over", "under", "under"]
    assert rep.pos_groups == ["g0"] and rep.neg_groups == ["g1", "g2"]
    for g in rep.groups:
        assert g.ci_low <= g.gu <= g.ci_high and g.ci_high - g.ci_low < 0.1
    assert rep.dgu_ci[0] > 0.3  # true DGU is 0.3 - (-0.2) = 0.5


def test_report_with_fixed_training_reference():
    recs = np.array([[2.0, 0.0], [1.0, 1.0], [2.0, 0.0]])
    rep = group_unfairness_report(recs, np.array([50.0, 50.0]), ["A", "B"], n_bootstrap=200)
    assert rep.groups[0].gu == pytest.approx(5 / 6 - 0.5)
    assert rep.groups[0].share_reference == pytest.approx(0.5)


def test_report_rejects_bad_shapes():
    with pytest.raises(ValueError, match="recommended must have shape"):
        group_unfairness_report(np.zeros((3, 2)), np.zeros((3, 2)), ["A", "B", "C"])
    with pytest.raises(ValueError, match="reference counts shape"):
        group_unfairness_report(np.zeros((3, 2)), np.zeros((4, 2)), ["A", "B"])


def test_fairlearn_metric_frame_shares_agree_with_gu():
    history = incidence_counts([["a1", "b1"], ["a2", "b2"]], MEMBERSHIP, GROUPS)
    recs = incidence_counts([["a1", "a2", "a3"], ["a1", "b1", "a2", "a3"]], MEMBERSHIP, GROUPS)
    mf = gu_metric_frame(recs, history, GROUPS)
    by = mf.by_group
    # fairlearn's per-group shares are an independent route to GU: their difference is group_unfairness
    gu = (by["share_recommended"] - by["share_reference"]).loc[["A", "B"]]
    np.testing.assert_allclose(gu, group_unfairness(recs, history))
    np.testing.assert_allclose(by.loc[["A", "B"], "share_reference"], [0.5, 0.5])
    assert dgu(gu.to_numpy()) == pytest.approx(5 / 7)
