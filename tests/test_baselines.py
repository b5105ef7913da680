"""Classical baselines: hand-checked TopPop/ItemKNN, planted communities found by ItemKNN and BPR-MF."""

import numpy as np
import pandas as pd
import pytest

from recaudit.baselines import BPRMF, ItemKNN, Recommender, TopPop, make_baseline
from recaudit.data.catalog import Interactions


def _inter(pairs, rating=5):
    rows = [(u, i, rating, t) for t, (u, i) in enumerate(pairs)]
    return Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]))


def test_toppop_ranks_by_count_excludes_seen_and_breaks_ties_by_id():
    inter = _inter([("1", "c"), ("2", "c"), ("3", "c"), ("1", "b"), ("2", "b"), ("4", "a"), ("4", "d")])
    m = TopPop().fit(inter)
    assert m.recommend("3", 3) == ["b", "a", "d"]  # a and d tie at 1: id order
    assert m.recommend("3", 2, exclude_seen=False) == ["c", "b"]
    assert m.recommend("unknown-user", 1) == ["c"]
    assert isinstance(m, Recommender)


def test_toppop_min_rating_counts_only_positives():
    frame = pd.DataFrame(
        [("1", "a", 1, 0), ("2", "a", 1, 1), ("3", "b", 5, 2)], columns=["user_id", "item_id", "rating", "timestamp"]
    )
    assert TopPop(min_rating=4).fit(Interactions(frame)).recommend("9", 1) == ["b"]
    assert TopPop().fit(Interactions(frame)).recommend("9", 1) == ["a"]


def test_itemknn_cosine_similarity_by_hand():
    inter = _inter([("1", "a"), ("1", "b"), ("2", "a"), ("2", "b"), ("3", "a"), ("3", "c"), ("4", "b")])
    m = ItemKNN(n_neighbors=5).fit(inter)
    s = m.similarity.toarray()  # items a, b, c; users of a: {1,2,3}, b: {1,2,4}, c: {3}
    assert s[0, 1] == pytest.approx(2 / 3)  # |{1,2}| / sqrt(3*3)
    assert s[0, 2] == pytest.approx(1 / np.sqrt(3))
    assert s[1, 2] == 0 and s[0, 0] == 0
    assert m.recommend("4", 2) == ["a", "c"]  # c has no similarity to b: score 0 ranks after a
    assert m.scores(3)[0] == pytest.approx(2 / 3)


def test_itemknn_neighbourhood_is_truncated():
    inter = _inter([("1", "a"), ("1", "b"), ("1", "c"), ("2", "a"), ("2", "b")])
    m = ItemKNN(n_neighbors=1).fit(inter)
    assert (m.similarity.toarray() > 0).sum(axis=0).max() == 1


def _communities(n_users=60, n_items=40, seed=0):
    """Users 0..n/2 like items 0..n_items/2 only; the others like the rest."""
    rng = np.random.default_rng(seed)
    half_i = n_items // 2
    pairs = []
    for u in range(n_users):
        pool = np.arange(half_i) if u < n_users // 2 else np.arange(half_i, n_items)
        for i in rng.choice(pool, size=8, replace=False):
            pairs.append((str(u), f"i{i:03d}"))
    return _inter(pairs), {f"i{i:03d}" for i in range(half_i)}


@pytest.mark.parametrize("model", [ItemKNN(n_neighbors=10), BPRMF(factors=8, epochs=40, learning_rate=0.1, batch_size=64)])
def test_personalised_baselines_recover_planted_communities(model):
    inter, first_half = _communities()
    model.fit(inter)
    in_own = []
    for u in range(60):
        recs = model.recommend(str(u), 5)
        assert len(recs) == 5 and not set(recs) & set(inter.history(str(u))["item_id"])
        own = first_half if u < 30 else {f"i{i:03d}" for i in range(20, 40)}
        in_own.append(np.mean([r in own for r in recs]))
    assert np.mean(in_own) > 0.9


def test_bpr_is_reproducible_for_a_seed_and_loss_falls():
    inter, _ = _communities()
    a = BPRMF(factors=8, epochs=10, seed=3, batch_size=64).fit(inter)
    b = BPRMF(factors=8, epochs=10, seed=3, batch_size=64).fit(inter)
    np.testing.assert_array_equal(a.item_factors, b.item_factors)
    assert a.loss_history[-1] < a.loss_history[0]
    c = BPRMF(factors=8, epochs=10, seed=4, batch_size=64).fit(inter)
    assert not np.array_equal(a.item_factors, c.item_factors)


def test_errors_are_clear():
    with pytest.raises(RuntimeError, match="fit"):
        TopPop().recommend("1", 3)
    with pytest.raises(ValueError, match="unknown baseline 'svd'"):
        make_baseline("svd")
    with pytest.raises(ValueError, match="k must be"):
        TopPop().fit(_inter([("1", "a")])).recommend("1", 0)
    with pytest.raises(ValueError, match="empty"):
        TopPop().fit(Interactions(pd.DataFrame(columns=["user_id", "item_id", "rating", "timestamp"])))
    assert make_baseline("bpr", factors=4).factors == 4


def test_candidate_ranking_keeps_only_candidates_and_puts_unknown_items_last():
    inter = _inter([("1", "c"), ("2", "c"), ("3", "c"), ("1", "b"), ("2", "b"), ("4", "a")])
    m = TopPop().fit(inter)
    assert m.recommend("4", 3, candidates=["new", "a", "b"]) == ["b", "new"]  # a is seen by user 4
    assert m.recommend("4", 2, exclude_seen=False, candidates=["new", "a", "c"]) == ["c", "a"]
