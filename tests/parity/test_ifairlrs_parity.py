"""IFairLRS parity: an independent reference from the paper and the official code's documented behaviour.

Reference (JiangM-C/IFairLRS, code/evaluate_all.py as read; nothing copied): item and generated-title
embeddings are compared by L2 distance (torch.cdist p=2), ``argsort`` ranks the whole catalogue and
the first K indices are the list; genre counts add each listed item's genre one-hot row, the history
counts each history item's; GU = recommended share − history share per genre (paper, Eq. for GU),
DGU = max − min, MGU = mean |GU|. Written here in plain Python loops, compared with recaudit on
identical random inputs to 1e-12.
"""

import math
import random

import numpy as np
import pytest

from recaudit.metrics.group import dgu, group_unfairness, incidence_counts, mgu
from recaudit.probes.item_nearest import nearest_items


def _ref_topk(query: list[float], items: list[list[float]], k: int) -> list[int]:
    dist = [math.sqrt(sum((a - b) ** 2 for a, b in zip(query, it))) for it in items]
    return sorted(range(len(items)), key=lambda j: dist[j])[:k]


def _ref_gu(lists: list[list[int]], history: list[list[int]], onehot: list[list[int]]) -> list[float]:
    n_g = len(onehot[0])
    rec, his = [0] * n_g, [0] * n_g
    for lst in lists:
        for j in lst:
            for g in range(n_g):
                rec[g] += onehot[j][g]
    for h in history:
        for j in h:
            for g in range(n_g):
                his[g] += onehot[j][g]
    return [rec[g] / sum(rec) - his[g] / sum(his) for g in range(n_g)]


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [1, 5, 10, 20])
def test_k_nearest_lists_and_gu_dgu_mgu_match_the_reference(seed, k):
    rnd = random.Random(seed)
    n_items, dim, n_users, n_genres = 60, 8, 25, 6
    items = [[rnd.gauss(0, 1) for _ in range(dim)] for _ in range(n_items)]
    queries = [[rnd.gauss(0, 1) for _ in range(dim)] for _ in range(n_users)]
    onehot = [[int(rnd.random() < 0.3) for _ in range(n_genres)] for _ in range(n_items)]
    for row in onehot:
        if not any(row):
            row[rnd.randrange(n_genres)] = 1
    history = [[rnd.randrange(n_items) for _ in range(10)] for _ in range(n_users)]

    ref_lists = [_ref_topk(q, items, k) for q in queries]
    ours = nearest_items(np.array(queries), np.array(items), k)
    assert ours.tolist() == ref_lists

    ref_gu = _ref_gu(ref_lists, history, onehot)
    ids = [f"i{j}" for j in range(n_items)]
    genres = [f"g{g}" for g in range(n_genres)]
    membership = {ids[j]: [genres[g] for g in range(n_genres) if onehot[j][g]] for j in range(n_items)}
    rec = incidence_counts([[ids[j] for j in row] for row in ours], membership, genres)
    his = incidence_counts([[ids[j] for j in h] for h in history], membership, genres)
    gu = group_unfairness(rec, his)
    np.testing.assert_allclose(gu, ref_gu, rtol=0, atol=1e-12)
    assert abs(dgu(gu) - (max(ref_gu) - min(ref_gu))) <= 1e-12
    assert abs(mgu(gu) - sum(abs(x) for x in ref_gu) / len(ref_gu)) <= 1e-12
