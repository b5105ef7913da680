"""Deldjoo 2024 parity: independent references for the exposure and prompting-side measures.

Written from the definitions (no official code is public): Gini by the mean absolute difference
G = Σ_i Σ_j |e_i − e_j| / (2 n² ē) over all catalogue items, HHI = Σ s², Shannon entropy in nats,
coverage = share of items exposed, temporal stability = mean pairwise Jaccard of a user's lists over
repeats, genre dominance = the largest genre share, nDCG/recall with binary relevance. Compared
with recaudit on identical random inputs to 1e-12.
"""

import math
import random
from itertools import combinations

import numpy as np
import pytest

from recaudit.metrics.ranking import ndcg_of_list, recall_at_k
from recaudit.metrics.concentration import (
    coverage,
    entropy,
    genre_dominance,
    genre_shares,
    gini,
    hhi,
    row_stats,
    temporal_stability,
)


def _ref_gini(e):
    n, mean = len(e), sum(e) / len(e)
    return sum(abs(a - b) for a in e for b in e) / (2 * n * n * mean)


def _ref_entropy(e):
    t = sum(e)
    return -sum(x / t * math.log(x / t) for x in e if x > 0)


@pytest.mark.parametrize("seed", range(6))
def test_concentration_measures_match_the_reference(seed):
    rnd = random.Random(seed)
    e = [rnd.choice([0, 0, 0, 1, 2, 5]) for _ in range(80)]
    e[0] += 1
    t = sum(e)
    ref = {"gini": _ref_gini(e), "hhi": sum((x / t) ** 2 for x in e), "entropy": _ref_entropy(e),
           "coverage": sum(x > 0 for x in e) / len(e)}
    ours = {"gini": gini(e, include_unexposed=True), "hhi": hhi(e), "entropy": entropy(e), "coverage": coverage(e)}
    for name, v in ref.items():
        assert abs(ours[name] - v) <= 1e-12, name
        assert abs(row_stats(np.array([e], dtype=float), name)[0] - v) <= 1e-12, name  # the vectorised path
    pos = [x for x in e if x > 0]
    assert abs(gini(e, include_unexposed=False) - _ref_gini(pos)) <= 1e-12
    assert abs(row_stats(np.array([e], dtype=float), "gini", include_unexposed=False)[0] - _ref_gini(pos)) <= 1e-12


@pytest.mark.parametrize("seed", range(4))
def test_stability_dominance_and_accuracy_match_the_reference(seed):
    rnd = random.Random(seed)
    items = [f"i{j}" for j in range(30)]
    runs = [[rnd.sample(items, 5) for _ in range(7)] for _ in range(3)]
    ref_stab = [sum(len(set(runs[a][u]) & set(runs[b][u])) / len(set(runs[a][u]) | set(runs[b][u]))
                    for a, b in combinations(range(3), 2)) / 3 for u in range(7)]
    np.testing.assert_allclose(temporal_stability(runs), ref_stab, rtol=0, atol=1e-12)

    genres = ["A", "B", "C"]
    genres_of = {i: rnd.sample(genres, rnd.randint(1, 2)) for i in items}
    counts = {g: sum(g in genres_of[i] for lst in runs[0] for i in lst) for g in genres}
    ref_shares = [counts[g] / sum(counts.values()) for g in genres]
    np.testing.assert_allclose(genre_shares(runs[0], genres_of, genres), ref_shares, rtol=0, atol=1e-12)
    assert abs(genre_dominance(np.array(ref_shares))[1] - max(ref_shares)) <= 1e-12

    rel = rnd.sample(items, 3)
    lst = rnd.sample(items, 10)
    dcg = sum(1 / math.log2(r + 2) for r, i in enumerate(lst) if i in rel)
    idcg = sum(1 / math.log2(r + 2) for r in range(3))
    assert abs(ndcg_of_list(lst, rel, 10) - dcg / idcg) <= 1e-12
    assert abs(recall_at_k(lst, rel, 10) - len(set(lst) & set(rel)) / 3) <= 1e-12
