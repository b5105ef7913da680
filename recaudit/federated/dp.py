"""Client-side DP-SGD (Opacus) on the LoRA parameters, with a privacy accountant kept across rounds.

Each local step draws a Poisson sample of the client's training units (rate ``q = B / N``),
computes per-sample gradients of TALLRec's per-sample answer loss
(``recaudit.tallrec.encoding.answer_nll``) with Opacus' ``GradSampleModule``, clips each unit's
gradient to ``max_grad_norm``, adds Gaussian noise ``σ · max_grad_norm`` (``DPOptimizer``) and steps
AdamW. The RDP accountant's history — ``(σ, q, steps)`` triples — lives in the client's Flower
state, so the spent ε grows round after round; σ is calibrated once so that the client's total
over all rounds meets the target ε (or fixed by ``noise_multiplier``). σ, q, the step count and δ
are reported with ε, so anyone can re-derive ε with Opacus' accountant.

Unit of privacy (``unit``): ``"record"`` — one TALLRec sample (one rating with its history
prompt), add/remove; a user with 8 samples is then protected only by group privacy. ``"user"``
— users are Poisson-sampled (all of a sampled user's samples enter the step), each user's
gradient is the mean of its samples' per-sample gradients and is clipped as one unit: user-level
DP-SGD, accounted with q = B / (number of users).

Noise source: by default the noise generator and the Poisson sampler are seeded from OS entropy
(``secrets``) and Opacus' ``secure_mode`` is on (it guards against floating-point attacks on the
Gaussian sampler). This is not a cryptographic stream — Opacus' CSPRNG path needs
``torchcsprng``, which is not built for current torch — but nobody, the server included, can
regenerate the noise from public information. ``insecure_reproducible=True`` seeds both from
``seed`` for bit-reproducible runs; results then say the noise is insecure.
"""

from __future__ import annotations

import functools
import math
import secrets
import time
import warnings
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

History = list[tuple[float, float, int]]


@dataclass(frozen=True)
class DPConfig:
    """DP-SGD settings: target ε over the whole run (or a fixed σ), δ, per-sample clipping norm."""

    target_epsilon: float = 8.0
    delta: float = 1e-5
    max_grad_norm: float = 1.0
    noise_multiplier: float = 0.0
    accountant: str = "rdp"
    unit: str = "record"
    insecure_reproducible: bool = False

    def __post_init__(self) -> None:
        if not self.target_epsilon > 0:
            raise ValueError(f"target_epsilon must be > 0, got {self.target_epsilon}")
        if not 0 < self.delta < 1:
            raise ValueError(f"delta must be in (0, 1), got {self.delta}")
        if not self.max_grad_norm > 0:
            raise ValueError(f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        if self.noise_multiplier < 0:
            raise ValueError(f"noise_multiplier must be >= 0, got {self.noise_multiplier}")
        if self.unit not in ("record", "user"):
            raise ValueError(f"unit must be 'record' or 'user', got {self.unit!r}")


@dataclass
class DPOutput:
    """Losses of the DP steps, the ε spent so far (all rounds), σ, q and the updated history."""

    losses: list[float]
    epsilon: float
    noise_multiplier: float
    sample_rate: float
    history: History
    n_steps: int
    seconds: float
    total_steps: int = 0
    secure_noise: bool = True
    n_units: int = 0


def steps_per_round(n_samples: int, batch_size: int, epochs: int) -> int:
    """Local DP steps per round: ``epochs · ⌈N / B⌉`` (expected batch size B)."""
    return epochs * math.ceil(n_samples / batch_size)


def calibrate_noise(config: DPConfig, sample_rate: float, total_steps: int) -> float:
    """σ so that ``total_steps`` Poisson-sampled steps at rate ``q`` spend ``target_epsilon`` (or the fixed σ)."""
    if config.noise_multiplier > 0:
        return config.noise_multiplier
    return _calibrated(config.target_epsilon, config.delta, float(sample_rate), int(total_steps), config.accountant)


@functools.lru_cache(maxsize=256)
def _calibrated(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str) -> float:
    # Opacus' binary search takes seconds; every client repeats it every round with the same inputs
    from opacus.accountants.utils import get_noise_multiplier

    return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta, sample_rate=sample_rate,
                                      steps=steps, accountant=accountant))


def spent_epsilon(history: History, delta: float, accountant: str = "rdp") -> float:
    """ε spent by the mechanism steps in ``history`` at ``delta`` (0 for an empty history)."""
    if not history:
        return 0.0
    from opacus.accountants import create_accountant

    acc = create_accountant(accountant)
    acc.history = [tuple(h) for h in history]
    return float(acc.get_epsilon(delta=delta))


