"""Gradient-ascent unlearning baseline: raise the loss of the forget samples, starting from the original.

Approximate, cheap and unstable: the answer cross-entropy of each forget batch is *maximised*.
With ``ceiling`` set, a sample's loss is clamped there (zero gradient beyond it), so the adapter
cannot diverge without bound; by default it is unbounded and the epochs limit the damage.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from recaudit.tallrec.config import TrainConfig, derive_seed
from recaudit.tallrec.encoding import Batch, answer_logits, answer_nll
from recaudit.tallrec.lora import LoraState, load_lora_state_dict, lora_state_dict
from recaudit.tallrec.prompts import TallRecSample
from recaudit.tallrec.trainer import optimise


@dataclass
class GradientAscentConfig:
    """Epochs over the forget set, learning rate (None = the train config's), optional per-sample loss ceiling."""

    epochs: int = 1
    lr: float | None = None
    ceiling: float | None = None

    def __post_init__(self) -> None:
        if self.epochs < 1 or (self.ceiling is not None and self.ceiling <= 0):
            raise ValueError(f"epochs must be >= 1 and ceiling > 0 or None, got {self.epochs}, {self.ceiling}")


def gradient_ascent(model: Any, tokenizer: Any, original: LoraState, forget: Sequence[TallRecSample],
                    config: TrainConfig, ga: GradientAscentConfig | None = None, seed: int = 0) -> tuple[LoraState, float]:  # fmt: skip
    """Unlearned adapter state and wall seconds."""
    ga = ga or GradientAscentConfig()
    t0 = time.perf_counter()
    load_lora_state_dict(model, original)

    def loss_fn(m: Any, batch: Batch, idx: list[int]) -> Any:
        nll = answer_nll(answer_logits(m, batch), batch)
        return -(nll if ga.ceiling is None else nll.clamp(max=ga.ceiling)).mean()

    cfg = config.replace(epochs=ga.epochs, lr=ga.lr or config.lr, seed=derive_seed(seed, "order", "ga"))
    optimise(model, tokenizer, forget, cfg, loss_fn)
    return lora_state_dict(model), time.perf_counter() - t0
