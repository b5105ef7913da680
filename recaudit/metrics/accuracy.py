"""Ranking accuracy of top-k lists on held-out items (binary relevance): nDCG@k and recall@k.

nDCG@k = DCG@k / IDCG@k with DCG = Σ_{rank r ≤ k, item relevant} 1 / log2(r + 1) and IDCG the DCG of
min(k, |held-out|) relevant items at the top; recall@k = |top-k ∩ held-out| / |held-out|.
Duplicates in a list count once (first occurrence). Users without held-out items are skipped.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


def ndcg_at_k(recommended: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """nDCG@k of one list against a set of relevant items (NaN when nothing is relevant)."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    top = _dedupe(recommended)[:k]
    dcg = sum(1.0 / np.log2(r + 2) for r, i in enumerate(top) if i in rel)
    idcg = sum(1.0 / np.log2(r + 2) for r in range(min(k, len(rel))))
    return float(dcg / idcg)


def recall_at_k(recommended: Sequence[str], relevant: Sequence[str], k: int) -> float:
    """Share of the relevant items in the top k (NaN when nothing is relevant)."""
    rel = set(relevant)
    if not rel:
        return float("nan")
    return len(set(_dedupe(recommended)[:k]) & rel) / len(rel)


def mean_over_users(fn, lists: Sequence[Sequence[str]], relevant: Sequence[Sequence[str]], k: int) -> np.ndarray:
    """Per-user values of ``fn`` (``ndcg_at_k`` / ``recall_at_k``), NaN for users without held-out items."""
    return np.array([fn(lst, rel, k) for lst, rel in zip(lists, relevant)], dtype=float)
