"""Training configuration of the TALLRec LoRA recommender, and seed derivation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    """LoRA and optimiser settings; one config fully determines a training run given the data order.

    ``lr`` is AdamW's learning rate; ``grad_clip`` clips the global gradient norm (0 = off);
    ``loss_on`` chooses where the loss is: "answer" (recaudit's default: the answer tokens only,
    which differs from TALLRec) or "sequence" (cross-entropy on every token of prompt + answer, as
    TALLRec's ``finetune_rec.py`` trains with ``train_on_inputs=True``; ``TrainConfig.tallrec()``).
    ``answer_loss`` chooses which answer tokens carry the answer loss ("all": the whole
    "Yes."/"No."; "first": only the first token, the one P(Yes) is read from).
    ``lora_layers``: put LoRA on the top N transformer blocks only (None = all, as TALLRec); with
    ``cache_prefix`` the frozen bottom blocks then run once per sample (``tallrec.prefix``).
    """

    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")
    lr: float = 1e-3
    epochs: int = 1
    batch_size: int = 8
    max_length: int = 512
    seed: int = 0
    grad_clip: float = 1.0
    weight_decay: float = 0.0
    shuffle: bool = True
    answer_loss: str = "all"
    deterministic: bool = True
    lora_layers: int | None = None
    cache_prefix: bool = True
    loss_on: str = "answer"
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        for name in ("lora_r", "lora_alpha", "epochs", "batch_size", "max_length"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"TrainConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"TrainConfig.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.lr <= 0:
            raise ValueError(f"TrainConfig.lr must be > 0, got {self.lr}")
        if self.grad_clip < 0:
            raise ValueError(f"TrainConfig.grad_clip must be >= 0, got {self.grad_clip}")
        if self.lora_layers is not None and int(self.lora_layers) < 1:
            raise ValueError(f"TrainConfig.lora_layers must be >= 1 or None, got {self.lora_layers}")
        if self.answer_loss not in ("all", "first"):
            raise ValueError(f"TrainConfig.answer_loss must be 'all' or 'first', got {self.answer_loss!r}")
        if self.loss_on not in ("answer", "sequence"):
            raise ValueError(f"TrainConfig.loss_on must be 'answer' or 'sequence', got {self.loss_on!r}")
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise ValueError("TrainConfig.target_modules must be a non-empty tuple of module names")
        object.__setattr__(self, "target_modules", tuple(self.target_modules))

    @classmethod
    def tallrec(cls, **changes: Any) -> "TrainConfig":
        """TALLRec's recipe (SAI990323/TALLRec ``finetune_rec.py``): loss on the whole sequence, lr 1e-4,
        LoRA r 8 / alpha 16 / dropout 0.05 on q,v, cutoff 512; batch size is recaudit's (TALLRec uses 128)."""
        base = dict(loss_on="sequence", lr=1e-4, lora_r=8, lora_alpha=16, lora_dropout=0.05, max_length=512)
        return cls(**(base | changes))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed."""
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings (for the reproducibility block)."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        d["target_modules"] = list(self.target_modules)
        return d


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from ``seed`` and labels (e.g. a shard id), stable across processes."""
    blob = "/".join([str(int(seed)), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") & ((1 << 63) - 1)
