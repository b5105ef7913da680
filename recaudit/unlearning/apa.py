"""APA — Adapter Partition and Aggregation (Hu et al., SIGIR 2024): exact, efficient LLMRec unlearning.

* Partition: balanced k-means on sample embeddings → K semantically coherent shards (the paper);
  ``partition="user_hash"`` (an extension) hashes the user id instead, so the partition does not
  depend on anyone's data and re-running the whole pipeline without a user reproduces it.
* Every shard's LoRA starts from the same init (``shards.shard_seeds``): APA(D) averages A and B
  separately, which mixes unrelated bases when the shards start from different random A.
* One LoRA adapter per shard (``ShardedLora``); unlearning deletes samples and retrains only the
  shards that held them — exact, since a shard is always trained the same way.
* Sample-adaptive aggregation at inference: weights from the test sample's cosine similarity to
  the shard centroids, softmax with temperature over the ``top_k`` most similar shards and zero
  elsewhere; the adapters are merged into one, so a prediction costs one model call:

  - decomposition, APA(D):        A = Σ_k w_k A_k,  B = Σ_k w_k B_k   (ΔW = B A, cross terms included)
  - non-decomposition, APA(ND):   ΔW = Σ_k w_k B_k A_k, realised exactly as one rank-(r·m) LoRA with
    B' = [w_1 B_1 … w_m B_m] and A' = [A_1; …; A_m] over the m retrieved shards (B'A' = Σ w_k B_k A_k),
    with alpha scaled by m so the LoRA scaling alpha/r is unchanged.

``predict`` evaluates both forms for a whole batch at once: inside ``per_sample_lora`` each
adapted module applies, row by row, the sample's own merged update (D: (Σ w B)(Σ w A) x; ND:
Σ w B A x over all K shards, zero weights adding nothing) from shard tensors held on the model's
device, so a batch of samples with different weights costs one forward, as one merged adapter per
sample would cost one forward each. ``predict_merged`` is that per-sample form, kept as the
reference the batched one is tested against.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence

import numpy as np

from recaudit.tallrec.config import TrainConfig
from recaudit.tallrec.lora import LoraState, add_adapter, load_lora_state_dict
from recaudit.tallrec.prompts import TallRecSample
from recaudit.tallrec.scoring import sample_outputs, score_samples
from recaudit.unlearning.partition import (
    Embedder,
    Partition,
    balanced_kmeans,
    embed_samples,
    sample_texts,
    shard_centroids,
    user_hash_partition,
)
from recaudit.unlearning.shards import ShardedLora, UnlearnStats, sample_key

Mode = Literal["d", "nd"]
ND_ADAPTER = "apa_nd"


def aggregation_weights(embeddings: np.ndarray, centroids: np.ndarray, top_k: int, temperature: float) -> np.ndarray:
    """[n, K] weights: softmax(cosine / temperature) over each row's ``top_k`` nearest shards, 0 elsewhere.

    Rows sum to 1. Ties in similarity are broken by the lower shard index (stable sort).
    """
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    n_shards = centroids.shape[0]
    top_k = min(max(1, int(top_k)), n_shards)
    sims = np.asarray(embeddings, dtype=np.float64) @ np.asarray(centroids, dtype=np.float64).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :top_k]
    weights = np.zeros_like(sims)
    picked = np.take_along_axis(sims, order, axis=1) / temperature
    picked = np.exp(picked - picked.max(axis=1, keepdims=True))
    np.put_along_axis(weights, order, picked / picked.sum(axis=1, keepdims=True), axis=1)
    return weights


def aggregate_decomposed(states: Sequence[LoraState], weights: Sequence[float]) -> LoraState:
    """APA(D): every LoRA tensor (A and B separately) is the weighted sum of the shards' tensors."""
    import torch

    _check_states(states, weights)
    out: LoraState = {}
    for key in states[0]:
        acc = torch.zeros_like(states[0][key])
        for st, w in zip(states, weights):
            if w != 0.0:
                acc = acc + float(w) * st[key]
        out[key] = acc
    return out


