"""FaiRLLM's notebook-variant similarity curves for many list pairs at once (numpy, no per-pair loop).

Equal to ``recaudit.metrics.list_similarity.similarity_curve(metric, x, y, k, "fairllm-notebook")`` per
pair (tests compare to 1e-12): the default variant is the notebook's, so the 32,000-answer
benchmark must not pay a Python loop over pairs × cutoffs × pairs of items.

Every cutoff c = 1..K at once, as in ``metrics.list_similarity_batch``: Jaccard is the same set formula
in every variant; the notebook's SERP at c is (n+1)·S0 − S1 with S0 (S1) the count (position sum)
of matches x_i = y_j with max(i, j) < c; PRAG at c counts pairs i < j of R^a with x_i in R and
(x_j not in R or x_i above x_j), which for a neutral list without repeated titles is the pairs with
pos_R(x_i) < pos_R(x_j) (absent = ∞) and max(j, pos_R(x_i)) < c. A neutral list that repeats a
title moves its "last position in R" with c; those few pairs take the per-cutoff path.
``similarity_tensors`` feeds the probe: every distinct answer is encoded to item ids once.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from recaudit.metrics.list_similarity_batch import encode_lists, encode_pairs, paper_curves_ids, similarity_curves

PAD_X, PAD_Y = -1, -2  # padding of sensitive / neutral id rows (never equal to an item or each other)


def notebook_curves(metrics: Sequence[str], xs: Sequence[Sequence[str]], ys: Sequence[Sequence[str]],
                    k: int) -> dict[str, np.ndarray]:
    """metric -> pairs × K array of metric@1..K (notebook variant), sensitive lists ``xs`` vs neutral ``ys``."""
    x, y = encode_pairs(xs, ys, k)
    return notebook_curves_ids(metrics, x, y, k)


def notebook_curves_ids(metrics: Sequence[str], x: np.ndarray, y: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """As ``notebook_curves`` on id rows (pairs × K; padding -1 in ``x``, -2 in ``y``, at the end of a row)."""
    lx, ly = (x != PAD_X).sum(axis=1), (y != PAD_Y).sum(axis=1)
    cut = np.arange(1, k + 1)[None, :]
    nx, ny = np.minimum(lx[:, None], cut), np.minimum(ly[:, None], cut)
    out: dict[str, np.ndarray] = {}
    if "jaccard" in metrics:  # the set formula: every variant's Jaccard is the same
        out["jaccard"] = paper_curves_ids(["jaccard"], x, y, k)["jaccard"]
    match = x[:, :, None] == y[:, None, :]  # [p, i, j]; padding never matches
    if "serp" in metrics:
        rows, i, j = np.nonzero(match)  # sparse: one pass for both sums
        bins = rows * (k + 1) + np.maximum(i, j)  # both positions inside the cutoff from c = max(i, j) + 1
        s0, s1 = (np.bincount(bins, weights=w, minlength=len(x) * (k + 1)).reshape(len(x), k + 1)[:, :k]
                  .cumsum(axis=1).astype(np.int64) for w in (None, i))
        temp = (nx + 1) * s0 - s1
        out["serp"] = np.where(ny > 0, temp * 0.5 / np.maximum((ny + 1) * ny, 1), 0.0)
    if "prag" in metrics:
        out["prag"] = _prag(x, y, match, lx, ly, nx, ny, k)
    return {m: out[m] for m in metrics}


def _prag(x, y, match, lx, ly, nx, ny, k) -> np.ndarray:
    i = np.arange(k)
    earlier = i[None, :] < i[:, None]  # [j, j']: j' before j
    repeats_y = ((y[:, :, None] == y[:, None, :]) & earlier[None] & (y != PAD_Y)[:, :, None]).any(axis=(1, 2))
    inf = 2 * k + 1
    py = np.where(match.any(axis=2), match.argmax(axis=2), inf)  # position in R (unique there) of x_i
    later = (i[None, :] > i[:, None])[None]  # [i, j]: j after i
    pair = later & (py[:, :, None] < inf) & (py[:, :, None] < py[:, None, :]) & (i[None, None, :] < lx[:, None, None])
    # a pair counts from cutoff max(j, pos_R(x_i)) + 1: by j where pos_R(x_i) <= j, else by pos_R(x_i)
    le = py[:, :, None] <= i[None, None, :]
    by_t = (pair & le).sum(axis=1)
    late = (pair & ~le).sum(axis=2)  # pairs of x_i whose threshold is pos_R(x_i) (< k: x_i is in R)
    bins = (np.minimum(py, k) + (np.arange(len(x)) * (k + 1))[:, None]).ravel()
    by_t += np.bincount(bins, weights=late.ravel(), minlength=len(x) * (k + 1)).reshape(len(x), k + 1)[:, :k].astype(np.int64)
    count = by_t.cumsum(axis=1)
    pairs = nx * (nx - 1) // 2
    val = np.where(pairs > 0, count / np.maximum(pairs, 1), 0.0)
    single = ((nx == 1) & (ny == 1) & (x[:, :1] == y[:, :1])).astype(float)  # one item scores 1 iff it is R
    val = np.where(nx == 1, single, val)
    val = np.where((nx == 0) | (ny == 0), 0.0, val)
    if repeats_y.any():
        rows = np.flatnonzero(repeats_y)
        val[rows] = _prag_per_cutoff(x[rows], y[rows], lx[rows], ly[rows], k)
    return val


def _prag_per_cutoff(x: np.ndarray, y: np.ndarray, lx: np.ndarray, ly: np.ndarray, k: int) -> np.ndarray:
    """The notebook's PRAG cutoff by cutoff (last position in R of each item of R^a), for any lists."""
    eq = x[:, :, None] == y[:, None, :]
    out = np.zeros((len(x), k))
    idx = np.arange(k)
    upper_all = np.triu(np.ones((k, k), dtype=bool), 1)[None]
    for c in range(1, k + 1):
        nx, ny = np.minimum(lx, c), np.minimum(ly, c)
        xin = idx[None, :] < nx[:, None]
        yin = idx[None, :] < ny[:, None]
        e = eq & xin[:, :, None] & yin[:, None, :]
        any_j = e.any(axis=2)
        last = np.where(any_j, k - 1 - np.argmax(e[:, :, ::-1], axis=2), -1)  # last position in y
        upper = upper_all & xin[:, :, None] & xin[:, None, :]
        pi, pj = last[:, :, None], last[:, None, :]
        agree = upper & (pi >= 0) & ((pj < 0) | (pi < pj))
        pairs = nx * (nx - 1) // 2
        val = np.where(pairs > 0, agree.sum(axis=(1, 2)) / np.maximum(pairs, 1), 0.0)
        single = (nx == 1) & (ny == 1) & (x[:, 0] == y[:, 0])
        val = np.where(nx == 1, single.astype(float), val)
        out[:, c - 1] = np.where((nx == 0) | (ny == 0), 0.0, val)
    return out


