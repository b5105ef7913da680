"""Deterministic LoRA training of the TALLRec recommender (the one trainer every method uses).

Given the same model, samples (in the same order), config and seed, training is bit-for-bit
repeatable on CPU: the batch order comes from a numpy Generator seeded by ``config.seed``,
torch runs with deterministic algorithms, dropout draws from a seeded global RNG, and the LoRA
init is seeded separately (``attach_lora`` / ``reset_lora``). On CUDA the same holds when
``CUBLAS_WORKSPACE_CONFIG`` was set before cuBLAS started (``recaudit unlearn --device`` does it)
and attention runs on SDPA's math kernel, whose backward has no atomic adds (the memory-efficient
kernel's has). The loss is cross-entropy on the answer tokens (``loss_on="answer"``, recaudit's
default) or on the whole prompt + answer sequence (``loss_on="sequence"``, TALLRec's recipe).
``optimise`` is the general loop; unlearning methods pass their own loss. ``train_early_stopping``
adds TALLRec's validation-AUC early stopping (``fit_lora`` picks it when the config asks and a
validation set is given), ``few_shot`` its 16/64/256-sample regime. Inside ``training_progress(report)`` every run
reports steps done / total and the loss at each epoch's end and at most every ``every_s`` seconds.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from recaudit.tallrec.config import TrainConfig
from recaudit.tallrec.encoding import Batch, EncodedSample, answer_logits, answer_nll, encode_samples, sequence_nll
from recaudit.tallrec.prefix import model_batch
from recaudit.tallrec.prompts import TallRecSample

LossFn = Callable[[Any, Batch, list[int]], Any]
"""(model, batch, sample indices into the training list) → scalar loss tensor."""
StepCallback = Callable[["StepInfo"], None]


@dataclass(frozen=True)
class StepInfo:
    """What a step callback sees after each optimiser step."""

    step: int
    epoch: int
    loss: float
    n_steps: int


@dataclass
class TrainOutput:
    """Per-step losses, the number of optimiser steps, and wall seconds."""

    losses: list[float] = field(default_factory=list)
    n_steps: int = 0
    seconds: float = 0.0

    @property
    def final_loss(self) -> float:
        return self.losses[-1] if self.losses else float("nan")


def batch_order(n: int, batch_size: int, epochs: int, seed: int, shuffle: bool = True) -> list[tuple[int, list[int]]]:
    """(epoch, indices) per step: a seeded permutation per epoch, cut into batches (last may be short)."""
    rng = np.random.default_rng(seed)
    steps = []
    for epoch in range(epochs):
        order = rng.permutation(n) if shuffle else np.arange(n)
        steps.extend((epoch, order[i : i + batch_size].tolist()) for i in range(0, n, batch_size))
    return steps


@contextlib.contextmanager
def deterministic_torch(enabled: bool = True, device: Any = None) -> Iterator[None]:
    """Deterministic algorithms inside the block (restored after), so a run repeats bit for bit.

    On a CUDA ``device`` attention is also pinned to SDPA's math kernel: with ``warn_only`` the
    memory-efficient kernel would keep its non-deterministic backward.
    """
    import torch

    if not enabled:
        yield
        return
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        with math_attention() if device is not None and torch.device(device).type == "cuda" else contextlib.nullcontext():
            yield
    finally:
        torch.use_deterministic_algorithms(prev, warn_only=prev_warn)


def math_attention() -> Any:
    """A context that restricts ``scaled_dot_product_attention`` to the math kernel."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.MATH])


ProgressFn = Callable[[str], None]
_PROGRESS: contextvars.ContextVar[tuple[ProgressFn, float] | None] = contextvars.ContextVar("recaudit_train_progress", default=None)


@contextlib.contextmanager
def training_progress(report: ProgressFn | None, every_s: float = 30.0) -> Iterator[None]:
    """Inside the block every ``optimise`` run reports its progress through ``report`` (None: silent)."""
    token = _PROGRESS.set((report, every_s) if report is not None else None)
    try:
        yield
    finally:
        _PROGRESS.reset(token)


class _ProgressLine:
    """Rate-limited progress lines of one training run: each epoch's end, else at most every ``every_s``."""

    def __init__(self, n_samples: int, n_steps: int, epochs: int):
        self.target = _PROGRESS.get()
        self.n_samples, self.n_steps, self.epochs = n_samples, n_steps, epochs
        self.t0 = self.last = time.perf_counter()
        self.since: list[float] = []

    def step(self, step: int, epoch: int, next_epoch: int | None, loss: float) -> None:
        if self.target is None:
            return
        report, every_s = self.target
        self.since.append(loss)
        now = time.perf_counter()
        if next_epoch == epoch and now - self.last < every_s:
            return
        mean = sum(self.since) / len(self.since)
        report(f"  step {step + 1}/{self.n_steps} (epoch {epoch + 1}/{self.epochs}, {self.n_samples} samples), "
               f"loss {mean:.4f}, {now - self.t0:.1f} s")  # fmt: skip
        self.last, self.since = now, []