def aggregate_rank_concat(states: Sequence[LoraState], weights: Sequence[float]) -> LoraState:
    """APA(ND) as one LoRA of rank r·m: A' stacks the A_k (rows), B' stacks w_k·B_k (columns).

    B'A' = Σ_k w_k B_k A_k exactly (in exact arithmetic); load it into an adapter created with
    rank r·m and alpha·m (``APA.nd_adapter``).
    """
    import torch

    _check_states(states, weights)
    out: LoraState = {}
    for key in states[0]:
        if ".lora_A." in key:
            out[key] = torch.cat([st[key] for st in states], dim=0)
        elif ".lora_B." in key:
            out[key] = torch.cat([float(w) * st[key] for st, w in zip(states, weights)], dim=1)
        else:
            raise ValueError(f"unexpected LoRA tensor {key!r}")
    return out


def delta_weights(state: LoraState, scaling: float) -> dict[str, Any]:
    """ΔW = scaling · B A per adapted module (for checking the aggregation algebra)."""
    out = {}
    for key, a in state.items():
        if ".lora_A." in key:
            b = state[key.replace(".lora_A.", ".lora_B.")]
            out[key.replace(".lora_A.weight", "")] = scaling * (b.double() @ a.double())
    return out


@dataclass
class APAConfig:
    """APA settings: K shards, top-k retrieval, softmax temperature, k-means iterations.

    ``partition``: "kmeans" (the paper: balanced k-means on samples); "user_kmeans" (an extension:
    cluster *users* by their mean sample embedding, balanced by user count, so forgetting a user
    retrains one shard; ``group_by_user=True`` is the old spelling); "user_hash" (an extension:
    shard = hash of the user id, data-independent, so exactness holds for the whole pipeline, not
    only for a fixed partition). ``shared_init=False`` gives each shard its own LoRA init (the old
    behaviour, which breaks APA(D)).
    """

    n_shards: int = 4
    top_k: int = 2
    temperature: float = 0.1
    kmeans_iters: int = 30
    group_by_user: bool = False
    partition: Literal["kmeans", "user_kmeans", "user_hash"] = "kmeans"
    shared_init: bool = True

    @property
    def exactness(self) -> str:
        """Which exactness the partition gives: "whole-pipeline exact" or "fixed-partition exact"."""
        return "whole-pipeline exact" if self.partition == "user_hash" else "fixed-partition exact"

    def __post_init__(self) -> None:
        if self.group_by_user:
            self.partition = "user_kmeans"
        if self.partition not in ("kmeans", "user_kmeans", "user_hash"):
            raise ValueError(f"partition must be kmeans, user_kmeans or user_hash, got {self.partition!r}")
        if self.n_shards < 1 or self.top_k < 1:
            raise ValueError(f"n_shards and top_k must be >= 1, got {self.n_shards}, {self.top_k}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class APA:
    """Partition → shard adapters → sample-adaptive aggregation; ``unlearn`` retrains affected shards."""

    def __init__(self, model: Any, tokenizer: Any, config: TrainConfig, workdir: str | Path, apa: APAConfig | None = None,
                 seed: int = 0, embedder: Embedder | None = None, progress: Callable[[str], None] | None = None,
                 valid: Sequence[TallRecSample] = ()):  # fmt: skip
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.apa = apa or APAConfig()
        self.seed = seed
        self.embedder = embedder
        self.shards = ShardedLora(model, tokenizer, config, workdir, seed=seed, progress=progress,
                                  shared_init=self.apa.shared_init, valid=valid)  # fmt: skip
        self.partition: Partition | None = None
        self.centroids: np.ndarray | None = None
        self._embeddings: dict[tuple, np.ndarray] = {}
        # query embeddings by text: D and ND (and repeated calls) route a sample the same way, embedded once
        self._query_embeddings: dict[str, np.ndarray] = {}

    def fit(self, samples: Sequence[TallRecSample]) -> float:
        """Partition ``samples`` semantically and train one adapter per shard; returns training seconds."""
        emb = embed_samples(samples, self.embedder)
        if self.apa.partition == "user_kmeans":
            self.partition = _user_partition(samples, emb, self.apa.n_shards, self.seed, self.apa.kmeans_iters)
        elif self.apa.partition == "user_hash":
            self.partition = user_hash_partition([s.user_id for s in samples], self.apa.n_shards, f"apa/{self.seed}")
        else:
            self.partition = balanced_kmeans(emb, self.apa.n_shards, self.seed, self.apa.kmeans_iters)
        self._embeddings = {sample_key(s): e for s, e in zip(samples, emb)}
        seconds = self.shards.fit([[samples[i] for i in self.partition.members(k)] for k in range(self.apa.n_shards)])
        self._refresh_centroids()
        return seconds

    def unlearn(self, forget: Callable[[TallRecSample], bool]) -> UnlearnStats:
        """Exact unlearning: delete matching samples, retrain their shards, recompute those centroids."""
        stats = self.shards.unlearn(forget)
        t0 = time.perf_counter()
        self._embeddings = {k: v for k, v in self._embeddings.items() if k in self.shards.samples}
        self._refresh_centroids()
        stats.seconds += time.perf_counter() - t0
        return stats

    def weights(self, samples: Sequence[TallRecSample]) -> np.ndarray:
        """[n, K] aggregation weights of test samples."""
        if self.centroids is None:
            raise RuntimeError("APA.fit must run before weights/score")
        texts = sample_texts(samples)
        todo = {t: s for t, s in zip(texts, samples) if t not in self._query_embeddings}
        if todo:
            self._query_embeddings.update(zip(todo, embed_samples(list(todo.values()), self.embedder)))
        emb = np.stack([self._query_embeddings[t] for t in texts]) if texts else np.zeros((0, self.centroids.shape[1]))
        return aggregation_weights(emb, self.centroids, self.apa.top_k, self.apa.temperature)

    def shard_predictions(self, samples: Sequence[TallRecSample]) -> np.ndarray:
        """[K, n] P(Yes) of each shard adapter alone (the sub-models before aggregation)."""
        from recaudit.unlearning.retrain import predict_state

        return np.stack([predict_state(self.model, self.tokenizer, self.shards.state(k), samples, self.config)
                         for k in range(self.apa.n_shards)])  # fmt: skip

    def aggregated_state(self, weights: np.ndarray, mode: Mode) -> LoraState:
        """The merged adapter for one weight vector (over the shards with non-zero weight)."""
        shards = [k for k in np.argsort(-weights, kind="stable") if weights[k] > 0]
        states = [self.shards.state(int(k)) for k in shards]
        w = [float(weights[k]) for k in shards]
        if mode == "d":
            return aggregate_decomposed(states, w)
        if mode == "nd":
            return _pad_rank(aggregate_rank_concat(states, w), self._nd_rank())
        raise ValueError(f"mode must be 'd' or 'nd', got {mode!r}")

    def predict(self, samples: Sequence[TallRecSample], mode: Mode = "d") -> np.ndarray:
        """P(Yes) with each sample's aggregated adapter, whole batches per forward (see the module docstring)."""
        if mode not in ("d", "nd"):
            raise ValueError(f"mode must be 'd' or 'nd', got {mode!r}")
        weights = self.weights(samples)
        if not len(samples):
            return np.zeros(0)
        device = next(self.model.parameters()).device
        states = [self.shards.state(k) for k in range(self.apa.n_shards)]
        self.model.set_adapter("default")
        with per_sample_lora(self.model, states, mode) as set_weights:
            w = torch_tensor(weights, device)
            return sample_outputs(self.model, self.tokenizer, samples, self.config.batch_size, self.config.max_length,
                                  before_batch=lambda idx: set_weights(w[idx]))["p_yes"]  # fmt: skip

    def vocab_probs(self, samples: Sequence[TallRecSample], mode: Mode = "d") -> np.ndarray:
        """[n, V] first-answer-token distribution with each sample's aggregated adapter (E2URec's JSD / L2)."""
        from recaudit.tallrec.scoring import first_token_probs

        weights = self.weights(samples)
        if not len(samples):
            return np.zeros((0, 0))
        device = next(self.model.parameters()).device
        states = [self.shards.state(k) for k in range(self.apa.n_shards)]
        self.model.set_adapter("default")
        with per_sample_lora(self.model, states, mode) as set_weights:
            w = torch_tensor(weights, device)
            return first_token_probs(self.model, self.tokenizer, samples, self.config.batch_size, self.config.max_length,
                                     before_batch=lambda idx: set_weights(w[idx]))  # fmt: skip

    def predict_merged(self, samples: Sequence[TallRecSample], mode: Mode = "d") -> np.ndarray:
        """P(Yes) with one merged adapter loaded per distinct weight vector (the paper's serving form; slow)."""
        weights = self.weights(samples)
        # samples with identical weight vectors share one merged adapter and one batch
        groups: dict[bytes, list[int]] = {}
        for i, w in enumerate(weights):
            groups.setdefault(w.tobytes(), []).append(i)
        p_yes = np.zeros(len(samples))
        adapter = "default" if mode == "d" else self.nd_adapter()
        self.model.set_adapter(adapter)
        try:
            for idx in groups.values():
                load_lora_state_dict(self.model, self.aggregated_state(weights[idx[0]], mode), adapter)
                p_yes[idx] = score_samples(self.model, self.tokenizer, [samples[i] for i in idx], self.config.batch_size, self.config.max_length)
        finally:
            self.model.set_adapter("default")
        return p_yes

    def nd_adapter(self) -> str:
        """Name of the rank-(r·top_k) adapter used for APA(ND), created on first use."""
        name = f"{ND_ADAPTER}_r{self._nd_rank()}"
        if name not in getattr(self.model, "peft_config", {}):
            m = self._nd_rank() // self.config.lora_r
            add_adapter(self.model, name, self.config, r=self._nd_rank(), alpha=self.config.lora_alpha * m)
        return name

    def _nd_rank(self) -> int:
        return self.config.lora_r * min(self.apa.top_k, self.apa.n_shards)

    def _refresh_centroids(self) -> None:
        keys = [key for info in self.shards.shards for key in info.keys]
        assignment = np.array([info.shard for info in self.shards.shards for _ in info.keys], dtype=np.int64)
        emb = np.stack([self._embeddings[k] for k in keys]) if keys else np.zeros((0, 1))
        self.centroids = shard_centroids(emb, assignment, self.apa.n_shards)


def torch_tensor(x: np.ndarray, device: Any) -> Any:
    """A float32 tensor of ``x`` on ``device``."""
    import torch

    return torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32).to(device)