def similarity_tensors(cells, neutral_of, instructions, attrs, metrics, k, variant) -> dict[str, dict[str, np.ndarray]]:
    """metric -> attribute -> array (instructions × values × K) of metric@1..K vs the neutral list.

    ``cells``: (instruction, attribute, value) -> parsed answer (``.keys``), ``neutral_of``: instruction ->
    the neutral answer; a missing cell counts as an empty list.
    """
    out: dict[str, dict[str, np.ndarray]] = {m: {} for m in metrics}
    if variant == "langfair":  # pair by pair (list_similarity_batch has no batched LangFair)
        for attr, values in attrs.items():
            xs = [cells[(i, attr, v)].keys if (i, attr, v) in cells else [] for i in instructions for v in values]
            ys = [neutral_of[i].keys for i in instructions for _ in values]
            curves = similarity_curves(metrics, xs, ys, k, variant)
            for m in metrics:
                out[m][attr] = curves[m].reshape(len(instructions), len(values), k)
        return out
    # each distinct parsed answer is encoded once (memoised answers share one _Parsed object)
    row_of: dict[int, int] = {}
    lists: list[list[str]] = [[]]  # row 0: a missing cell, an empty list

    def row(parsed) -> int:
        if parsed is None:
            return 0
        key = id(parsed)
        if key not in row_of:
            row_of[key] = len(lists)
            lists.append(parsed.keys)
        return row_of[key]

    neutral_rows = np.array([row(neutral_of[i]) for i in instructions])
    x_rows = {a: np.array([row(cells.get((i, a, v))) for i in instructions for v in vs]) for a, vs in attrs.items()}
    ids = encode_lists(lists, k)
    for attr, values in attrs.items():
        x, y = ids[x_rows[attr]], ids[np.repeat(neutral_rows, len(values))]
        y[y == -1] = -2  # neutral padding must not match sensitive padding
        curves = notebook_curves_ids(metrics, x, y, k) if variant == "fairllm-notebook" else paper_curves_ids(list(metrics), x, y, k)
        for m in metrics:
            out[m][attr] = curves[m].reshape(len(instructions), len(values), k)
    return out