def trainable_parameters(model: Any) -> list[Any]:
    """The parameters that require grad, in a fixed (named) order; must all be LoRA."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no trainable parameters; call attach_lora first")
    bad = [n for n, _ in named if "lora_" not in n]
    if bad:
        raise ValueError(f"only LoRA parameters may be trained, but these require grad: {bad[:3]}")
    return [p for _, p in named]


def optimise(
    model: Any,
    tokenizer: Any,
    samples: Sequence[TallRecSample],
    config: TrainConfig,
    loss_fn: LossFn,
    lr_scale: float = 1.0,
    step_callback: StepCallback | None = None,
    encoded: Sequence[EncodedSample] | None = None,
) -> TrainOutput:
    """Run AdamW on the model's LoRA parameters with ``loss_fn`` over seeded batches of ``samples``."""
    import torch

    if not samples:
        raise ValueError("samples is empty: nothing to train on")
    if lr_scale <= 0 or not math.isfinite(lr_scale):
        raise ValueError(f"lr_scale must be a positive finite number, got {lr_scale}")
    encoded = list(encoded) if encoded is not None else encode_samples(tokenizer, samples, config.max_length)
    params = trainable_parameters(model)
    opt = torch.optim.AdamW(params, lr=config.lr * lr_scale, weight_decay=config.weight_decay)
    steps = batch_order(len(samples), config.batch_size, config.epochs, config.seed, config.shuffle)
    out = TrainOutput()
    t0 = time.perf_counter()
    was_training = model.training
    progress = _ProgressLine(len(samples), len(steps), config.epochs)
    device = params[0].device
    with deterministic_torch(config.deterministic, device):
        torch.manual_seed(config.seed)  # dropout masks, if lora_dropout > 0
        model.train()
        try:
            for step, (epoch, idx) in enumerate(steps):
                batch = model_batch(model, tokenizer, [encoded[i] for i in idx])
                loss = loss_fn(model, batch, idx)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, config.grad_clip)
                opt.step()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(f"training loss became {value} at step {step}; lower lr")
                out.losses.append(value)
                progress.step(step, epoch, steps[step + 1][0] if step + 1 < len(steps) else None, value)
                out.n_steps = step + 1
                if step_callback is not None:
                    try:
                        step_callback(StepInfo(step=step, epoch=epoch, loss=value, n_steps=len(steps)))
                    except StopTraining:
                        break
        finally:
            model.train(was_training)
    out.seconds = time.perf_counter() - t0
    return out


class StopTraining(Exception):
    """Raised by a step callback to end ``optimise`` after the current step (early stopping)."""


def answer_loss(config: TrainConfig) -> LossFn:
    """The training objective: mean answer-token cross-entropy, or whole-sequence CE with ``loss_on="sequence"``."""
    first_only = config.answer_loss == "first"

    def loss_fn(model: Any, batch: Batch, idx: list[int]) -> Any:
        if config.loss_on == "sequence":
            return sequence_nll(model, batch).mean()
        return answer_nll(answer_logits(model, batch), batch, first_only=first_only).mean()

    return loss_fn


def train_lora(
    model: Any,
    tokenizer: Any,
    samples: Sequence[TallRecSample],
    config: TrainConfig,
    lr_scale: float = 1.0,
    step_callback: StepCallback | None = None,
) -> TrainOutput:
    """Fine-tune the LoRA adapter of ``model`` (a PEFT model) in place on ``samples``.

    The adapter is trained from whatever state it holds; call ``reset_lora(model, seed)`` first
    for a from-scratch run. ``lr_scale`` multiplies ``config.lr`` (federated learning speeds).
    """
    return optimise(model, tokenizer, samples, config, answer_loss(config), lr_scale, step_callback)


def few_shot(samples: Sequence[TallRecSample], n: int, seed: int = 0) -> list[TallRecSample]:
    """TALLRec's few-shot regime (16 / 64 / 256 …): ``n`` training samples drawn by a seeded shuffle, in input order."""
    if n < 1:
        raise ValueError(f"few-shot size must be >= 1, got {n}")
    if n > len(samples):
        raise ValueError(f"few-shot size {n} exceeds the {len(samples)} training samples")
    pick = np.random.default_rng(seed).permutation(len(samples))[:n]
    return [samples[i] for i in sorted(pick)]  # input order kept: the trainer shuffles, shards keep their order


