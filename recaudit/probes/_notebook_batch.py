"""FaiRLLM's notebook-variant similarity curves for many list pairs at once (numpy, no per-pair loop).

Equal to ``recaudit.metrics.ranking.similarity_curve(metric, x, y, k, "fairllm-notebook")`` per
pair (tests compare to 1e-12): the default variant is the notebook's, so the 32,000-answer
benchmark must not pay a Python loop over pairs × cutoffs × pairs of items.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def _encode(lists: Sequence[Sequence[str]], k: int, vocab: dict[str, int], pad: int) -> tuple[np.ndarray, np.ndarray]:
    out = np.full((len(lists), k), pad, dtype=np.int64)
    lengths = np.zeros(len(lists), dtype=np.int64)
    for p, items in enumerate(lists):
        items = list(items)[:k]
        lengths[p] = len(items)
        out[p, : len(items)] = [vocab.setdefault(it, len(vocab)) for it in items]
    return out, lengths


def notebook_curves(metrics: Sequence[str], xs: Sequence[Sequence[str]], ys: Sequence[Sequence[str]],
                    k: int) -> dict[str, np.ndarray]:
    """metric -> pairs × K array of metric@1..K (notebook variant), sensitive lists ``xs`` vs neutral ``ys``."""
    vocab: dict[str, int] = {}
    X, lx = _encode(xs, k, vocab, -1)
    Y, ly = _encode(ys, k, vocab, -2)
    n = len(xs)
    eq = X[:, :, None] == Y[:, None, :]  # pairs × i × j (padding never matches)
    first_x = ~np.triu(X[:, :, None] == X[:, None, :], 1).any(axis=1)  # no earlier equal item
    first_y = ~np.triu(Y[:, :, None] == Y[:, None, :], 1).any(axis=1)
    out = {m: np.zeros((n, k)) for m in metrics}
    idx = np.arange(k)
    for c in range(1, k + 1):
        nx, ny = np.minimum(lx, c), np.minimum(ly, c)
        xin = idx[None, :] < nx[:, None]
        yin = idx[None, :] < ny[:, None]
        e = eq & xin[:, :, None] & yin[:, None, :]
        if "jaccard" in out:
            inter = (e.any(axis=2) & first_x & xin).sum(axis=1)
            union = (first_x & xin).sum(axis=1) + (first_y & yin).sum(axis=1) - inter
            out["jaccard"][:, c - 1] = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
        if "serp" in out:
            weight = np.where(xin, nx[:, None] - idx[None, :] + 1, 0)
            temp = (weight * e.sum(axis=2)).sum(axis=1)
            out["serp"][:, c - 1] = np.where(ny > 0, temp * 0.5 / np.maximum((ny + 1) * ny, 1), 0.0)
        if "prag" in out:
            any_j = e.any(axis=2)
            last = np.where(any_j, k - 1 - np.argmax(e[:, :, ::-1], axis=2), -1)  # last position in y
            upper = np.triu(np.ones((k, k), dtype=bool), 1)[None] & xin[:, :, None] & xin[:, None, :]
            pi, pj = last[:, :, None], last[:, None, :]
            agree = upper & (pi >= 0) & ((pj < 0) | (pi < pj))
            pairs = nx * (nx - 1) // 2
            val = np.where(pairs > 0, agree.sum(axis=(1, 2)) / np.maximum(pairs, 1), 0.0)
            single = (nx == 1) & (ny == 1) & (X[:, 0] == Y[:, 0])  # a one-item list scores 1 iff it equals R
            val = np.where(nx == 1, single.astype(float), val)
            out["prag"][:, c - 1] = np.where((nx == 0) | (ny == 0), 0.0, val)
    return out
