"""FaiRLLM similarity curves (metric@1..K) for many list pairs at once, equal to ``similarity_curve``.

The paper variant's three metrics are counts over the lists' first occurrences, so every cutoff
follows from each item's first position in either list: Jaccard's intersection counts items
whose later first position is < K, SERP sums (K + 1 − rank) over them, PRAG counts pairs
(v1 before v2 in R^a, v1 in R, v1 ranked above v2 in R or v2 absent) whose last-needed position
is < K. All pairs are handled as padded (pairs × K) integer arrays; the divisions are the
reference code's, so the floats are the same. The notebook and LangFair variants, whose
duplicate handling differs, are computed pair by pair with ``similarity_curve`` here (the notebook
variant's batched form, used by the FaiRLLM probe, is ``recaudit.metrics.list_similarity_notebook``).
"""

from __future__ import annotations

from itertools import chain
from typing import Sequence

import numpy as np
import pandas as pd

from recaudit.metrics.list_similarity import LIST_METRICS, ListMetric, Variant, similarity_curve


def similarity_curves(
    metrics: Sequence[ListMetric],
    sensitive: Sequence[Sequence[str]],
    neutral: Sequence[Sequence[str]],
    k_max: int,
    variant: Variant = "paper",
) -> dict[str, np.ndarray]:
    """metric -> (pairs × k_max) array: row p is ``similarity_curve(metric, sensitive[p], neutral[p], k_max, variant)``."""
    if len(sensitive) != len(neutral):
        raise ValueError(f"{len(sensitive)} sensitive lists but {len(neutral)} neutral lists")
    if k_max < 1:
        raise ValueError(f"k_max must be >= 1, got {k_max}")
    unknown = [m for m in metrics if m not in LIST_METRICS]
    if unknown:
        raise ValueError(f"metric must be one of {LIST_METRICS}, got {unknown}")
    if variant != "paper" or not len(sensitive):
        return {m: np.array([similarity_curve(m, x, y, k_max, variant) for x, y in zip(sensitive, neutral)])
                .reshape(len(sensitive), k_max) for m in metrics}
    x, y = encode_pairs(sensitive, neutral, k_max)
    return paper_curves_ids(list(metrics), x, y, k_max)


def encode_lists(lists: Sequence[Sequence[str]], k: int, pad: int = -1) -> np.ndarray:
    """Item ids (lists × k) of the first k items of each list, padded with ``pad`` at the end of a row."""
    cut = [items[:k] for items in lists]
    lengths = np.fromiter(map(len, cut), dtype=np.int64, count=len(cut))
    flat = np.fromiter(chain.from_iterable(cut), dtype=object, count=int(lengths.sum()))
    out = np.full((len(cut), k), pad, dtype=np.int64)
    # ids are only compared for equality: pandas' hash factorisation, row-major (the order of ``flat``)
    out[np.arange(k)[None, :] < lengths[:, None]] = pd.factorize(flat, use_na_sentinel=False)[0]
    return out


def encode_pairs(sensitive, neutral, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Item ids (pairs × k), padding -1 in x and -2 in y so padding never matches."""
    ids = encode_lists(list(sensitive) + list(neutral), k)
    x, y = ids[: len(sensitive)], ids[len(sensitive):]
    y[y == -1] = -2
    return x, y


def _first_mask(a: np.ndarray, pad: int) -> np.ndarray:
    """True where a[p, i] is the first occurrence of its item in row p (padding excluded)."""
    k = a.shape[1]
    earlier = np.tril(np.ones((k, k), dtype=bool), -1)  # [i, j]: j < i
    repeat = ((a[:, :, None] == a[:, None, :]) & earlier[None]).any(axis=2)
    return (a != pad) & ~repeat


def cum_by_threshold(thresholds: np.ndarray, keep: np.ndarray, k: int, weights: np.ndarray | None = None) -> np.ndarray:
    """Per row, for cutoff c = 1..k: the (weighted) count of kept entries with threshold < c."""
    rows = keep.shape[0]
    keep = np.broadcast_to(keep, np.broadcast_shapes(keep.shape, np.shape(thresholds)))
    where = np.nonzero(keep)  # kept entries only (sparse: matches), in the order a full pass meets them
    offset = np.broadcast_to(thresholds, keep.shape)[where] + where[0] * (k + 1)
    w = None if weights is None else np.broadcast_to(weights, keep.shape)[where].astype(float)
    counts = np.bincount(offset, weights=w, minlength=rows * (k + 1)).reshape(rows, k + 1)[:, :k]
    return np.cumsum(counts, axis=1)


def paper_curves_ids(metrics: list[str], x: np.ndarray, y: np.ndarray, k: int) -> dict[str, np.ndarray]:
    """The paper variant's curves from id rows (``encode_pairs``: padding -1 in x, -2 in y)."""
    inf = 2 * k + 1
    fx, fy = _first_mask(x, -1), _first_mask(y, -2)
    match = x[:, :, None] == y[:, None, :]  # [p, i, j]
    py = np.where(match.any(axis=2), match.argmax(axis=2), inf)  # first position in y of x's item i
    cut = np.arange(1, k + 1)[None, :]
    both = fx & (py < inf)
    thresh = np.maximum(np.arange(k)[None, :], py)  # both lists hold the item from cutoff thresh + 1 on
    inter = cum_by_threshold(thresh, both, k)
    out: dict[str, np.ndarray] = {}
    if "jaccard" in metrics:
        size_x, size_y = np.cumsum(fx, axis=1), np.cumsum(fy, axis=1)
        union = size_x + size_y - inter
        with np.errstate(invalid="ignore", divide="ignore"):
            out["jaccard"] = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
    if "serp" in metrics:
        rank_x = np.cumsum(fx, axis=1)  # 1-based rank among first occurrences
        rank_sum = cum_by_threshold(thresh, both, k, weights=rank_x)
        hits = (cut + 1) * inter - rank_sum
        out["serp"] = hits / (cut * (cut + 1) / 2)
    if "prag" in metrics:
        i = np.arange(k)
        later = (i[None, :] > i[:, None])[None]  # [i1, i2]: i2 after i1
        pair = both[:, :, None] & fx[:, None, :] & later & (py[:, :, None] < py[:, None, :])
        t = np.maximum(i[None, None, :], py[:, :, None])  # max(position of v2 in x, position of v1 in y)
        count = cum_by_threshold(t, pair, k)
        out["prag"] = count / (cut * (cut + 1))
    return {m: out[m] for m in metrics}
