"""Data partitions for sharded unlearning: balanced semantic k-means (APA) and random shards (SISA).

APA (Hu et al., SIGIR 2024) groups semantically similar samples into the same shard so each
shard adapter specialises and a test sample can be routed to the shards it resembles; the shards
are kept (near-)equal in size so no single retraining is expensive.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from recaudit.tallrec.prompts import TallRecSample

Embedder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class Partition:
    """``assignment[i]`` is sample i's shard; ``centroids`` [K, d] are L2-normalised (None for random)."""

    assignment: np.ndarray
    centroids: np.ndarray | None
    n_shards: int

    def members(self, shard: int) -> list[int]:
        """Indices of the samples in ``shard``, in input order."""
        return np.flatnonzero(self.assignment == shard).tolist()

    def sizes(self) -> list[int]:
        return np.bincount(self.assignment, minlength=self.n_shards).tolist()


def sample_texts(samples: Sequence[TallRecSample]) -> list[str]:
    """What a sample's embedding is computed from: its user message (history + target), not the instruction."""
    return [s.prompt_messages[-1][1] for s in samples]


def minilm_embedder(texts: Sequence[str]) -> np.ndarray:
    """all-MiniLM-L6-v2 embeddings (the shared offline encoder)."""
    from recaudit.text.embed import embed

    return embed(list(texts))


def model_embedder(model: Any, tokenizer: Any, batch_size: int = 32, max_length: int = 512) -> Embedder:
    """Embeddings from the recommender's own frozen base LLM: attention-masked mean of its last hidden states.

    APA may partition on "model embeddings of the samples"; this needs no second model (MiniLM may
    not be installed where the LLM runs), and LoRA is switched off so the partition depends on the
    base model alone, never on what an adapter has learned.
    """

    def embed(texts: Sequence[str]) -> np.ndarray:
        import contextlib

        import torch

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        decoder = getattr(base, "model", None)
        if decoder is None:
            raise ValueError(f"embedding='model' needs a decoder at `.model`; {type(base).__name__} has none")
        device = next(model.parameters()).device
        off = model.disable_adapter() if hasattr(model, "disable_adapter") else contextlib.nullcontext()
        rows = []
        was_training = model.training
        model.eval()
        try:
            with off, torch.no_grad():
                for start in range(0, len(texts), batch_size):
                    enc = tokenizer(list(texts[start : start + batch_size]), return_tensors="pt", padding=True,
                                    truncation=True, max_length=max_length, add_special_tokens=False,
                                    padding_side="right")  # fmt: skip
                    mask = enc["attention_mask"].to(device)
                    hidden = decoder(input_ids=enc["input_ids"].to(device), attention_mask=mask).last_hidden_state
                    m = mask.unsqueeze(-1).to(hidden.dtype)
                    rows.append(((hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)).double().cpu().numpy())
        finally:
            model.train(was_training)
        return np.concatenate(rows, axis=0) if rows else np.zeros((0, 1))

    return embed


def embed_samples(samples: Sequence[TallRecSample], embedder: Embedder | None = None) -> np.ndarray:
    """L2-normalised float64 embeddings of the samples (MiniLM unless ``embedder`` is given)."""
    vecs = np.asarray((embedder or minilm_embedder)(sample_texts(samples)), dtype=np.float64)
    if vecs.ndim != 2 or vecs.shape[0] != len(samples):
        raise ValueError(f"embedder returned shape {vecs.shape}, expected ({len(samples)}, d)")
    return normalise_rows(vecs)


def normalise_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero)."""
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def random_partition(n: int, n_shards: int, seed: int) -> Partition:
    """SISA's partition: a seeded permutation cut into ``n_shards`` near-equal shards."""
    _check_shards(n, n_shards)
    perm = np.random.default_rng(seed).permutation(n)
    assignment = np.empty(n, dtype=np.int64)
    for shard, idx in enumerate(np.array_split(perm, n_shards)):
        assignment[idx] = shard
    return Partition(assignment, None, n_shards)


