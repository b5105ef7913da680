"""Single-adapter training: the original model (all data) and the retrain-from-scratch gold standard."""

from __future__ import annotations

import time
from typing import Any, Sequence

import numpy as np

from recaudit.tallrec.config import TrainConfig, derive_seed
from recaudit.tallrec.lora import LoraState, load_lora_state_dict, lora_state_dict, reset_lora
from recaudit.tallrec.prompts import TallRecSample
from recaudit.tallrec.scoring import score_samples
from recaudit.tallrec.trainer import fit_lora


def train_single(model: Any, tokenizer: Any, samples: Sequence[TallRecSample], config: TrainConfig, seed: int,
                 valid: Sequence[TallRecSample] = ()) -> tuple[LoraState, float]:  # fmt: skip
    """One adapter trained from scratch on ``samples`` (init and order seeded from ``seed``); (state, seconds).

    Retraining on the retained data with the same seed is the exact-unlearning reference every
    other method is compared with. With ``valid`` and ``config.early_stop_patience``, the step with
    the best validation AUC is kept (``fit_lora``).
    """
    t0 = time.perf_counter()
    reset_lora(model, derive_seed(seed, "init", "single"))
    fit_lora(model, tokenizer, samples, config.replace(seed=derive_seed(seed, "order", "single")), valid)
    return lora_state_dict(model), time.perf_counter() - t0


def predict_state(model: Any, tokenizer: Any, state: LoraState, samples: Sequence[TallRecSample], config: TrainConfig) -> np.ndarray:
    """P(Yes) of ``samples`` with ``state`` loaded into the model's adapter."""
    load_lora_state_dict(model, state)
    return score_samples(model, tokenizer, samples, config.batch_size, config.max_length)


def vocab_state(model: Any, tokenizer: Any, state: LoraState, samples: Sequence[TallRecSample], config: TrainConfig) -> np.ndarray:
    """[n, V] first-answer-token distribution of ``samples`` with ``state`` loaded."""
    from recaudit.tallrec.scoring import first_token_probs

    load_lora_state_dict(model, state)
    return first_token_probs(model, tokenizer, samples, config.batch_size, config.max_length)
