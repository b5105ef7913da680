"""RecEraser (Chen et al., WWW 2022), the APA paper's strongest baseline, on the TALLRec recommender.

* Partition: balanced clustering of *users* (RecEraser's user-based partition, UBP: balanced
  k-means on user embeddings — here the mean embedding of a user's samples), so each user's data
  lives in one shard.
* One LoRA adapter per shard (``ShardedLora``, exact retraining of affected shards).
* Attention-based adaptive aggregation (RecEraser's AAM): a small attention network weighs the
  K shard models per sample, ``α_k = softmax_k(vᵀ tanh(W h_k + b))`` and the prediction is
  ``σ(Σ_k α_k z_k)``, trained with BCE on (retained) training samples after the shards, and
  retrained after every unlearning request (cheap: the shard models are frozen).

Deliberate difference (named in results as ``variant``): RecEraser's AAM attends over the sub-
models' user/item *embeddings*; an LLM recommender has no such embeddings, so ``h_k`` is the shard's
Yes/No log-odds ``z_k`` plus the sample's cosine similarity to the shard's centroid. Like SISA,
inference costs K model calls per sample.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from recaudit.tallrec.config import TrainConfig, derive_seed
from recaudit.tallrec.evaluate import EPS
from recaudit.tallrec.prompts import TallRecSample
from recaudit.unlearning.apa import _user_partition
from recaudit.unlearning.partition import Embedder, embed_samples, sample_texts, shard_centroids
from recaudit.unlearning.retrain import predict_state
from recaudit.unlearning.shards import ShardedLora, UnlearnStats, sample_key

VARIANT = "AAM over the shards' Yes/No log-odds and centroid similarity (no user/item embeddings in an LLM)"


def log_odds(p: np.ndarray) -> np.ndarray:
    """logit(p), clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


