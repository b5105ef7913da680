"""Gradient-based unlearning baselines from the original adapter: NegGrad (E2URec's "GA") and pure ascent.

* ``neggrad`` (the E2URec paper's GA baseline, as its official code trains it): each step pairs a
  forget batch with a retained batch and minimises ``CE(retain) − weight · CE(forget)``, so the
  model keeps its utility while the forget loss rises (official defaults: weight 0.2, lr 5e-5).
* ``ga``: pure gradient ascent on the forget batches, ``−CE(forget)`` (no retain term), kept as
  a named variant; cheap and unstable.

With ``ceiling`` set, a sample's forget loss is clamped there (zero gradient beyond it), so the
adapter cannot diverge without bound; by default it is unbounded and the epochs limit the damage.
The retained batches are drawn by a seeded permutation (the official code zips a shuffled retain
loader with the forget loader: one retained batch per forget batch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from recaudit.tallrec.config import TrainConfig, derive_seed
from recaudit.tallrec.encoding import Batch, answer_logits, answer_nll, encode_samples
from recaudit.tallrec.lora import LoraState, load_lora_state_dict, lora_state_dict
from recaudit.tallrec.prefix import model_batch
from recaudit.tallrec.prompts import TallRecSample
from recaudit.tallrec.trainer import batch_order, optimise


@dataclass
class GradientAscentConfig:
    """Variant, epochs over the forget set, lr (None = the train config's), forget weight, optional loss ceiling."""

    epochs: int = 1
    lr: float | None = None
    ceiling: float | None = None
    variant: Literal["neggrad", "ga"] = "ga"
    weight: float = 0.2

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.ceiling is not None and self.ceiling <= 0):
            raise ValueError(f"epochs must be >= 1 and ceiling > 0 or None, got {self.epochs}, {self.ceiling}")
        if self.variant not in ("neggrad", "ga"):
            raise ValueError(f"variant must be 'neggrad' or 'ga', got {self.variant!r}")
        if self.weight <= 0:
            raise ValueError(f"weight must be > 0, got {self.weight}")


def retain_batches(n_forget: int, n_retain: int, config: TrainConfig, seed: int) -> list[list[int]]:
    """One retained batch (indices) per forget step, from seeded permutations of the retained set."""
    steps = batch_order(n_forget, config.batch_size, config.epochs, config.seed, config.shuffle)
    rng = np.random.default_rng(seed)
    plan, pool = [], []
    for _, idx in steps:
        while len(pool) < len(idx):
            pool.extend(rng.permutation(n_retain).tolist())
        plan.append(pool[: len(idx)])
        pool = pool[len(idx) :]
    return plan


def gradient_ascent(model: Any, tokenizer: Any, original: LoraState, forget: Sequence[TallRecSample],
                    config: TrainConfig, ga: GradientAscentConfig | None = None, seed: int = 0,
                    retain: Sequence[TallRecSample] = ()) -> tuple[LoraState, float]:  # fmt: skip
    """Unlearned adapter state and wall seconds (``retain`` is required by NegGrad)."""
    ga = ga or GradientAscentConfig()
    if ga.variant == "neggrad" and not retain:
        raise ValueError("NegGrad needs retained samples (its retain term)")
    t0 = time.perf_counter()
    load_lora_state_dict(model, original)
    cfg = config.replace(epochs=ga.epochs, lr=ga.lr or config.lr, seed=derive_seed(seed, "order", ga.variant))
    plan: list[list[int]] = []
    enc_retain: list[Any] = []
    if ga.variant == "neggrad":
        plan = retain_batches(len(forget), len(retain), cfg, derive_seed(seed, "retain", "neggrad"))
        enc_retain = encode_samples(tokenizer, retain, config.max_length)
    step = [0]

    def loss_fn(m: Any, batch: Batch, idx: list[int]) -> Any:
        nll = answer_nll(answer_logits(m, batch), batch)
        forget_loss = (nll if ga.ceiling is None else nll.clamp(max=ga.ceiling)).mean()
        if ga.variant == "ga":
            return -forget_loss
        rb = model_batch(m, tokenizer, [enc_retain[j] for j in plan[step[0]]])
        step[0] += 1
        return answer_nll(answer_logits(m, rb), rb).mean() - ga.weight * forget_loss

    optimise(model, tokenizer, forget, cfg, loss_fn)
    return lora_state_dict(model), time.perf_counter() - t0