def user_hash_partition(user_ids: Sequence[str], n_shards: int, salt: str = "recaudit-apa") -> Partition:
    """Data-independent shards: shard = SHA-256(salt, user id) mod K, so a user's shard never depends on other data.

    Re-running the whole pipeline on D∖u then gives every other sample the same shard (and every
    untouched shard the same samples in the same order): "whole-pipeline exact" unlearning, where
    k-means is only exact for a fixed partition. Shards are balanced only in expectation.
    """
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    assignment = np.array(
        [int.from_bytes(hashlib.sha256(f"{salt}\x1f{u}".encode("utf-8")).digest()[:8], "big") % n_shards for u in user_ids],
        dtype=np.int64,
    )
    return Partition(assignment, None, n_shards)


def balanced_kmeans(embeddings: np.ndarray, n_shards: int, seed: int, n_iter: int = 30) -> Partition:
    """Balanced k-means: k-means++ init, then capacity-constrained greedy assignment and mean updates.

    Every shard ends with ⌊n/K⌋ or ⌈n/K⌉ samples: (sample, centroid) pairs are visited by
    increasing squared distance and a sample joins the nearest centroid that still has room.
    Stops when the assignment no longer changes (or after ``n_iter`` rounds). Deterministic for
    a seed.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, got shape {x.shape}")
    n = x.shape[0]
    _check_shards(n, n_shards)
    rng = np.random.default_rng(seed)
    centroids = _kmeans_pp(x, n_shards, rng)
    assignment = np.full(n, -1, dtype=np.int64)
    for _ in range(max(1, n_iter)):
        new = _capacity_assign(x, centroids)
        centroids = np.stack([x[new == k].mean(axis=0) for k in range(n_shards)])
        if np.array_equal(new, assignment):
            break
        assignment = new
    return Partition(assignment, normalise_rows(centroids), n_shards)


def shard_centroids(embeddings: np.ndarray, assignment: np.ndarray, n_shards: int) -> np.ndarray:
    """Normalised mean embedding per shard (recomputed after unlearning: no trace of deleted samples)."""
    out = np.zeros((n_shards, embeddings.shape[1]))
    for k in range(n_shards):
        rows = embeddings[assignment == k]
        if len(rows):
            out[k] = rows.mean(axis=0)
    return normalise_rows(out)


def _capacity_assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    n, k = x.shape[0], centroids.shape[0]
    floor, n_big = divmod(n, k)  # n_big shards get floor + 1
    d = ((x[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    order = np.argsort(d.ravel(), kind="stable")
    assignment = np.full(n, -1, dtype=np.int64)
    sizes = np.zeros(k, dtype=np.int64)
    big_used = 0
    left = n
    for flat in order:
        i, c = divmod(int(flat), k)
        if assignment[i] >= 0:
            continue
        if sizes[c] < floor or (sizes[c] == floor and big_used < n_big):
            if sizes[c] == floor:
                big_used += 1
            assignment[i] = c
            sizes[c] += 1
            left -= 1
            if left == 0:
                break
    return assignment


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    centroids = [x[rng.integers(len(x))]]
    for _ in range(1, k):
        d = np.min(((x[:, None, :] - np.stack(centroids)[None]) ** 2).sum(axis=2), axis=1)
        total = d.sum()
        idx = rng.choice(len(x), p=d / total) if total > 0 else rng.integers(len(x))
        centroids.append(x[idx])
    return np.stack(centroids)


def _check_shards(n: int, n_shards: int) -> None:
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    if n < n_shards:
        raise ValueError(f"cannot split {n} samples into {n_shards} shards (need at least one sample per shard)")


def hashing_embedder(texts: Sequence[str]) -> np.ndarray:
    """A model-free bag-of-words embedding (sklearn HashingVectorizer, 512 dims): cheap and deterministic."""
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(n_features=512, alternate_sign=False, norm="l2").transform(list(texts)).toarray()

