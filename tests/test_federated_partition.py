"""Partitioning users into clients: IID and non-IID by genre preference."""

from __future__ import annotations

import pytest

from recaudit.data.loaders import demo_catalog, demo_interactions
from recaudit.federated.partition import dominant_genres, genre_skew, js_divergence, partition_users


@pytest.fixture(scope="module")
def demo():
    return demo_catalog(), demo_interactions()


def test_iid_is_balanced_disjoint_and_seeded(demo):
    catalog, inter = demo
    parts = partition_users(inter, catalog, 3, "iid", seed=1)
    sizes = sorted(len(p.user_ids) for p in parts)
    assert sizes[-1] - sizes[0] <= 1 and sum(sizes) == len(inter.user_ids)
    users = [u for p in parts for u in p.user_ids]
    assert len(users) == len(set(users))
    assert parts == partition_users(inter, catalog, 3, "iid", seed=1)
    assert parts != partition_users(inter, catalog, 3, "iid", seed=2)


def test_genre_partition_is_more_skewed_than_iid(demo):
    catalog, inter = demo
    iid = partition_users(inter, catalog, 4, "iid", seed=0)
    skewed = partition_users(inter, catalog, 4, "genre", seed=0, alpha=0.1, min_users=3)
    assert all(len(p.user_ids) >= 3 for p in skewed)
    assert sum(len(p.user_ids) for p in skewed) == len(inter.user_ids)
    assert genre_skew(skewed, inter, catalog) > genre_skew(iid, inter, catalog)


def test_dominant_genre_by_hand():
    import pandas as pd

    from recaudit.data.catalog import Catalog, Interactions, Item

    cat = Catalog([Item("a", "A", ("Drama",)), Item("b", "B", ("Comedy",)), Item("c", "C", ("Comedy", "Drama"))])
    inter = Interactions(pd.DataFrame({"user_id": ["1", "1", "1", "2"], "item_id": ["a", "b", "c", "a"],
                                       "rating": [5, 2, 4, 1], "timestamp": [1, 2, 3, 4]}))
    # user 1 liked a (Drama) and c (Comedy, Drama) -> Drama; user 2 liked nothing -> all items -> Drama
    assert dominant_genres(inter, cat) == {"1": "Drama", "2": "Drama"}


def test_js_divergence_bounds():
    assert js_divergence([0.5, 0.5], [0.5, 0.5]) == pytest.approx(0.0)
    assert js_divergence([1.0, 0.0], [0.0, 1.0]) == pytest.approx(1.0)


def test_bad_arguments(demo):
    catalog, inter = demo
    with pytest.raises(ValueError, match="n_clients"):
        partition_users(inter, catalog, 0)
    with pytest.raises(ValueError, match="exceeds"):
        partition_users(inter, catalog, 50, min_users=2)
    with pytest.raises(ValueError, match="scheme"):
        partition_users(inter, catalog, 2, "zipf")  # type: ignore[arg-type]
