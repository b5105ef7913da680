"""SISA (Bourtoule et al., S&P 2021) for the TALLRec recommender: random shards, averaged predictions.

Sharded, Isolated, Sliced, Aggregated training without slicing: the training data is split at
random into K shards, one LoRA adapter is trained per shard, and a prediction is the mean of the
K shards' P(Yes) — K model calls per sample, the inference cost APA's adapter merging removes.
Unlearning retrains only the shards that held deleted samples (exact).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recaudit.tallrec.config import TrainConfig
from recaudit.tallrec.lora import load_lora_state_dict
from recaudit.tallrec.prompts import TallRecSample
from recaudit.tallrec.scoring import score_samples
from recaudit.unlearning.partition import random_partition
from recaudit.unlearning.shards import ShardedLora, UnlearnStats


class SISA:
    """K random shards, one adapter each; P(Yes) is the shards' mean."""

    def __init__(self, model: Any, tokenizer: Any, config: TrainConfig, workdir: str | Path, n_shards: int = 4,
                 seed: int = 0, progress: Callable[[str], None] | None = None,
                 valid: Sequence[TallRecSample] = ()):  # fmt: skip
        if n_shards < 1:
            raise ValueError(f"n_shards must be >= 1, got {n_shards}")
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.n_shards = n_shards
        self.seed = seed
        self.shards = ShardedLora(model, tokenizer, config, workdir, seed=seed, progress=progress, valid=valid)

    def fit(self, samples: Sequence[TallRecSample]) -> float:
        """Random partition and one adapter per shard; returns training seconds."""
        part = random_partition(len(samples), self.n_shards, self.seed)
        return self.shards.fit([[samples[i] for i in part.members(k)] for k in range(self.n_shards)])

    def unlearn(self, forget: Callable[[TallRecSample], bool]) -> UnlearnStats:
        """Delete matching samples and retrain the shards that held them."""
        return self.shards.unlearn(forget)

    def predict(self, samples: Sequence[TallRecSample]) -> np.ndarray:
        """Mean P(Yes) over the K shard adapters (K model calls per sample)."""
        probs = []
        for k in range(self.n_shards):
            load_lora_state_dict(self.model, self.shards.state(k))
            probs.append(score_samples(self.model, self.tokenizer, samples, self.config.batch_size, self.config.max_length))
        return np.mean(probs, axis=0)

    def vocab_probs(self, samples: Sequence[TallRecSample]) -> np.ndarray:
        """[n, V] mean of the K shards' first-answer-token distributions (the ensemble's distribution)."""
        from recaudit.tallrec.scoring import first_token_probs

        out = None
        for k in range(self.n_shards):
            load_lora_state_dict(self.model, self.shards.state(k))
            p = first_token_probs(self.model, self.tokenizer, samples, self.config.batch_size, self.config.max_length)
            out = p / self.n_shards if out is None else out + p / self.n_shards
        return out
