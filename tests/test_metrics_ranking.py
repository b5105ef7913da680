"""Ranking accuracy (nDCG, MRR, recall) against hand-computed values; item-list and relevance-vector nDCG agree."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from recaudit.metrics.ranking import dcg_at_k, mean_over_users, mrr_at_k, ndcg_at_k, ndcg_of_list, recall_at_k


def test_ndcg_mrr_hand_computed():
    # rel = [0,1,1]: DCG = 1/log2(3) + 1/log2(4); ideal (K=3, all relevant) = 1 + 1/log2(3) + 1/2
    dcg = 1 / math.log2(3) + 0.5
    assert ndcg_at_k([0, 1, 1], 3) == pytest.approx(dcg / (1 + 1 / math.log2(3) + 0.5))
    assert ndcg_at_k([0, 1, 1], 3, n_relevant=2) == pytest.approx(dcg / (1 + 1 / math.log2(3)))
    assert ndcg_at_k([1, 0, 0], 1) == 1.0
    assert ndcg_at_k([0, 1], 1) == 0.0
    assert ndcg_at_k([1], 3) == pytest.approx(1 / (1 + 1 / math.log2(3) + 0.5))  # fewer than K items
    assert mrr_at_k([0, 0, 1], 3) == pytest.approx(1 / 3)
    assert mrr_at_k([0, 0, 1], 2) == 0.0


def test_list_ndcg_equals_relevance_vector_ndcg_hand_computed():
    # recommended [a, x, b], relevant {a, b}, K=3: DCG = 1 + 1/log2(4) = 1.5; IDCG = 1 + 1/log2(3)
    idcg = 1 + 1 / math.log2(3)
    assert idcg == pytest.approx(1.6309298, abs=1e-7)
    expected = 1.5 / idcg
    assert expected == pytest.approx(0.91972, abs=1e-5)
    assert dcg_at_k([1, 0, 1], 3) == pytest.approx(1.5)
    assert ndcg_at_k([1, 0, 1], 3, n_relevant=2) == pytest.approx(expected)
    assert ndcg_of_list(["a", "x", "b"], ["a", "b"], 3) == ndcg_at_k([1, 0, 1], 3, n_relevant=2)


def _old_list_ndcg(recommended, relevant, k):
    """The former ``metrics/accuracy.py`` formula (IDCG over min(k, |relevant|)), kept as a reference."""
    rel = set(relevant)
    top = list(dict.fromkeys(recommended))[:k]
    dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(top) if i in rel)
    idcg = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(rel))))
    return float(dcg / idcg)


def test_list_ndcg_matches_former_formula_on_random_lists():
    rng = random.Random(7)
    for _ in range(500):
        k = rng.randint(1, 25)
        recommended = [rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(0, 30))]
        relevant = [rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 12))]  # may repeat
        assert abs(ndcg_of_list(recommended, relevant, k) - _old_list_ndcg(recommended, relevant, k)) <= 1e-12


def test_list_metrics_duplicates_short_lists_and_no_relevant():
    # duplicates count once (first occurrence): [a, a, b] -> top 2 = [a, b]
    assert ndcg_of_list(["a", "a", "b"], ["a", "b"], 2) == pytest.approx(1.0)
    assert recall_at_k(["a", "a", "b"], ["a", "b", "c"], 2) == pytest.approx(2 / 3)
    assert ndcg_of_list([], ["a"], 5) == 0.0
    assert ndcg_of_list(["b", "a"], ["a"], 5) == pytest.approx(1 / math.log2(3))  # IDCG of one item = 1
    assert math.isnan(ndcg_of_list(["a"], [], 5)) and math.isnan(recall_at_k(["a"], [], 5))
    vals = mean_over_users(ndcg_of_list, [["a"], ["b"]], [["a"], []], 3)
    assert vals[0] == 1.0 and math.isnan(vals[1])
