"""recaudit's simplified PPLR variant ('pplr-softmax'): loss-driven weights of one average and lr scales.

This was built as a stand-in before the paper's own definition was found; the paper's dynamic
balance (client-specific aggregation with curriculum heating) is ``recaudit.federated.pplr``.
Kept as a named variant, all parts configurable and logged every round:

* aggregation weight  ``w_c = β · softmax(L / τ)_c + (1 − β) · n_c / Σ n``
  (``β = 0`` is FedAvg's data-size weighting; a lower temperature ``τ`` favours the
  highest-loss clients more sharply);
* learning-rate scale ``s_c = clip((L_c / L̄)^γ, s_min, s_max)`` with ``L̄ = Σ n_c L_c / Σ n``
  (a client whose loss is above the data-weighted mean trains faster; ``γ = 0`` switches it off).

``L_c`` is the client's loss of the model it starts the round from, on its own validation
samples; ``n_c`` its number of training samples. Pure functions of numbers: no model, no Flower.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class BalanceConfig:
    """Parameters of the dynamic balance (see the module docstring for the formulas)."""

    tau: float = 0.5
    beta: float = 0.5
    lr_gamma: float = 1.0
    lr_min: float = 0.5
    lr_max: float = 2.0

    def __post_init__(self) -> None:
        if not self.tau > 0:
            raise ValueError(f"tau must be > 0, got {self.tau}")
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.lr_gamma < 0:
            raise ValueError(f"lr_gamma must be >= 0, got {self.lr_gamma}")
        if not 0 < self.lr_min <= 1.0 <= self.lr_max:
            raise ValueError(f"need 0 < lr_min <= 1 <= lr_max, got lr_min={self.lr_min}, lr_max={self.lr_max}")


def _check(losses: Sequence[float], sizes: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    loss = np.asarray(losses, dtype=float)
    n = np.asarray(sizes, dtype=float)
    if loss.ndim != 1 or loss.shape != n.shape:
        raise ValueError(f"losses and sizes must be 1-D of equal length, got {loss.shape} and {n.shape}")
    if loss.size == 0:
        raise ValueError("losses is empty: no client to weight")
    if not np.all(np.isfinite(loss)) or np.any(loss < 0):
        raise ValueError(f"losses must be finite and >= 0, got {loss.tolist()}")
    if np.any(n <= 0) or not np.all(np.isfinite(n)):
        raise ValueError(f"sizes must be finite and > 0, got {n.tolist()}")
    return loss, n


def size_weights(sizes: Sequence[float]) -> np.ndarray:
    """FedAvg's weights ``n_c / Σ n``."""
    n = np.asarray(sizes, dtype=float)
    if n.size == 0 or np.any(n <= 0):
        raise ValueError(f"sizes must be a non-empty list of positive counts, got {n.tolist()}")
    return n / n.sum()


def loss_softmax(losses: Sequence[float], tau: float) -> np.ndarray:
    """``softmax(L / τ)``, computed stably (shifted by the maximum)."""
    if not tau > 0:
        raise ValueError(f"tau must be > 0, got {tau}")
    z = np.asarray(losses, dtype=float) / tau
    e = np.exp(z - z.max())
    return e / e.sum()


def aggregation_weights(losses: Sequence[float], sizes: Sequence[float], config: BalanceConfig) -> np.ndarray:
    """PPLR aggregation weights ``β · softmax(L/τ) + (1 − β) · n/Σn`` (they sum to 1)."""
    loss, n = _check(losses, sizes)
    return config.beta * loss_softmax(loss, config.tau) + (1.0 - config.beta) * size_weights(n)


def lr_scales(losses: Sequence[float], sizes: Sequence[float], config: BalanceConfig) -> np.ndarray:
    """Per-client learning-rate multipliers ``clip((L_c / L̄)^γ, lr_min, lr_max)``."""
    loss, n = _check(losses, sizes)
    mean = float(np.dot(n, loss) / n.sum())
    if mean == 0.0:
        return np.ones_like(loss)
    return np.clip((loss / mean) ** config.lr_gamma, config.lr_min, config.lr_max)
