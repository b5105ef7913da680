"""similarity_curves equals similarity_curve pair by pair (duplicates, short and empty lists)."""

from __future__ import annotations

import numpy as np
import pytest

from recaudit.metrics.list_similarity import LIST_METRICS, VARIANTS, similarity_curve
from recaudit.metrics.list_similarity_batch import encode_lists, encode_pairs, similarity_curves


def _random_lists(rng, n_pairs, k):
    out_x, out_y = [], []
    for _ in range(n_pairs):
        pool = [f"t{j}" for j in range(int(rng.integers(1, 2 * k)))]
        lx, ly = int(rng.integers(0, k + 3)), int(rng.integers(0, k + 3))
        out_x.append(list(rng.choice(pool, size=lx))), out_y.append(list(rng.choice(pool, size=ly)))
    return out_x, out_y


@pytest.mark.parametrize("variant", VARIANTS)
def test_batch_curves_equal_the_pairwise_reference(variant):
    rng = np.random.default_rng(0)
    for k in (1, 3, 8):
        xs, ys = _random_lists(rng, 150, k)
        xs += [[], ["a"], ["a", "b"]]
        ys += [[], ["a"], ["b", "a"]]
        got = similarity_curves(list(LIST_METRICS), xs, ys, k, variant)
        for m in LIST_METRICS:
            ref = np.array([similarity_curve(m, x, y, k, variant) for x, y in zip(xs, ys)])
            np.testing.assert_array_equal(got[m], ref)  # the same floats, not just close


def test_identical_lists_score_the_hand_computed_paper_values():
    lst = ["a", "b", "c", "d", "e"]
    got = similarity_curves(["jaccard", "serp", "prag"], [lst], [lst], 5)
    assert got["jaccard"][0, -1] == 1.0 and got["serp"][0, -1] == 1.0
    assert got["prag"][0, -1] == pytest.approx(10 / 30)  # C(5,2) agreeing pairs / (K(K+1))


def test_mismatched_lengths_are_one_clear_error():
    with pytest.raises(ValueError, match="sensitive lists"):
        similarity_curves(["jaccard"], [["a"]], [], 3)


def test_encoded_ids_are_equal_exactly_where_the_items_are():
    lists = [["a", "b", "a"], [], ["b", "c"], ["nan", "None", ""], ["c", "d", "e", "f"]]
    ids = encode_lists(lists, 3)
    flat = [(r, j, v) for r, items in enumerate(lists) for j, v in enumerate(items[:3])]
    for r, j, v in flat:
        for r2, j2, v2 in flat:
            assert (ids[r, j] == ids[r2, j2]) == (v == v2)
    assert (ids[1] == -1).all() and ids[2, 2] == -1 and ids[4, 2] >= 0  # padding at the end, lists cut at k
    x, y = encode_pairs([["a"], ["q"]], [["a", "q"], []], 2)
    assert x[0, 0] == y[0, 0] and x[1, 0] == y[0, 1] and x[0, 1] == -1 and (y[1] == -2).all()
