"""Ranking accuracy of top-K lists: DCG, nDCG@K and MRR@K (one implementation), and recall@K.

Over a list of relevance labels: DCG@K = Σ_{i≤K} rel_i / log2(i + 1) (i 1-based), nDCG@K = DCG@K /
IDCG@K with IDCG the DCG of min(K, n_relevant) relevant items at the top, MRR@K the reciprocal rank
of the first relevant item. The implicit-name probes use these for U-NDCG / U-MRR (Xu et al.,
arXiv 2311.07054); the exposure probe scores item lists against held-out likes (Deldjoo 2024)
through ``ndcg_of_list`` / ``recall_at_k``, which give the de-duplicated top K (first occurrence
counts) binary relevance and NaN when a user has no held-out item.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np


def dcg_at_k(relevances: Sequence[float], k: int) -> float:
    """Discounted cumulative gain Σ_{i≤K} rel_i / log2(i + 1) (i 1-based)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rel = np.asarray(relevances[:k], dtype=float)
    return float(np.sum(rel / np.log2(np.arange(2, rel.size + 2))))


def ndcg_at_k(relevances: Sequence[float], k: int, n_relevant: int | None = None) -> float:
    """NDCG@K of one ranked list of relevance labels.

    The ideal list holds ``n_relevant`` relevant items (capped at K); ``None`` means the pool is
    large enough to fill all K positions with relevant items (an open catalogue, as in LLM
    recommendation), so a short or partly wrong list cannot reach 1.
    """
    ideal_n = k if n_relevant is None else min(k, n_relevant)
    if ideal_n <= 0:
        return 0.0
    return dcg_at_k(relevances, k) / dcg_at_k([1.0] * ideal_n, k)


def mrr_at_k(relevances: Sequence[float], k: int) -> float:
    """Reciprocal rank of the first relevant item within the top K (0 when there is none)."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    for i, r in enumerate(relevances[:k], start=1):
        if r > 0:
            return 1.0 / i
    return 0.0


def _top_k(recommended: Sequence[str], k: int) -> list[str]:
    return list(dict.fromkeys(recommended))[:k]


def ndcg_of_list(recommended: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """nDCG@k of an item list against a set of relevant items (NaN when nothing is relevant)."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    return ndcg_at_k([1.0 if i in rel else 0.0 for i in _top_k(recommended, k)], k, n_relevant=len(rel))


def recall_at_k(recommended: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """Share of the relevant items in the top k (NaN when nothing is relevant)."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    return len(set(_top_k(recommended, k)) & rel) / len(rel)


def mean_over_users(
    fn: Callable[[Sequence[str], Sequence[str], int], float],
    lists: Sequence[Sequence[str]],
    relevant: Sequence[Sequence[str]],
    k: int,
) -> np.ndarray:
    """Per-user values of ``fn`` (``ndcg_of_list`` / ``recall_at_k``), NaN for users without held-out items."""
    return np.array([fn(lst, rel, k) for lst, rel in zip(lists, relevant)], dtype=float)
