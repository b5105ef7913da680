"""RecEraser's attention aggregation, Bad-T, and E2URec's vocabulary measures (hand-computed / planted)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recaudit.unlearning.receraser import AttentionAggregator, RecEraser, log_odds
from recaudit.unlearning.verify import confidence, vocab_measures


def test_attention_finds_the_informative_shard():
    import torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    z = np.c_[(2 * y - 1) * 2.0 + rng.normal(0, 0.5, 400), rng.normal(0, 2.0, 400), rng.normal(0, 2.0, 400)]
    sim = rng.uniform(0, 1, (400, 3))
    agg = AttentionAggregator(seed=0).fit(z, sim, y)
    p, alpha = agg.predict(z, sim)
    np.testing.assert_allclose(alpha.sum(axis=1), 1.0, atol=1e-9)
    assert alpha[:, 0].mean() > 0.6  # shard 0 carries the signal: attention goes there
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(y, p) > 0.9
    mean_only = 1 / (1 + np.exp(-z.mean(axis=1)))  # SISA-style mean is worse: noise shards dilute it
    assert roc_auc_score(y, p) > roc_auc_score(y, mean_only)
    np.testing.assert_allclose(log_odds(np.array([0.5, 0.9])), [0.0, math.log(9)], atol=1e-9)
    with pytest.raises(RuntimeError, match="fit"):
        AttentionAggregator().predict(z, sim)


def test_receraser_keeps_users_in_one_shard_and_retrains_one(tiny_lm_path, tmp_path):
    import torch

    from test_unlearning_apa import CFG, toy_samples

    from recaudit.tallrec import attach_lora, load_base_model
    from recaudit.unlearning.partition import hashing_embedder

    torch.set_num_threads(1)
    model, tok = load_base_model(tiny_lm_path)
    model = attach_lora(model, CFG)
    samples = toy_samples(n_users=6, per_user=5)
    rec = RecEraser(model, tok, CFG, tmp_path, n_shards=2, seed=0, embedder=hashing_embedder, agg_samples=16)
    rec.fit(samples)
    owner = {}
    for info in rec.shards.shards:
        for key in info.keys:
            assert owner.setdefault(key[0], info.shard) == info.shard
    stats = rec.unlearn(lambda s: s.user_id == "2")
    assert stats.affected_shards == [owner["2"]] and stats.seconds >= rec.aggregator_seconds > 0
    p = rec.predict(samples[:6])
    assert p.shape == (6,) and ((p > 0) & (p < 1)).all()


def test_vocab_measures_hand_computed():
    p = np.array([[0.5, 0.5, 0.0]])
    q = np.array([[0.25, 0.75, 0.0]])
    kl_pq = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    kl_qp = 0.25 * math.log(0.25 / 0.5) + 0.75 * math.log(0.75 / 0.5)
    m = vocab_measures(p, q)
    assert m["jsd"] == pytest.approx(0.5 * kl_pq + 0.5 * kl_qp, abs=1e-9)  # the official code's "JSD"
    mix = (p + q) / 2
    js = 0.5 * (p * np.log((p + 1e-12) / (mix + 1e-12))).sum() + 0.5 * (q * np.log((q + 1e-12) / (mix + 1e-12))).sum()
    assert m["js_mixture"] == pytest.approx(js, abs=1e-9)
    assert m["l2"] == pytest.approx(math.sqrt(0.25**2 * 2), abs=1e-12)
    assert vocab_measures(p, p) == {"jsd": 0.0, "js_mixture": 0.0, "l2": 0.0}
    assert confidence([0.9, 0.2], [1, 0]) == pytest.approx(0.85)


def test_bad_teacher_moves_the_forget_predictions_towards_the_base(tiny_lm_path):
    import torch

    from test_unlearning_apa import CFG, toy_samples

    from recaudit.tallrec import attach_lora, load_base_model
    from recaudit.tallrec.lora import load_lora_state_dict
    from recaudit.tallrec.scoring import score_samples
    from recaudit.unlearning.e2urec import E2URecConfig, e2urec_unlearn
    from recaudit.unlearning.retrain import train_single

    torch.set_num_threads(1)
    model, tok = load_base_model(tiny_lm_path)
    model = attach_lora(model, CFG)
    samples = toy_samples(n_users=5, per_user=6)
    cfg = CFG.replace(lr=3e-2, epochs=3)
    original, _ = train_single(model, tok, samples, cfg, seed=0)
    forget = [s for s in samples if s.user_id == "1"]
    retain = [s for s in samples if s.user_id != "1"]
    with model.disable_adapter():
        base = score_samples(model, tok, forget, max_length=256)
    load_lora_state_dict(model, original)
    before = score_samples(model, tok, forget, max_length=256)
    out = e2urec_unlearn(model, tok, original, forget, retain, cfg, E2URecConfig(forgetting_teacher="bad", epochs=3), seed=0)
    load_lora_state_dict(model, out.state)
    after = score_samples(model, tok, forget, max_length=256)
    assert out.augmented is None and out.selected_step == len(out.losses)
    assert np.abs(after - base).mean() < np.abs(before - base).mean()
    with pytest.raises(ValueError, match="forgetting_teacher"):
        E2URecConfig(forgetting_teacher="random")
