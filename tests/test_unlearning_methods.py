"""Verification maths (hand-computed), E2URec teachers and distillation, gradient ascent, SISA (tiny model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recaudit.tallrec import TrainConfig, attach_lora, load_base_model, score_samples, states_equal
from recaudit.tallrec.lora import load_lora_state_dict
from recaudit.unlearning.e2urec import E2URecConfig, e2urec_unlearn, forgetting_logits, kl_to_teacher
from recaudit.unlearning.gradient_ascent import GradientAscentConfig, gradient_ascent
from recaudit.unlearning.retrain import train_single
from recaudit.unlearning.sisa import SISA
from recaudit.unlearning.verify import js_divergence, label_loss, mia_advantage, mia_auc, mia_advantage_ci

CFG = TrainConfig(seed=0, batch_size=4, lr=1e-2, epochs=2, max_length=256)


def test_js_divergence_hand_computed():
    assert js_divergence([0.3, 0.9], [0.3, 0.9]) == pytest.approx(0.0, abs=1e-12)
    kl_half = 0.5 * math.log2(0.5 / 0.75) + 0.5 * math.log2(0.5 / 0.25)
    kl_one = math.log2(1 / 0.75)
    assert js_divergence([0.5], [1.0]) == pytest.approx(0.5 * (kl_half + kl_one), abs=1e-5)
    assert js_divergence([0.0], [1.0]) == pytest.approx(1.0, abs=1e-4)  # disjoint: 1 bit
    with pytest.raises(ValueError, match="shape"):
        js_divergence([0.1], [0.1, 0.2])


def test_mia_advantage_hand_computed():
    assert mia_advantage([0.1, 0.2], [0.3, 0.4]) == 1.0  # members all lower loss: perfect attack
    assert mia_advantage([0.3, 0.4], [0.3, 0.4]) == 0.0
    assert mia_advantage([0.1, 0.5], [0.3, 0.6]) == pytest.approx(0.5)
    assert mia_advantage([0.9, 0.8], [0.1, 0.2]) == 0.0  # members worse than non-members: no advantage
    assert mia_auc([0.1, 0.2], [0.3, 0.4]) == 1.0 and mia_auc([0.3, 0.4], [0.3, 0.4]) == 0.5
    ci = mia_advantage_ci([0.1, 0.2, 0.15, 0.3], [0.3, 0.4, 0.5, 0.2], seed=1)
    assert ci.low <= ci.value <= ci.high
    np.testing.assert_allclose(label_loss([0.8, 0.8], [1, 0]), [-math.log(0.8), -math.log(0.2)])


def test_forgetting_teacher_formula():
    import torch

    orig, aug = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 1.0])
    assert forgetting_logits(orig, aug, 0.5, relu=True).tolist() == [0.0, 2.0]  # released code: ReLU
    assert forgetting_logits(orig, aug, 0.5, relu=False).tolist() == [0.0, 2.5]  # spec: plain difference
    assert forgetting_logits(orig, aug, 0.0).tolist() == [1.0, 2.0]
    logits = torch.randn(2, 3, 7)
    valid = torch.ones(2, 3)
    assert kl_to_teacher(logits, logits, valid).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_to_teacher(logits, torch.zeros_like(logits), valid).item() > 0
    with pytest.raises(ValueError, match="w_forget"):
        E2URecConfig(w_forget=0, w_retain=0)


@pytest.fixture(scope="module")
def trained(tiny_lm_path):
    import torch

    torch.set_num_threads(1)
    from test_unlearning_apa import toy_samples  # tests/ is on sys.path (rootdir-relative import mode)

    model, tok = load_base_model(tiny_lm_path)
    model = attach_lora(model, CFG)
    samples = toy_samples(n_users=5, per_user=7)
    original, _ = train_single(model, tok, samples, CFG, seed=0)
    forget = [s for s in samples if s.user_id == "1"]
    retain = [s for s in samples if s.user_id != "1"]
    return model, tok, original, forget, retain


def _forget_loss(model, tok, state, forget):
    load_lora_state_dict(model, state)
    return label_loss(score_samples(model, tok, forget, max_length=CFG.max_length), [s.label for s in forget]).mean()


def test_e2urec_trains_only_lora_and_moves_away_from_forget_data(trained):
    model, tok, original, forget, retain = trained
    base_before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_" not in n}
    e2 = E2URecConfig(alpha=3.0, w_forget=1.0, w_retain=0.0, epochs=3, forget_epochs=3, aug_epochs=2)
    out = e2urec_unlearn(model, tok, original, forget, retain, CFG, e2, seed=0)
    for n, p in model.named_parameters():
        if "lora_" not in n:
            assert np.array_equal(p.detach().numpy(), base_before[n].numpy()), n
    assert not states_equal(out.state, original) and not states_equal(out.augmented, original)
    assert out.seconds > 0 and len(out.losses) == 3 * math.ceil(len(forget) / CFG.batch_size)
    # the augmented model fits the forget data better; the forgetting teacher pushes the student the other way
    assert _forget_loss(model, tok, out.augmented, forget) < _forget_loss(model, tok, original, forget)
    assert _forget_loss(model, tok, out.state, forget) > _forget_loss(model, tok, original, forget)
    again = e2urec_unlearn(model, tok, original, forget, retain, CFG, e2, seed=0)
    assert states_equal(again.state, out.state)  # deterministic


def test_e2urec_with_retain_term_runs(trained):
    model, tok, original, forget, retain = trained
    out = e2urec_unlearn(model, tok, original, forget, retain, CFG, E2URecConfig(epochs=2, forget_epochs=1, aug_epochs=1), seed=1)
    assert all(np.isfinite(out.losses))


def test_gradient_ascent_raises_forget_loss(trained):
    model, tok, original, forget, retain = trained
    state, seconds = gradient_ascent(model, tok, original, forget, CFG, GradientAscentConfig(epochs=2), seed=0)
    assert seconds > 0
    assert _forget_loss(model, tok, state, forget) > _forget_loss(model, tok, original, forget)


def test_sisa_predicts_the_mean_of_its_shards(trained, tmp_path):
    model, tok, _, forget, retain = trained
    sisa = SISA(model, tok, CFG, tmp_path, n_shards=2, seed=0)
    sisa.fit(retain)
    per_shard = []
    for k in range(2):
        load_lora_state_dict(model, sisa.shards.state(k))
        per_shard.append(score_samples(model, tok, forget, max_length=CFG.max_length))
    np.testing.assert_allclose(sisa.predict(forget), np.mean(per_shard, axis=0), atol=1e-7)
    stats = sisa.unlearn(lambda s: s.user_id == retain[0].user_id)
    assert stats.removed > 0 and 1 <= len(stats.affected_shards) <= 2


def test_gradient_ascent_ceiling_stops_the_ascent(trained):
    model, tok, original, forget, _ = trained
    state, _ = gradient_ascent(model, tok, original, forget, CFG, GradientAscentConfig(epochs=1, ceiling=1e-3), seed=0)
    assert states_equal(state, original)  # every loss is above the ceiling: zero gradient


def test_neggrad_retain_term_keeps_the_retain_loss_below_pure_ascent(tiny_lm_path):
    """NegGrad = CE(retain) - w CE(forget): same steps and lr as pure ascent, lower retain loss, forget loss still up."""
    import torch

    from recaudit.tallrec import TrainConfig, attach_lora, load_base_model, train_lora
    from recaudit.tallrec.lora import lora_state_dict, reset_lora
    from recaudit.tallrec.scoring import sample_outputs
    from recaudit.unlearning.gradient_ascent import GradientAscentConfig, gradient_ascent

    torch.set_num_threads(1)
    from test_unlearning_apa import toy_samples

    samples = toy_samples(n_users=6, per_user=6)
    forget = [s for s in samples if s.user_id in {"1", "2"}]
    retain = [s for s in samples if s.user_id not in {"1", "2"}]
    cfg = TrainConfig(seed=0, batch_size=4, lr=2e-2, epochs=2, max_length=256)
    model, tok = load_base_model(tiny_lm_path)
    model = attach_lora(model, cfg)
    reset_lora(model, 1)
    train_lora(model, tok, samples, cfg)
    original = lora_state_dict(model)

    def losses(state):
        from recaudit.tallrec.lora import load_lora_state_dict

        load_lora_state_dict(model, state)
        return (sample_outputs(model, tok, retain, 8, 256)["loss"].mean(), sample_outputs(model, tok, forget, 8, 256)["loss"].mean())

    r0, f0 = losses(original)
    ga, _ = gradient_ascent(model, tok, original, forget, cfg, GradientAscentConfig(epochs=3, variant="ga"), seed=0)
    ng, _ = gradient_ascent(model, tok, original, forget, cfg, GradientAscentConfig(epochs=3, variant="neggrad", weight=1.0),
                            seed=0, retain=retain)  # fmt: skip
    (r_ga, f_ga), (r_ng, f_ng) = losses(ga), losses(ng)
    assert f_ga > f0 and f_ng > f0  # both forget
    assert r_ng < r_ga  # the retain term holds the retained data's loss down
    with pytest.raises(ValueError, match="retained"):
        gradient_ascent(model, tok, original, forget, cfg, GradientAscentConfig(variant="neggrad"), seed=0)
