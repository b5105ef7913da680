"""E2URec (Wang et al., 2024): LoRA-only unlearning distilled from a remembering and a forgetting teacher.

* Remembering teacher M_r: the original model (base + original adapter).
* Augmented model: the original adapter trained further on the forget data, amplifying what the
  model memorised about it.
* Forgetting teacher M_f (construction unconfirmed by the spec; the authors' released code is
  followed): logits_f = logits_orig − α · g(logits_aug − logits_orig) with g = ReLU (``relu=True``,
  the released code) or the identity (``relu=False``, the spec's plain reading).
* Student: a LoRA on the frozen base, initialised from the original adapter; only LoRA trains.
  Loss per step = w_f · KL(M_f ‖ M_u) on a forget batch + w_r · (KL(M_r ‖ M_u) [+ CE]) on a retained
  batch; the first ``forget_epochs`` epochs use the forget term alone, as the released code does.
  KL is over the full vocabulary at every answer-token position ("Yes." / "No.").

Checkpoint selection: the official code saves a checkpoint every ``log_interval`` steps and its
scripts evaluate one chosen by step (e.g. ``model_3000.pt``); no validation criterion picks it.
recaudit trains a fixed number of epochs and keeps the last step (``E2URecOutput.selected_step``),
the same rule with the step fixed in advance.

Bad-T (Chundawat et al., AAAI 2023; the E2URec paper's distillation baseline) is the same
distillation with ``forgetting_teacher="bad"``: the forget-set teacher is an incompetent model —
here the base LLM with the adapter switched off (the untrained recommender; the paper uses a
randomly initialised network) — and the retained-set teacher the original model, KL terms only.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from recaudit.tallrec.config import TrainConfig, derive_seed
from recaudit.tallrec.encoding import Batch, answer_logits, answer_nll, encode_samples
from recaudit.tallrec.lora import LoraState, load_lora_state_dict, lora_state_dict
from recaudit.tallrec.prefix import model_batch
from recaudit.tallrec.prompts import TallRecSample
from recaudit.tallrec.trainer import batch_order, optimise, train_lora


@dataclass
class E2URecConfig:
    """Teacher construction and loss weights (defaults follow the authors' released code)."""

    alpha: float = 1.0
    relu: bool = True
    w_forget: float = 0.5
    w_retain: float = 0.5
    retain_ce: bool = True
    epochs: int = 2
    forget_epochs: int = 1
    lr: float | None = None
    aug_epochs: int = 2
    aug_lr: float | None = None
    forgetting_teacher: str = "e2urec"
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        if self.w_forget < 0 or self.w_retain < 0 or self.w_forget + self.w_retain == 0:
            raise ValueError(f"w_forget and w_retain must be >= 0 and not both 0, got {self.w_forget}, {self.w_retain}")
        if self.forgetting_teacher not in ("e2urec", "bad"):
            raise ValueError(f"forgetting_teacher must be 'e2urec' or 'bad', got {self.forgetting_teacher!r}")
        if self.epochs < 1 or self.aug_epochs < 1 or not 0 <= self.forget_epochs <= self.epochs:
            raise ValueError("epochs, aug_epochs must be >= 1 and 0 <= forget_epochs <= epochs")


@dataclass
class E2URecOutput:
    """Unlearned adapter, wall seconds (augmentation + distillation) and per-step losses."""

    state: LoraState
    seconds: float
    augmented: LoraState | None
    losses: list[float]
    selected_step: int = 0


def forgetting_logits(original: Any, augmented: Any, alpha: float, relu: bool = True) -> Any:
    """The forgetting teacher's logits: original − α·g(augmented − original), g = ReLU or identity."""
    diff = augmented - original
    if relu:
        diff = diff.clamp(min=0)
    return original - alpha * diff


def kl_to_teacher(teacher_logits: Any, student_logits: Any, valid: Any) -> Any:
    """Mean over valid answer positions of KL(softmax(teacher) ‖ softmax(student))."""
    import torch

    t = torch.log_softmax(teacher_logits.float(), dim=-1)
    s = torch.log_softmax(student_logits.float(), dim=-1)
    kl = (t.exp() * (t - s)).sum(dim=-1)
    return (kl * valid).sum() / valid.sum().clamp(min=1)


def _answer_logits_per_sample(model: Any, tokenizer: Any, encoded: Sequence[Any], batch_size: int) -> list[Any]:
    """Teacher logits at each sample's answer positions, [answer_len, vocab] per sample (no grad)."""
    import torch

    out = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i in range(0, len(encoded), batch_size):
                chunk = encoded[i : i + batch_size]
                logits = answer_logits(model, model_batch(model, tokenizer, chunk))
                out.extend(logits[j, : len(e.answer_ids)].clone() for j, e in enumerate(chunk))
    finally:
        model.train(was_training)
    return out


def _stack_teacher(rows: Sequence[Any], width: int) -> Any:
    import torch

    # on the rows' device: a CPU buffer filled from CUDA rows would cost a device sync per row
    out = torch.zeros((len(rows), width, rows[0].shape[-1]), dtype=rows[0].dtype, device=rows[0].device)
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out


def e2urec_unlearn(model: Any, tokenizer: Any, original: LoraState, forget: Sequence[TallRecSample],
                   retain: Sequence[TallRecSample], config: TrainConfig, e2: E2URecConfig | None = None,
                   seed: int = 0) -> E2URecOutput:  # fmt: skip
    """Run E2URec from the original adapter; only LoRA parameters change."""
    e2 = e2 or E2URecConfig()
    if not forget:
        raise ValueError("forget is empty: nothing to unlearn")
    t0 = time.perf_counter()
    bad = e2.forgetting_teacher == "bad"
    augmented = None
    if not bad:
        # 1. augmented model: the original adapter trained further on the forget data
        load_lora_state_dict(model, original)
        aug_cfg = config.replace(epochs=e2.aug_epochs, lr=e2.aug_lr or config.lr, seed=derive_seed(seed, "order", "e2urec-aug"))
        train_lora(model, tokenizer, forget, aug_cfg)
        augmented = lora_state_dict(model)

    # 2. which retained samples the distillation will visit (seeded), so only their teacher logits are computed
    cfg = config.replace(epochs=e2.epochs, lr=e2.lr or config.lr, seed=derive_seed(seed, "order", "e2urec"))
    steps = batch_order(len(forget), cfg.batch_size, cfg.epochs, cfg.seed, cfg.shuffle)
    rng = np.random.default_rng(derive_seed(seed, "retain", "e2urec"))
    retain_plan: list[list[int]] = []
    pool: list[int] = []
    for epoch, idx in steps:
        if epoch < e2.forget_epochs or not retain or e2.w_retain == 0:
            retain_plan.append([])
            continue
        while len(pool) < len(idx):
            pool.extend(rng.permutation(len(retain)).tolist())
        retain_plan.append(pool[: len(idx)])
        pool = pool[len(idx) :]
    used = sorted({j for plan in retain_plan for j in plan})

    enc_forget = encode_samples(tokenizer, forget, config.max_length)
    enc_retain = encode_samples(tokenizer, [retain[j] for j in used], config.max_length)
    slot = {j: n for n, j in enumerate(used)}
    if bad:
        with model.disable_adapter():
            teacher_f = _answer_logits_per_sample(model, tokenizer, enc_forget, config.batch_size)
        load_lora_state_dict(model, original)
    else:
        aug_logits = _answer_logits_per_sample(model, tokenizer, enc_forget, config.batch_size)
        load_lora_state_dict(model, original)
        orig_forget = _answer_logits_per_sample(model, tokenizer, enc_forget, config.batch_size)
        teacher_f = [forgetting_logits(o, a, e2.alpha, e2.relu) for o, a in zip(orig_forget, aug_logits)]
        del aug_logits, orig_forget
    teacher_r = _answer_logits_per_sample(model, tokenizer, enc_retain, config.batch_size) if used else []

    # 3. student = original adapter (already loaded), distilled towards the two teachers
    step_no = [0]

    def loss_fn(m: Any, batch: Batch, idx: list[int]) -> Any:
        logits = answer_logits(m, batch)
        valid = (batch.answer_ids != -100).float()
        teacher = _stack_teacher([teacher_f[i] for i in idx], logits.shape[1]).to(logits.device)
        loss = e2.w_forget * kl_to_teacher(teacher, logits, valid)
        plan = retain_plan[step_no[0]]
        step_no[0] += 1
        if plan:
            rb = model_batch(m, tokenizer, [enc_retain[slot[j]] for j in plan])
            r_logits = answer_logits(m, rb)
            r_valid = (rb.answer_ids != -100).float()
            r_teacher = _stack_teacher([teacher_r[slot[j]] for j in plan], r_logits.shape[1]).to(r_logits.device)
            retain_term = kl_to_teacher(r_teacher, r_logits, r_valid)
            if e2.retain_ce and not bad:
                retain_term = retain_term + answer_nll(r_logits, rb).mean()
            loss = loss + e2.w_retain * retain_term
        return loss

    out = optimise(model, tokenizer, forget, cfg, loss_fn, encoded=enc_forget)
    return E2URecOutput(lora_state_dict(model), time.perf_counter() - t0, augmented, out.losses, out.n_steps)
