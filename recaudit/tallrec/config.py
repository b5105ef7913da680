"""The one training configuration of LoRA fine-tuning (TALLRec, unlearning, federated), and seed derivation.

``TrainConfig`` is used as is by ``recaudit.tallrec``, nested as ``UnlearningParams.train`` and
``FederatedParams.train``, and carried to Flower clients as the flat keys of ``FederatedSettings``
(which also takes ``train=``; ``train_config()`` rebuilds it; Flower's run config holds scalars only). Where a use needs other defaults they are named presets, never a second
set of fields:

- ``TrainConfig()``: recaudit's default (loss on the answer tokens, lr 1e-3, cutoff 512); also
  federated local training's.
- ``TrainConfig.tallrec()``: TALLRec's recipe (whole-sequence loss, lr 1e-4, dropout 0.05).
- ``TrainConfig.unlearning()``: the unlearning experiment's (cutoff 384: a 10-title history fits,
  and every method trains K+5 adapters, so shorter padding matters on a CPU).
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class TrainConfig(BaseModel):
    """LoRA and optimiser settings; one config fully determines a training run given the data order.

    ``lr`` is AdamW's learning rate; ``grad_clip`` clips the global gradient norm (0 = off);
    ``loss_on`` chooses where the loss is: "answer" (recaudit's default: the answer tokens only,
    which differs from TALLRec) or "sequence" (cross-entropy on every token of prompt + answer, as
    TALLRec's ``finetune_rec.py`` trains with ``train_on_inputs=True``; ``TrainConfig.tallrec()``).
    ``answer_loss`` chooses which answer tokens carry the answer loss ("all": the whole
    "Yes."/"No."; "first": only the first token, the one P(Yes) is read from).
    ``lora_layers``: put LoRA on the top N transformer blocks only (None = all, as TALLRec); with
    ``cache_prefix`` the frozen bottom blocks then run once per sample (``tallrec.prefix``).
    ``early_stop_patience`` > 0 turns on TALLRec's early stopping wherever a validation set is
    given (``trainer.fit_lora``): validation AUC every ``eval_every`` steps (None = TALLRec's
    rule), the best adapter kept, training stopped after that many evaluations without a gain.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lora_r: int = Field(8, ge=1)
    lora_alpha: int = Field(16, ge=1)
    lora_dropout: float = Field(0.0, ge=0.0, lt=1.0)
    target_modules: tuple[str, ...] = Field(("q_proj", "v_proj"), min_length=1)
    lr: float = Field(1e-3, gt=0)
    epochs: int = Field(1, ge=1)
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(512, ge=1)
    seed: int = 0
    grad_clip: float = Field(1.0, ge=0)
    weight_decay: float = 0.0
    shuffle: bool = True
    answer_loss: Literal["all", "first"] = "all"
    deterministic: bool = True
    lora_layers: int | None = Field(None, ge=1)
    cache_prefix: bool = True
    loss_on: Literal["answer", "sequence"] = "answer"
    early_stop_patience: int = Field(0, ge=0, description="evaluations without a validation-AUC gain before stopping (0 = off)")
    eval_every: int | None = Field(None, ge=1, description="steps between validation evaluations (None = TALLRec's rule)")

    @field_validator("target_modules", mode="before")
    @classmethod
    def _modules(cls, v: Any) -> Any:
        if isinstance(v, str):  # a bare string would become a tuple of letters
            raise ValueError("target_modules must be a non-empty list of module names, not one string")
        return v

    @classmethod
    def tallrec(cls, **changes: Any) -> "TrainConfig":
        """TALLRec's recipe (SAI990323/TALLRec ``finetune_rec.py``): loss on the whole sequence, lr 1e-4,
        LoRA r 8 / alpha 16 / dropout 0.05 on q,v, cutoff 512; batch size is recaudit's (TALLRec uses 128)."""
        base = dict(loss_on="sequence", lr=1e-4, lora_r=8, lora_alpha=16, lora_dropout=0.05, max_length=512)
        return cls(**(base | changes))

    @classmethod
    def unlearning(cls, **changes: Any) -> "TrainConfig":
        """The unlearning experiment's defaults: recaudit's, with a 384-token cutoff."""
        return cls(**({"max_length": 384} | changes))

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated)."""
        return type(self)(**(self.model_dump() | changes))

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly settings (for the reproducibility block)."""
        return self.model_dump(mode="json")


def derive_seed(seed: int, *parts: object) -> int:
    """A 63-bit seed derived from ``seed`` and labels (e.g. a shard id), stable across processes."""
    blob = "/".join([str(int(seed)), *map(str, parts)]).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big") & ((1 << 63) - 1)
