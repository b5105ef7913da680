"""DP-SGD on the client: secure noise by default, seeded noise only behind the insecure flag, re-derivable ε."""

from __future__ import annotations

import pytest

from recaudit.federated.dp import DPConfig, train_lora_dp


@pytest.fixture(scope="module")
def setup(tiny_lm_path):
    from recaudit.data.loaders import demo_catalog, demo_interactions
    from recaudit.tallrec import TrainConfig, attach_lora, build_samples, init_lora_state, load_base_model

    model, tok = load_base_model(tiny_lm_path)
    cfg = TrainConfig(max_length=64, batch_size=3, epochs=1)
    model = attach_lora(model, cfg)
    samples = build_samples(demo_interactions(), demo_catalog(), history_len=3, max_per_user=3)[:6]
    return model, tok, samples, cfg, init_lora_state(model, 0)


def trained(setup, **dp_kw):
    import torch

    from recaudit.tallrec import load_lora_state_dict, lora_state_dict

    model, tok, samples, cfg, init = setup
    load_lora_state_dict(model, init)
    # a fixed σ skips Opacus' (slow) calibration; ε is still accounted from (σ, q, steps)
    out = train_lora_dp(model, tok, samples, cfg, DPConfig(noise_multiplier=1.0, **dp_kw), total_rounds=2, seed=7)
    return out, torch.cat([v.flatten().float() for _, v in sorted(lora_state_dict(model).items())])


def test_same_seed_gives_different_noise_by_default(setup):
    import torch

    out1, w1 = trained(setup)
    out2, w2 = trained(setup)
    assert out1.secure_noise and out2.secure_noise
    assert not torch.equal(w1, w2)  # noise (and Poisson batches) come from OS entropy


def test_insecure_flag_reproduces_the_noise_exactly(setup):
    import torch

    out1, w1 = trained(setup, insecure_reproducible=True)
    out2, w2 = trained(setup, insecure_reproducible=True)
    assert not out1.secure_noise
    assert torch.equal(w1, w2)


def test_epsilon_is_re_derived_from_the_reported_values(setup):
    from opacus.accountants import RDPAccountant

    out, _ = trained(setup)
    acc = RDPAccountant()
    acc.history = [(out.noise_multiplier, out.sample_rate, out.total_steps)]
    assert acc.get_epsilon(delta=1e-5) == pytest.approx(out.epsilon, rel=1e-9)
    assert out.total_steps == out.n_steps and 0 < out.sample_rate <= 1 and out.noise_multiplier > 0


def test_user_level_unit_samples_users(setup):
    model, tok, samples, cfg, init = setup
    users = {s.user_id for s in samples}
    out, _ = trained(setup, unit="user")
    assert out.n_units == len(users) < len(samples)
    assert out.sample_rate == pytest.approx(min(1.0, cfg.batch_size / len(users)))
    with pytest.raises(ValueError, match="unit"):
        DPConfig(unit="household")