@contextlib.contextmanager
def per_sample_lora(model: Any, states: Sequence[LoraState], mode: Mode, adapter: str = "default") -> Iterator[Callable[[Any], None]]:
    """Inside the block the adapter's LoRA modules apply each batch row's own APA merge of ``states``.

    Yields ``set_weights(w)``: ``w`` is the [batch, K] weight tensor of the next forward's rows.
    Works by swapping the forward of each ``lora_A``/``lora_B`` module (PEFT computes
    ``lora_B(lora_A(dropout(x))) * scaling``), so the adapter's own scaling alpha/r still applies;
    D and ND both keep it (ND's rank-concatenated adapter has r·m and alpha·m). The shard tensors
    are moved to the model's device once; the forwards are restored on exit.
    """
    import torch

    modules = dict(model.named_modules())
    suffix = f".{adapter}"
    pairs = []
    for name, mod in modules.items():
        if name.endswith(".lora_A" + suffix):
            b_name = name[: -len(".lora_A" + suffix)] + ".lora_B" + suffix
            key_a = name[: -len(suffix)] + ".weight"
            pairs.append((mod, modules[b_name], key_a, key_a.replace(".lora_A.", ".lora_B.")))
    if not pairs:
        raise ValueError(f"model has no LoRA modules of adapter {adapter!r}")
    missing = [k for _, _, k, _ in pairs if k not in states[0]]
    if missing:
        raise ValueError(f"shard states lack the adapter's LoRA tensors, e.g. {missing[0]!r}")
    current: dict[str, Any] = {}

    def set_weights(w: Any) -> None:
        current["w"] = w

    def make(a_stack: Any, b_stack: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        # a_stack [K, r, in], b_stack [K, out, r]; x [batch, t, in]
        def fwd_a(x: Any) -> Any:
            w = current["w"].to(a_stack.dtype)
            if mode == "d":
                return torch.einsum("bti,bri->btr", x, torch.einsum("bk,kri->bri", w, a_stack))
            return torch.einsum("bti,kri->btkr", x, a_stack) * w[:, None, :, None]

        def fwd_b(h: Any) -> Any:
            if mode == "d":
                w = current["w"].to(b_stack.dtype)
                return torch.einsum("btr,bor->bto", h, torch.einsum("bk,kor->bor", w, b_stack))
            return torch.einsum("btkr,kor->bto", h, b_stack)

        return fwd_a, fwd_b

    try:
        for mod_a, mod_b, key_a, key_b in pairs:
            dev, dtype = mod_a.weight.device, mod_a.weight.dtype
            a_stack = torch.stack([st[key_a] for st in states]).to(device=dev, dtype=dtype)
            b_stack = torch.stack([st[key_b] for st in states]).to(device=dev, dtype=dtype)
            mod_a.forward, mod_b.forward = make(a_stack, b_stack)
        yield set_weights
    finally:
        for mod_a, mod_b, _, _ in pairs:
            for mod in (mod_a, mod_b):
                mod.__dict__.pop("forward", None)


def _user_partition(samples: Sequence[TallRecSample], emb: np.ndarray, n_shards: int, seed: int, n_iter: int) -> Partition:
    """Balanced k-means over users (mean sample embedding); every sample follows its user."""
    users = sorted({s.user_id for s in samples})
    index = {u: i for i, u in enumerate(users)}
    rows = np.array([index[s.user_id] for s in samples])
    user_emb = np.stack([emb[rows == i].mean(axis=0) for i in range(len(users))])
    part = balanced_kmeans(user_emb, n_shards, seed, n_iter)
    return Partition(part.assignment[rows], part.centroids, n_shards)


def _pad_rank(state: LoraState, rank: int) -> LoraState:
    """Zero-pad a rank-concatenated state to ``rank`` (fewer retrieved shards than top_k adds nothing)."""
    import torch

    out: LoraState = {}
    for key, t in state.items():
        if ".lora_A." in key and t.shape[0] < rank:
            t = torch.cat([t, t.new_zeros((rank - t.shape[0], t.shape[1]))], dim=0)
        elif ".lora_B." in key and t.shape[1] < rank:
            t = torch.cat([t, t.new_zeros((t.shape[0], rank - t.shape[1]))], dim=1)
        out[key] = t
    return out


def _check_states(states: Sequence[LoraState], weights: Sequence[float]) -> None:
    if not states or len(states) != len(weights):
        raise ValueError(f"need one weight per shard state, got {len(states)} states and {len(weights)} weights")
    keys = set(states[0])
    if any(set(s) != keys for s in states):
        raise ValueError("shard states have different LoRA keys")
