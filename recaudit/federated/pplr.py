"""PPLR's dynamic balance as the paper defines it: client-specific aggregation with curriculum heating.

Zhao et al. 2024 (PPLR, later FELLRec; arXiv:2402.09959) give every client its *own* aggregate
instead of one global model. recaudit follows the paper's description and the authors' released
code (github.com/jasonchen505/FELLRec, ``BigRec_PPLR``; read, not copied):

* **Attention over clients** — ``s_ij = (cos(θ_i, θ_j) + 1) / 2``, the cosine similarity of the
  clients' flattened LoRA tensors mapped to [0, 1] (``similarity_matrix``).
* **Curriculum heating (learning speed)** — ``p = softmax(L / T)`` over the clients' training
  losses of the round (``T = 0.05`` in the authors' code) and
  ``λ_i = tanh(α / p_i^(t / β))`` in round ``t`` (1-based). A client whose loss is high (large
  ``p_i``) gets a small ``λ_i`` early: it learns mostly from its own update; as ``t`` grows
  ``p_i^(t/β) → 0`` and ``λ_i → 1`` (``heating_weights``).
* **Client-specific aggregate** — ``θ̃_i = (s_ii θ_i + λ_i Σ_{j≠i} s_ij θ_j) / (s_ii + λ_i Σ_{j≠i} s_ij)``
  (``client_weights``, ``aggregate_client_specific``); client ``i`` starts its next round and is
  evaluated from ``θ̃_i``.

Where the sources are silent or disagree, recaudit's choice is named here and in the results
(``PPLR_NOTES``): the authors' code multiplies by ``λ_i`` only when ``β ≠ 1`` (its released script
uses β = 1, i.e. no heating) — recaudit always applies it; their exponent is written
``epoch + 1/β`` (0-based epoch), equal to ``t/β`` for β = 1; the paper does not say which LoRA
tensors enter the similarity — recaudit uses the uploaded (server-side) ones. Pure numpy: no
model, no Flower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

PPLR_NOTES = (
    "PPLR dynamic balance (paper definition, as in the authors' released code): per-client aggregate "
    "θ̃_i = (s_ii θ_i + λ_i Σ_{j≠i} s_ij θ_j) / (s_ii + λ_i Σ_{j≠i} s_ij), s_ij = (cos(θ_i, θ_j) + 1)/2, "
    "λ_i = tanh(α / p_i^(t/β)), p = softmax(train loss / T).",
    "Where the sources are silent or differ, recaudit's choices: heating λ is always applied (the authors' "
    "code skips it when β = 1); exponent t/β with t the 1-based round; similarity over the uploaded LoRA "
    "tensors only; a client that did not reply keeps its previous aggregate; the returned 'global' adapter "
    "(for clients without an aggregate yet) is the data-size-weighted mean.",
)


@dataclass(frozen=True)
class PPLRConfig:
    """Curriculum-heating constants (defaults: the authors' released script)."""

    alpha: float = 0.7
    beta: float = 1.0
    loss_temperature: float = 0.05
    heating: bool = True

    def __post_init__(self) -> None:
        if not self.alpha > 0:
            raise ValueError(f"alpha must be > 0, got {self.alpha}")
        if not self.beta > 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if not self.loss_temperature > 0:
            raise ValueError(f"loss_temperature must be > 0, got {self.loss_temperature}")


def flatten(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """One client's tensors as one float64 vector, keys in sorted order."""
    return np.concatenate([np.asarray(arrays[k], dtype=np.float64).ravel() for k in sorted(arrays)])


def similarity_matrix(vectors: np.ndarray) -> np.ndarray:
    """``(cos(v_i, v_j) + 1) / 2`` for every pair of rows (a zero row has similarity 0.5 to all others)."""
    v = np.asarray(vectors, dtype=np.float64)
    if v.ndim != 2 or v.shape[0] == 0:
        raise ValueError(f"vectors must be a non-empty 2-D array, got shape {v.shape}")
    norms = np.linalg.norm(v, axis=1)
    safe = np.where(norms > 0, norms, 1.0)
    cos = (v / safe[:, None]) @ (v / safe[:, None]).T
    np.fill_diagonal(cos, 1.0)  # a client is fully similar to itself, zero update or not
    return (np.clip(cos, -1.0, 1.0) + 1.0) / 2.0


def loss_shares(losses: Sequence[float], temperature: float) -> np.ndarray:
    """``softmax(L / T)`` (stable)."""
    z = np.asarray(losses, dtype=np.float64) / temperature
    if z.ndim != 1 or z.size == 0 or not np.all(np.isfinite(z)):
        raise ValueError(f"losses must be a non-empty list of finite numbers, got {list(losses)}")
    e = np.exp(z - z.max())
    return e / e.sum()


def heating_weights(losses: Sequence[float], server_round: int, config: PPLRConfig) -> np.ndarray:
    """``λ_i = tanh(α / p_i^(t/β))`` with ``p = softmax(L / T)``; all ones when heating is off."""
    if server_round < 1:
        raise ValueError(f"server_round must be >= 1, got {server_round}")
    p = loss_shares(losses, config.loss_temperature)
    if not config.heating:
        return np.ones_like(p)
    with np.errstate(divide="ignore", over="ignore"):
        return np.tanh(config.alpha / p ** (server_round / config.beta))


def client_weights(similarity: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """Row-stochastic ``W``: ``W_ij ∝ s_ij · (λ_i if j ≠ i else 1)``; row ``i`` builds client ``i``'s aggregate."""
    s = np.asarray(similarity, dtype=np.float64)
    lam = np.asarray(heat, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] != s.shape[1] or lam.shape != (s.shape[0],):
        raise ValueError(f"need an n×n similarity and n heating weights, got {s.shape} and {lam.shape}")
    w = s * lam[:, None]
    np.fill_diagonal(w, np.diag(s))
    return w / w.sum(axis=1, keepdims=True)


def aggregate_client_specific(updates: Sequence[Mapping[str, np.ndarray]], losses: Sequence[float],
                              server_round: int, config: PPLRConfig) -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """Each client's aggregate ``θ̃_i = Σ_j W_ij θ_j`` and the weight matrix ``W``."""
    if len(updates) != len(losses) or not updates:
        raise ValueError(f"need one loss per update, got {len(updates)} updates and {len(losses)} losses")
    keys = sorted(updates[0])
    if any(sorted(u) != keys for u in updates):
        raise ValueError("every update must hold the same tensor names")
    sim = similarity_matrix(np.stack([flatten(u) for u in updates]))
    w = client_weights(sim, heating_weights(losses, server_round, config))
    out = []
    for row in w:
        out.append({k: np.asarray(sum(float(wj) * np.asarray(u[k], dtype=np.float64) for wj, u in zip(row, updates)),
                                  dtype=np.asarray(updates[0][k]).dtype) for k in keys})
    return out, w