def train_lora_dp(
    model: Any,
    tokenizer: Any,
    samples: Sequence[Any],
    train_config: Any,
    dp: DPConfig,
    total_rounds: int,
    history: History | None = None,
    lr_scale: float = 1.0,
    seed: int = 0,
) -> DPOutput:
    """One round of local DP-SGD on ``model``'s LoRA parameters (in place); see the module docstring."""
    import torch
    from opacus import GradSampleModule
    from opacus.accountants import create_accountant
    from opacus.optimizers import DPOptimizer

    from recaudit.tallrec.encoding import answer_logits, answer_nll, collate, encode_samples
    from recaudit.tallrec.trainer import deterministic_torch, trainable_parameters

    if not samples:
        raise ValueError("samples is empty: nothing to train on")
    n = len(samples)
    # the unit of privacy: each sample, or each user with all its samples
    unit_of = [i for i in range(n)] if dp.unit == "record" else None
    if unit_of is None:
        users = sorted({str(s.user_id) for s in samples})
        index = {u: k for k, u in enumerate(users)}
        unit_of = [index[str(s.user_id)] for s in samples]
    n_units = max(unit_of) + 1
    q = min(1.0, train_config.batch_size / n_units)
    steps = steps_per_round(n_units, train_config.batch_size, train_config.epochs)
    sigma = calibrate_noise(dp, q, steps * total_rounds)
    encoded = encode_samples(tokenizer, samples, train_config.max_length)
    params = trainable_parameters(model)
    device = params[0].device
    secure = not dp.insecure_reproducible
    # secure: seeds nobody can know (OS entropy); insecure: the public seed, for bit-reproducible runs
    noise_seed = secrets.randbits(63) if secure else int(seed)
    gen = torch.Generator(device=device).manual_seed(noise_seed)
    rng = np.random.default_rng(secrets.randbits(128) if secure else int(seed))
    del noise_seed
    gsm = GradSampleModule(model, batch_first=True, loss_reduction="mean")
    base_opt = torch.optim.AdamW(params, lr=train_config.lr * lr_scale, weight_decay=train_config.weight_decay)
    opt = DPOptimizer(base_opt, noise_multiplier=sigma, max_grad_norm=dp.max_grad_norm,
                      expected_batch_size=max(1, round(q * n_units)), loss_reduction="mean", generator=gen,
                      secure_mode=secure)
    accountant = create_accountant(dp.accountant)
    accountant.history = [tuple(h) for h in (history or [])]
    first_only = train_config.answer_loss == "first"
    unit_tensor = torch.tensor(unit_of, device=device)
    losses: list[float] = []
    t0 = time.perf_counter()
    was_training = model.training
    try:
        with deterministic_torch(train_config.deterministic):
            gsm.train()
            for _ in range(steps):
                chosen = rng.random(n_units) < q
                idx = [i for i in range(n) if chosen[unit_of[i]]]
                opt.zero_grad(set_to_none=True)
                if idx:
                    batch = collate([encoded[i] for i in idx], tokenizer.pad_token_id, device=device)
                    loss = answer_nll(answer_logits(gsm, batch), batch, first_only=first_only).mean()
                    with warnings.catch_warnings():
                        # the first LoRA layer's input needs no grad; Opacus' hooks still get grad_output
                        warnings.filterwarnings("ignore", message="Full backward hook is firing")
                        loss.backward()
                    if dp.unit == "user":
                        _per_user_grads(params, unit_tensor[idx])
                    losses.append(float(loss.detach()))
                else:
                    # an empty Poisson batch is still a noisy step of the mechanism
                    for p in params:
                        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
                opt.step()
                accountant.step(noise_multiplier=sigma, sample_rate=q)
    finally:
        gsm.cleanup()
        model.train(was_training)
    hist: History = [(float(s), float(r), int(k)) for s, r, k in accountant.history]
    return DPOutput(losses=losses, epsilon=spent_epsilon(hist, dp.delta, dp.accountant), noise_multiplier=sigma,
                    sample_rate=q, history=hist, n_steps=steps, seconds=time.perf_counter() - t0,
                    total_steps=sum(k for _, _, k in hist), secure_noise=secure, n_units=n_units)


def _per_user_grads(params: list, units: Any) -> None:
    """Replace per-sample gradients by per-user means, so that clipping bounds each user's contribution."""
    import torch

    uniq, inverse = torch.unique(units, return_inverse=True)
    counts = torch.bincount(inverse, minlength=len(uniq)).clamp(min=1)
    for p in params:
        gs = p.grad_sample
        summed = torch.zeros((len(uniq), *gs.shape[1:]), dtype=gs.dtype, device=gs.device).index_add_(0, inverse, gs)
        p.grad_sample = summed / counts.view(-1, *([1] * (gs.dim() - 1))).to(gs.dtype)
