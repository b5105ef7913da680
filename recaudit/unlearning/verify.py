"""Verification of an unlearned recommender against the retrain-from-scratch gold standard.

* utility: AUC / ACC / LogLoss on the test set;
* forgetting: the same metrics on the forget set next to the retrained model's, the mean
  Jensen–Shannon divergence between the method's and the retrained model's P(Yes) there
  (``js_to_retrain_forget``, a Bernoulli JS: recaudit's own measure), and the E2URec paper's
  measures under its names, as its official ``evaluate.py`` computes them over the whole
  vocabulary at the first answer token: ``JSD`` (0.5·KL(p‖q) + 0.5·KL(q‖p), the symmetrised KL
  the code calls JSD; ``js_mixture_forget`` is the textbook JS with the mixture), ``L2``
  (‖p − q‖₂ of the two softmax vectors) and ``Confidence`` (mean probability of the true label);
* privacy: a loss-threshold membership-inference attack (Yeom et al., CSF 2018) separating
  forget samples (were members) from never-seen samples; advantage = max_τ TPR − FPR, 0 = no leak;
* cost: wall seconds to unlearn.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from recaudit.metrics.stats import bootstrap_ci
from recaudit.tallrec.evaluate import EPS, evaluate_scores


def label_loss(p_yes: Sequence[float], labels: Sequence[int]) -> np.ndarray:
    """Per-sample binary cross-entropy of P(Yes) against the label (the MIA's loss; works for ensembles)."""
    p = np.clip(np.asarray(p_yes, dtype=float), EPS, 1 - EPS)
    y = np.asarray(labels, dtype=int)
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def js_divergence(p: Sequence[float], q: Sequence[float]) -> float:
    """Mean Jensen–Shannon divergence (base 2, in [0, 1]) between Bernoulli(p_i) and Bernoulli(q_i)."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1 - EPS)
    q = np.clip(np.asarray(q, dtype=float), EPS, 1 - EPS)
    if p.shape != q.shape:
        raise ValueError(f"p and q differ in shape: {p.shape} vs {q.shape}")
    if p.size == 0:
        return float("nan")
    m = (p + q) / 2

    def kl(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a * np.log2(a / b) + (1 - a) * np.log2((1 - a) / (1 - b))

    return float(np.mean(0.5 * kl(p, m) + 0.5 * kl(q, m)))


def mia_advantage(member_loss: Sequence[float], nonmember_loss: Sequence[float]) -> float:
    """Loss-threshold MIA advantage: max over thresholds τ of P(loss ≤ τ | member) − P(loss ≤ τ | non-member).

    In [0, 1] (the attacker may also pick no threshold); 0 means the losses do not reveal membership.
    """
    a = np.asarray(member_loss, dtype=float)
    b = np.asarray(nonmember_loss, dtype=float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    thresholds = np.unique(np.concatenate([a, b]))
    tpr = np.searchsorted(np.sort(a), thresholds, side="right") / a.size
    fpr = np.searchsorted(np.sort(b), thresholds, side="right") / b.size
    return float(max(0.0, np.max(tpr - fpr)))


def mia_auc(member_loss: Sequence[float], nonmember_loss: Sequence[float]) -> float:
    """AUC of −loss as a membership score (0.5 = chance)."""
    from sklearn.metrics import roc_auc_score

    a, b = np.asarray(member_loss, float), np.asarray(nonmember_loss, float)
    if a.size == 0 or b.size == 0:
        return float("nan")
    return float(roc_auc_score(np.r_[np.ones(a.size), np.zeros(b.size)], -np.r_[a, b]))


def mia_advantage_ci(member_loss: Sequence[float], nonmember_loss: Sequence[float], seed: int = 0, n_resamples: int = 500):
    """Bootstrap CI of the MIA advantage (members and non-members resampled together, stratified by row)."""
    a, b = np.asarray(member_loss, float), np.asarray(nonmember_loss, float)
    rows = np.c_[np.r_[a, b], np.r_[np.ones(a.size), np.zeros(b.size)]]

    def stat(r: np.ndarray) -> float:
        return mia_advantage(r[r[:, 1] == 1, 0], r[r[:, 1] == 0, 0])

    return bootstrap_ci(rows, stat, n_resamples=n_resamples, seed=seed)


def vocab_measures(p: np.ndarray, q: np.ndarray) -> dict[str, float]:
    """E2URec's JSD (symmetrised KL, nats), the mixture JS (nats) and L2 between rows of two [n, V] distributions."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    if p.shape != q.shape:
        raise ValueError(f"p and q differ in shape: {p.shape} vs {q.shape}")
    if p.size == 0:
        return {"jsd": float("nan"), "js_mixture": float("nan"), "l2": float("nan")}
    tiny = 1e-12  # the official code's smoothing
    sym = 0.5 * (p * np.log((p + tiny) / (q + tiny))).sum(-1) + 0.5 * (q * np.log((q + tiny) / (p + tiny))).sum(-1)
    m = (p + q) / 2
    mix = 0.5 * (p * np.log((p + tiny) / (m + tiny))).sum(-1) + 0.5 * (q * np.log((q + tiny) / (m + tiny))).sum(-1)
    return {"jsd": float(sym.mean()), "js_mixture": float(mix.mean()), "l2": float(np.linalg.norm(p - q, axis=-1).mean())}


def confidence(p_yes: Sequence[float], labels: Sequence[int]) -> float:
    """E2URec's Confidence: mean probability the model gives the true label."""
    p, y = np.asarray(p_yes, dtype=float), np.asarray(labels, dtype=int)
    return float(np.mean(np.where(y == 1, p, 1 - p))) if p.size else float("nan")


@dataclass
class Predictions:
    """P(Yes) of one model on the three evaluation sets; ``forget_vocab`` its [n, V] first-answer-token distribution."""

    test: np.ndarray
    forget: np.ndarray
    never_seen: np.ndarray
    forget_vocab: np.ndarray | None = None
    test_seconds: float = float("nan")  # wall seconds to score the test set (inference time)


@dataclass
class MethodReport:
    """Every verification number of one unlearning method."""

    method: str
    test: dict[str, float]
    forget: dict[str, float]
    js_to_retrain_forget: float
    mia_advantage: float
    mia_advantage_low: float
    mia_advantage_high: float
    mia_auc: float
    unlearn_seconds: float
    train_seconds: float = float("nan")
    details: dict[str, Any] = field(default_factory=dict)
    jsd_forget: float = float("nan")
    js_mixture_forget: float = float("nan")
    l2_forget: float = float("nan")
    confidence_forget: float = float("nan")
    confidence_test: float = float("nan")
    inference_ms_per_sample: float = float("nan")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class EvalSets:
    """Labels of the test, forget and never-seen sets."""

    test_labels: np.ndarray
    forget_labels: np.ndarray
    never_seen_labels: np.ndarray


def verify_method(method: str, preds: Predictions, reference: Predictions | None, sets: EvalSets,
                  unlearn_seconds: float, train_seconds: float = float("nan"), seed: int = 0,
                  details: dict[str, Any] | None = None) -> MethodReport:  # fmt: skip
    """Compare one method's predictions with the retrained reference's (``reference=None``: it is the reference)."""
    members = label_loss(preds.forget, sets.forget_labels)
    non = label_loss(preds.never_seen, sets.never_seen_labels)
    ci = mia_advantage_ci(members, non, seed=seed)
    js = 0.0 if reference is None else js_divergence(preds.forget, reference.forget)
    vocab = {"jsd": float("nan"), "js_mixture": float("nan"), "l2": float("nan")}
    if reference is None and preds.forget_vocab is not None:
        vocab = {"jsd": 0.0, "js_mixture": 0.0, "l2": 0.0}
    elif reference is not None and preds.forget_vocab is not None and reference.forget_vocab is not None:
        vocab = vocab_measures(preds.forget_vocab, reference.forget_vocab)
    return MethodReport(
        method=method,
        test=evaluate_scores(sets.test_labels, preds.test),
        forget=evaluate_scores(sets.forget_labels, preds.forget),
        js_to_retrain_forget=js,
        mia_advantage=ci.value,
        mia_advantage_low=ci.low,
        mia_advantage_high=ci.high,
        mia_auc=mia_auc(members, non),
        unlearn_seconds=float(unlearn_seconds),
        train_seconds=float(train_seconds),
        details=details or {},
        jsd_forget=vocab["jsd"],
        js_mixture_forget=vocab["js_mixture"],
        l2_forget=vocab["l2"],
        confidence_forget=confidence(preds.forget, sets.forget_labels),
        confidence_test=confidence(preds.test, sets.test_labels),
        inference_ms_per_sample=1000.0 * preds.test_seconds / max(1, len(preds.test)),
    )