class AttentionAggregator:
    """RecEraser's attention aggregation over K shard outputs: α = softmax(vᵀ tanh(W h + b)), p = σ(Σ α z)."""

    def __init__(self, hidden: int = 8, epochs: int = 200, lr: float = 0.05, seed: int = 0):
        self.hidden, self.epochs, self.lr, self.seed = hidden, epochs, lr, seed
        self.params: dict[str, Any] = {}

    @staticmethod
    def _forward(params: dict[str, Any], z: Any, sim: Any) -> tuple[Any, Any]:
        import torch

        h = torch.stack([z, sim], dim=-1)  # [n, K, 2]
        scores = torch.tanh(h @ params["W"] + params["b"]) @ params["v"]  # [n, K]
        alpha = torch.softmax(scores, dim=-1)
        return (alpha * z).sum(dim=-1), alpha

    def fit(self, z: np.ndarray, sim: np.ndarray, labels: np.ndarray) -> "AttentionAggregator":
        """Full-batch Adam on BCE; deterministic for a seed."""
        import torch

        gen = torch.Generator().manual_seed(int(self.seed))
        params = {
            "W": (torch.randn(2, self.hidden, generator=gen, dtype=torch.float64) * 0.1).requires_grad_(),
            "b": torch.zeros(self.hidden, dtype=torch.float64, requires_grad=True),
            "v": (torch.randn(self.hidden, generator=gen, dtype=torch.float64) * 0.1).requires_grad_(),
        }
        zt, st = torch.as_tensor(z, dtype=torch.float64), torch.as_tensor(sim, dtype=torch.float64)
        y = torch.as_tensor(labels, dtype=torch.float64)
        opt = torch.optim.Adam(params.values(), lr=self.lr)
        for _ in range(self.epochs):
            logit, _ = self._forward(params, zt, st)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
        self.params = {k: v.detach() for k, v in params.items()}
        return self

    def predict(self, z: np.ndarray, sim: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(P(Yes) [n], attention weights [n, K])."""
        import torch

        if not self.params:
            raise RuntimeError("AttentionAggregator.fit must run before predict")
        with torch.no_grad():
            logit, alpha = self._forward(self.params, torch.as_tensor(z, dtype=torch.float64),
                                         torch.as_tensor(sim, dtype=torch.float64))  # fmt: skip
        return torch.sigmoid(logit).numpy(), alpha.numpy()


class RecEraser:
    """User-balanced shards, one adapter each, attention aggregation trained on retained samples."""

    def __init__(self, model: Any, tokenizer: Any, config: TrainConfig, workdir: str | Path, n_shards: int = 4,
                 seed: int = 0, embedder: Embedder | None = None, agg_samples: int = 512,
                 progress: Callable[[str], None] | None = None, valid: Sequence[TallRecSample] = ()):  # fmt: skip
        if n_shards < 1:
            raise ValueError(f"n_shards must be >= 1, got {n_shards}")
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.n_shards, self.seed, self.embedder, self.agg_samples = n_shards, seed, embedder, agg_samples
        self.shards = ShardedLora(model, tokenizer, config, workdir, seed=seed, progress=progress, valid=valid)
        self.aggregator = AttentionAggregator(seed=derive_seed(seed, "receraser-aam") % (2**31))
        self._emb: dict[tuple, np.ndarray] = {}
        self._query_emb: dict[str, np.ndarray] = {}
        self.centroids: np.ndarray | None = None
        self.aggregator_seconds = 0.0

    def fit(self, samples: Sequence[TallRecSample]) -> float:
        """Partition users, train the shards, then the aggregator; returns seconds."""
        emb = embed_samples(samples, self.embedder)
        part = _user_partition(samples, emb, self.n_shards, self.seed, 30)
        self._emb = {sample_key(s): e for s, e in zip(samples, emb)}
        seconds = self.shards.fit([[samples[i] for i in part.members(k)] for k in range(self.n_shards)])
        return seconds + self._fit_aggregator()

    def unlearn(self, forget: Callable[[TallRecSample], bool]) -> UnlearnStats:
        """Retrain the affected shards, then the aggregator on the remaining samples (its time included)."""
        stats = self.shards.unlearn(forget)
        self._emb = {k: v for k, v in self._emb.items() if k in self.shards.samples}
        stats.seconds += self._fit_aggregator()
        return stats

    def _features(self, samples: Sequence[TallRecSample], emb: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        z = np.stack([log_odds(predict_state(self.model, self.tokenizer, self.shards.state(k), samples, self.config))
                      for k in range(self.n_shards)], axis=1)  # fmt: skip
        if emb is None:  # query embeddings by text, computed once (predict runs on several sets)
            emb = self.embed_queries(samples)
        return z, emb @ self.centroids.T  # type: ignore[union-attr]

    def embed_queries(self, samples: Sequence[TallRecSample]) -> np.ndarray:
        """Embeddings of query samples, cached by text (call first to keep them out of an inference timing)."""
        texts = sample_texts(samples)
        todo = {t: s for t, s in zip(texts, samples) if t not in self._query_emb}
        if todo:
            self._query_emb.update(zip(todo, embed_samples(list(todo.values()), self.embedder)))
        return np.stack([self._query_emb[t] for t in texts]) if texts else np.zeros((0, 1))

    def _fit_aggregator(self) -> float:
        t0 = time.perf_counter()
        keys = [k for info in self.shards.shards for k in info.keys]
        assignment = np.array([info.shard for info in self.shards.shards for _ in info.keys], dtype=np.int64)
        self.centroids = shard_centroids(np.stack([self._emb[k] for k in keys]), assignment, self.n_shards)
        rng = np.random.default_rng(derive_seed(self.seed, "receraser-agg"))
        pick = sorted(rng.choice(len(keys), size=min(self.agg_samples, len(keys)), replace=False).tolist())
        chosen = [self.shards.samples[keys[i]] for i in pick]
        z, sim = self._features(chosen, np.stack([self._emb[keys[i]] for i in pick]))
        self.aggregator.fit(z, sim, np.array([s.label for s in chosen]))
        self.aggregator_seconds = time.perf_counter() - t0
        return self.aggregator_seconds

    def predict(self, samples: Sequence[TallRecSample]) -> np.ndarray:
        """P(Yes) from the attention-weighted shard log-odds (K model calls per sample)."""
        if not samples:
            return np.zeros(0)
        z, sim = self._features(samples)
        return self.aggregator.predict(z, sim)[0]
