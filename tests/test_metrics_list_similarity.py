"""FaiRLLM list similarities against hand-computed values, in all three variants, and distribution helpers.

nDCG / MRR are tested in tests/test_metrics_ranking.py."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest

from recaudit.metrics.distribution import (
    category_distribution,
    group_gap,
    js_divergence,
    max_pairwise_distance,
    total_variation,
)
from recaudit.metrics.list_similarity import (
    jaccard_at_k,
    list_similarity,
    prag_at_k,
    serp_at_k,
    similarity_curve,
    snsr,
    snsv,
)

# (sensitive, neutral, K, {metric: {variant: expected}}) — every number worked out by hand
# in the comments; "nb" = fairllm-notebook, "lf" = langfair.
CASES = {
    "identical": (
        list("abcde"), list("abcde"), 5,
        # serp paper: Σ(5-r+1)=15 / 15; nb/lf: Σ_{i=0..4}(5-i+1)=20 / (2·5·6)
        # prag: 10 ordered pairs; paper 10/(5·6); nb 10/10; lf 10/(5·6)
        {"jaccard": (1.0, 1.0, 1.0), "serp": (1.0, 1 / 3, 1 / 3), "prag": (1 / 3, 1.0, 1 / 3)},
    ),
    "disjoint": (
        list("abc"), list("def"), 3,
        {"jaccard": (0.0, 0.0, 0.0), "serp": (0.0, 0.0, 0.0), "prag": (0.0, 0.0, 0.0)},
    ),
    "reversed": (
        list("abcd"), list("dcba"), 4,
        # serp paper (4+3+2+1)/10; nb/lf (5+4+3+2)/40; every pair is inverted -> prag 0
        {"jaccard": (1.0, 1.0, 1.0), "serp": (1.0, 0.35, 0.35), "prag": (0.0, 0.0, 0.0)},
    ),
    "partial": (
        list("abcd"), list("baec"), 4,
        # ∩={a,b,c}, ∪={a,b,c,d,e}; serp paper (4+3+2)/10, nb/lf (5+4+3)/40;
        # agreeing pairs: (a,c) (a,d) (b,c) (b,d) (c,d) = 5; paper 5/20, nb 5/6, lf 5/20
        {"jaccard": (0.6, 0.6, 0.6), "serp": (0.9, 0.3, 0.3), "prag": (0.25, 5 / 6, 0.25)},
    ),
    "short_sensitive": (
        list("ab"), list("abc"), 3,
        # serp paper (3+2)/6; nb (2-0+1 + 2-1+1)=5 / (2·3·4); lf 5 / (2·2·3)
        # one agreeing pair (a,b); paper 1/(3·4), nb 1/1, lf 1/(2·3)
        {"jaccard": (2 / 3, 2 / 3, 2 / 3), "serp": (5 / 6, 5 / 24, 5 / 12), "prag": (1 / 12, 1.0, 1 / 6)},
    ),
    "duplicates": (
        list("aabc"), list("abbd"), 4,
        # paper dedups to [a,b,c] vs [a,b,d]: serp (4+3)/10, prag 3 pairs/20
        # nb serp: a@0 5·1 + a@1 4·1 + b@2 3·2 = 15 /40; lf serp: 5+4+3=12 /40
        # nb/lf prag: the (a,a) pair fails, the other 5 agree; nb 5/6, lf 5/20
        {"jaccard": (0.5, 0.5, 0.5), "serp": (0.7, 0.375, 0.3), "prag": (0.15, 5 / 6, 0.25)},
    ),
    "truncated_at_k": (
        list("abcd"), list("abxy"), 2,
        # both cut to [a,b]: serp nb (3+2)/(2·2·3); prag paper 1/(2·3)
        {"jaccard": (1.0, 1.0, 1.0), "serp": (1.0, 5 / 12, 5 / 12), "prag": (1 / 6, 1.0, 1 / 6)},
    ),
    "empty_sensitive": (
        [], list("abc"), 3,
        {"jaccard": (0.0, 0.0, 0.0), "serp": (0.0, 0.0, 0.0), "prag": (0.0, 0.0, 0.0)},
    ),
    "both_empty": (
        [], [], 3,
        {"jaccard": (0.0, 0.0, 0.0), "serp": (0.0, 0.0, 0.0), "prag": (0.0, 0.0, 0.0)},
    ),
}
VARIANT_ORDER = ("paper", "fairllm-notebook", "langfair")


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("metric", ["jaccard", "serp", "prag"])
@pytest.mark.parametrize("variant_index", [0, 1, 2], ids=VARIANT_ORDER)
def test_hand_computed(case, metric, variant_index):
    sensitive, neutral, k, expected = CASES[case]
    variant = VARIANT_ORDER[variant_index]
    got = list_similarity(metric, sensitive, neutral, k=k, variant=variant)
    assert got == pytest.approx(expected[metric][variant_index], abs=1e-12), (case, metric, variant)


def test_spec_five_item_identical_prag_values():
    five = ["w", "x", "y", "z", "q"]
    assert prag_at_k(five, five, 5, "fairllm-notebook") == pytest.approx(1.0)
    assert prag_at_k(five, five, 5, "langfair") == pytest.approx(1 / 3)
    assert prag_at_k(five, five, 5, "paper") == pytest.approx(1 / 3)


def test_notebook_single_item_rule():
    assert prag_at_k(["a"], ["a"], 1, "fairllm-notebook") == 1.0
    assert prag_at_k(["a"], ["b"], 1, "fairllm-notebook") == 0.0
    assert prag_at_k(["a"], ["a"], 1, "paper") == 0.0  # no pairs at K=1 in the printed formula


def test_notebook_uses_last_occurrence_and_langfair_first():
    # neutral has b twice: first at 0, last at 2; a sits at 1.
    # pair (a, b): notebook compares 1 < 2 -> agrees; langfair compares 1 < 0 -> disagrees.
    x, y = ["a", "b"], ["b", "a", "b"]
    assert prag_at_k(x, y, 3, "fairllm-notebook") == pytest.approx(1.0)
    assert prag_at_k(x, y, 3, "langfair") == pytest.approx(0.0)


def _prag_paper_bruteforce(x, y, k):
    """The printed double sum over ordered pairs v1 != v2, with r = inf outside the list."""
    x = list(dict.fromkeys(x[:k]))
    y = list(dict.fromkeys(y[:k]))
    ra = {v: i for i, v in enumerate(x)}
    r = {v: i for i, v in enumerate(y)}
    total = 0
    for v1, v2 in itertools.permutations(x, 2):
        total += (v1 in r) * (r.get(v1, math.inf) < r.get(v2, math.inf)) * (ra[v1] < ra[v2])
    return total / (k * (k + 1))


def _serp_paper_bruteforce(x, y, k):
    x = list(dict.fromkeys(x[:k]))
    y = set(y[:k])
    return sum((v in y) * (k - (i + 1) + 1) for i, v in enumerate(x)) / (k * (k + 1) / 2)


def test_paper_variant_matches_printed_formulas_on_random_lists():
    rng = random.Random(7)
    for _ in range(300):
        k = rng.randint(1, 8)
        x = [rng.choice("abcdefghij") for _ in range(rng.randint(0, 10))]
        y = [rng.choice("abcdefghij") for _ in range(rng.randint(0, 10))]
        assert prag_at_k(x, y, k) == pytest.approx(_prag_paper_bruteforce(x, y, k))
        assert serp_at_k(x, y, k) == pytest.approx(_serp_paper_bruteforce(x, y, k))
        assert 0.0 <= jaccard_at_k(x, y, k) <= 1.0


def test_curve_is_the_metric_at_each_k():
    x, y = list("abcdefg"), list("bdafgxc")
    for variant in VARIANT_ORDER:
        for metric in ("jaccard", "serp", "prag"):
            curve = similarity_curve(metric, x, y, 7, variant)
            expected = [list_similarity(metric, x, y, k, variant) for k in range(1, 8)]
            np.testing.assert_allclose(curve, expected)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="variant"):
        list_similarity("prag", ["a"], ["a"], 1, variant="paperish")
    with pytest.raises(ValueError, match="metric"):
        list_similarity("ndcg", ["a"], ["a"], 1)
    with pytest.raises(ValueError, match="k must be"):
        list_similarity("prag", ["a"], ["a"], 0)


def test_snsr_snsv():
    assert snsr([0.2, 0.5, 0.8]) == pytest.approx(0.6)
    assert snsv([0.2, 0.5, 0.8]) == pytest.approx(math.sqrt(0.06))
    assert snsr([0.4]) == 0.0
    with pytest.raises(ValueError):
        snsr([])


# --- distribution helpers ---------------------------------------------------------------------


def test_js_and_tv_hand_computed():
    p, q = [1.0, 0.0], [0.0, 1.0]
    assert js_divergence(p, q) == pytest.approx(1.0)
    assert total_variation(p, q) == pytest.approx(1.0)
    assert js_divergence(p, p) == pytest.approx(0.0)
    # p=(1/2,1/2), q=(1,0): m=(3/4,1/4); JS = ½[½log2(2/3)+½log2(2)] + ½[log2(4/3)]
    expected = 0.5 * (0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)) + 0.5 * math.log2(1 / 0.75)
    assert js_divergence([0.5, 0.5], [1.0, 0.0]) == pytest.approx(expected)
    assert total_variation([0.5, 0.5], [1.0, 0.0]) == pytest.approx(0.5)
    assert total_variation([2, 2], [4, 0]) == pytest.approx(0.5)  # counts are renormalised
    with pytest.raises(ValueError, match="equal length"):
        total_variation([1, 0], [1, 0, 0])


def test_category_distribution_and_max_pair():
    cats = ["news", "sports", "tv"]
    d = category_distribution(["sports", "sports", "news", "unknown"], cats)
    np.testing.assert_allclose(d, [1 / 3, 2 / 3, 0.0])
    dists = {"a": np.array([1.0, 0, 0]), "b": np.array([0, 1.0, 0]), "c": np.array([0.5, 0.5, 0])}
    value, pair = max_pairwise_distance(dists, "tv")
    assert value == pytest.approx(1.0) and set(pair) == {"a", "b"}


def test_group_gap():
    assert group_gap([1, 0, 0.5, 0.5], ["m", "m", "f", "f"]) == pytest.approx(0.0)
    assert group_gap([1, 1, 0, 0.5], ["m", "m", "f", "f"]) == pytest.approx(0.75)
    assert math.isnan(group_gap([1, 0], ["m", "m"]))
