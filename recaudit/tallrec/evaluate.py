"""Ranking/classification metrics of P(Yes) scores: AUC (TALLRec's metric), accuracy, log loss."""

from __future__ import annotations

from typing import Sequence

import numpy as np

EPS = 1e-7


def evaluate_scores(labels: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict[str, float]:
    """``{"auc", "acc", "logloss", "n", "pos_rate"}``; AUC is NaN when only one class is present."""
    from sklearn.metrics import accuracy_score, log_loss, roc_auc_score

    y = np.asarray(labels, dtype=int)
    p = np.asarray(scores, dtype=float)
    if y.shape != p.shape:
        raise ValueError(f"labels and scores differ in length: {y.shape} vs {p.shape}")
    if y.size == 0:
        raise ValueError("labels is empty: nothing to evaluate")
    if not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1:
        raise ValueError("scores must be probabilities in [0, 1]")
    if not set(np.unique(y)) <= {0, 1}:
        raise ValueError("labels must be 0 or 1")
    both = len(np.unique(y)) == 2
    return {
        "auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "acc": float(accuracy_score(y, (p >= threshold).astype(int))),
        "logloss": float(log_loss(y, np.clip(p, EPS, 1 - EPS), labels=[0, 1])),
        "n": int(y.size),
        "pos_rate": float(y.mean()),
    }