@dataclass
class EarlyStopOutput:
    """Training with validation-AUC early stopping: the best step, its AUC, every evaluation."""

    train: TrainOutput
    best_step: int
    best_auc: float
    history: list[tuple[int, float]] = field(default_factory=list)
    stopped_early: bool = False


def train_early_stopping(model: Any, tokenizer: Any, samples: Sequence[TallRecSample], valid: Sequence[TallRecSample],
                         config: TrainConfig, eval_every: int | None = None, patience: int = 10) -> EarlyStopOutput:  # fmt: skip
    """Train, evaluate validation AUC every ``eval_every`` steps, stop after ``patience`` evaluations without
    improvement and load the best adapter (TALLRec: HF Trainer, ``metric_for_best_model="eval_auc"``,
    ``EarlyStoppingCallback(10)``, eval every 10 steps for ≤ 128 samples else samples/128·5)."""
    from recaudit.tallrec.evaluate import evaluate_scores
    from recaudit.tallrec.lora import load_lora_state_dict, lora_state_dict
    from recaudit.tallrec.scoring import score_samples

    if not valid or len({s.label for s in valid}) < 2:
        raise ValueError("early stopping needs validation samples with both labels")
    if eval_every is None:
        n_steps = math.ceil(len(samples) / config.batch_size)
        eval_every = max(1, min(10, n_steps) if len(samples) <= 128 else int(len(samples) / 128 * 5))
    labels = [s.label for s in valid]
    best = {"auc": -math.inf, "step": 0, "state": lora_state_dict(model), "bad": 0}
    history: list[tuple[int, float]] = []

    def check(info: StepInfo) -> None:
        if (info.step + 1) % eval_every and info.step + 1 != info.n_steps:
            return
        auc = evaluate_scores(labels, score_samples(model, tokenizer, valid, config.batch_size, config.max_length))["auc"]
        history.append((info.step + 1, auc))
        if auc > best["auc"]:
            best.update(auc=auc, step=info.step + 1, state=lora_state_dict(model), bad=0)
        else:
            best["bad"] += 1
            if best["bad"] >= patience:
                raise StopTraining

    out = train_lora(model, tokenizer, samples, config, step_callback=check)
    load_lora_state_dict(model, best["state"])
    return EarlyStopOutput(out, int(best["step"]), float(best["auc"]), history, out.n_steps < len(
        batch_order(len(samples), config.batch_size, config.epochs, config.seed, config.shuffle)))


def fit_lora(model: Any, tokenizer: Any, samples: Sequence[TallRecSample], config: TrainConfig,
             valid: Sequence[TallRecSample] = ()) -> TrainOutput:  # fmt: skip
    """``train_lora``, or ``train_early_stopping`` when ``config.early_stop_patience`` > 0 and ``valid`` is given."""
    if config.early_stop_patience and valid:
        return train_early_stopping(model, tokenizer, samples, valid, config, config.eval_every,
                                    config.early_stop_patience).train  # fmt: skip
    return train_lora(model, tokenizer, samples, config)


class TallRecTrainer:
    """Object form of the trainer: a base model with one LoRA adapter, trained and scored by config."""

    def __init__(self, model: Any, tokenizer: Any, config: TrainConfig | None = None):
        from recaudit.tallrec.lora import attach_lora

        self.config = config or TrainConfig()
        self.tokenizer = tokenizer
        self.model = model if hasattr(model, "peft_config") else attach_lora(model, self.config)

    def reset(self, seed: int | None = None) -> None:
        """Re-initialise the adapter (from ``seed``, default the config's)."""
        from recaudit.tallrec.lora import reset_lora

        reset_lora(self.model, self.config.seed if seed is None else seed)

    def fit(self, samples: Sequence[TallRecSample], **kwargs: Any) -> TrainOutput:
        """Train the adapter in place (see ``train_lora``)."""
        return train_lora(self.model, self.tokenizer, samples, self.config, **kwargs)

    def score(self, samples: Sequence[TallRecSample], batch_size: int | None = None) -> np.ndarray:
        """P(Yes) per sample."""
        from recaudit.tallrec.scoring import score_samples

        return score_samples(self.model, self.tokenizer, samples, batch_size or self.config.batch_size)

    def state(self) -> dict:
        """The adapter's LoRA tensors."""
        from recaudit.tallrec.lora import lora_state_dict

        return lora_state_dict(self.model)
