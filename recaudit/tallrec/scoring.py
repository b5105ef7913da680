"""P(Yes) scoring of TALLRec samples, and per-sample answer losses (membership inference).

This is recaudit's one implementation of TALLRec scoring for in-process (possibly PEFT) models:
P(Yes) / (P(Yes) + P(No)) at the first answer token, read from the same token layout the trainer
trains on (``recaudit.tallrec.encoding``), so training and scoring cannot drift apart. Samples
can also be turned into adapter ``Request``s (``TallRecSample.to_request``) and scored by any
``Adapter`` (``score_with_adapter``) — the path for models not held in this process.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np

from recaudit.tallrec.encoding import (
    EncodedSample,
    answer_logits,
    answer_nll,
    encode_samples,
    option_token_ids,
    yes_probability,
)
from recaudit.tallrec.prefix import model_batch
from recaudit.tallrec.prompts import TallRecSample

DEFAULT_MAX_LENGTH = 512


def _chunks(n: int, size: int) -> list[range]:
    if size < 1:
        raise ValueError(f"batch_size must be >= 1, got {size}")
    return [range(i, min(i + size, n)) for i in range(0, n, size)]


def score_samples(
    model: Any,
    tokenizer: Any,
    samples: Sequence[TallRecSample],
    batch_size: int = 8,
    max_length: int = DEFAULT_MAX_LENGTH,
    options: tuple[str, str] = ("Yes", "No"),
) -> np.ndarray:
    """P(options[0]) normalised over both options at the first answer token, one per sample."""
    return sample_outputs(model, tokenizer, samples, batch_size, max_length, options)["p_yes"]


def sample_outputs(
    model: Any,
    tokenizer: Any,
    samples: Sequence[TallRecSample],
    batch_size: int = 8,
    max_length: int = DEFAULT_MAX_LENGTH,
    options: tuple[str, str] = ("Yes", "No"),
    before_batch: Callable[[list[int]], None] | None = None,
) -> dict[str, np.ndarray]:
    """P(Yes) and the per-sample answer loss (mean NLL of the "Yes."/"No." tokens) in one pass.

    ``before_batch(indices)`` runs before each forward (APA uses it to load the per-sample
    aggregated adapter).
    """
    import torch

    if not samples:
        return {"p_yes": np.zeros(0), "loss": np.zeros(0)}
    option_ids = option_token_ids(tokenizer, options)
    encoded = encode_samples(tokenizer, samples, max_length)
    p_yes = np.zeros(len(samples))
    loss = np.zeros(len(samples))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for idx in _chunks(len(samples), batch_size):
                if before_batch is not None:
                    before_batch(list(idx))
                batch = model_batch(model, tokenizer, [encoded[i] for i in idx])
                logits = answer_logits(model, batch)
                p_yes[idx.start : idx.stop] = yes_probability(logits[:, 0, :], option_ids).cpu().numpy()
                loss[idx.start : idx.stop] = answer_nll(logits, batch).cpu().numpy()
    finally:
        model.train(was_training)
    return {"p_yes": p_yes, "loss": loss}


def first_token_logits(
    model: Any, tokenizer: Any, encoded: Sequence[EncodedSample], batch_size: int = 8,
    before_batch: Callable[[list[int]], None] | None = None,
) -> np.ndarray:
    """Full-vocabulary logits at the first answer position, [n, vocab] float32 (distillation targets).

    ``before_batch(indices)`` runs before each forward, as in ``sample_outputs``.
    """
    import torch

    rows = []
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for idx in _chunks(len(encoded), batch_size):
                if before_batch is not None:
                    before_batch(list(idx))
                batch = model_batch(model, tokenizer, [encoded[i] for i in idx], with_answer=False)
                rows.append(answer_logits(model, batch)[:, 0, :].float().cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(rows, axis=0)


def first_token_probs(model: Any, tokenizer: Any, samples: Sequence[TallRecSample], batch_size: int = 8,
                      max_length: int = DEFAULT_MAX_LENGTH,
                      before_batch: Callable[[list[int]], None] | None = None) -> np.ndarray:  # fmt: skip
    """Softmax over the whole vocabulary at the first answer token, [n, vocab] (E2URec's JSD / L2 inputs)."""
    if not samples:
        return np.zeros((0, 0))
    logits = first_token_logits(model, tokenizer, encode_samples(tokenizer, samples, max_length), batch_size, before_batch)
    logits = logits.astype(np.float64)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return (p / p.sum(axis=1, keepdims=True)).astype(np.float32)


def score_with_adapter(adapter: Any, samples: Sequence[TallRecSample], batch_size: int = 8) -> np.ndarray:
    """P(Yes) through any ``recaudit.adapters`` Adapter (e.g. an HFCausalLM on a saved adapter)."""
    requests = [s.to_request() for s in samples]
    out: list[float] = []
    for idx in _chunks(len(requests), batch_size):
        out.extend(adapter.score(requests[idx.start : idx.stop]))
    return np.asarray(out, dtype=float)
