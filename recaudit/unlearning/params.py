"""The parameters of one unlearning experiment (the ``unlearning`` check's and ``recaudit unlearn``'s)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from recaudit.tallrec.config import TrainConfig

Method = Literal["retrain", "sisa", "receraser", "apa", "e2urec", "badt", "neggrad", "ga"]
METHODS: tuple[Method, ...] = ("retrain", "sisa", "receraser", "apa", "e2urec", "badt", "neggrad", "ga")
# TrainConfig fields that earlier versions took at the top level (moved under ``train``)
_FLAT_TRAIN_KEYS = tuple(k for k in TrainConfig.model_fields if k != "seed")


class UnlearningParams(BaseModel):
    """Everything an unlearning experiment needs; defaults sized for a CPU run with SmolLM2.

    ``train`` is the one ``TrainConfig`` every method trains with (preset
    ``TrainConfig.unlearning()``; its seed is ``seed``). Its fields are also accepted at the top
    level, as earlier versions took them (``lr: 1e-3`` = ``train: {lr: 1e-3}``).
    ``train_samples`` is TALLRec's few-shot regime (16 / 64 / 256 training samples drawn from the
    training split); ``train.early_stop_patience`` > 0 keeps each adapter's best step on a
    validation split (``valid_frac`` of every non-forgotten training user's newest samples).
    """

    model_config = ConfigDict(extra="forbid")

    model: str = "default"
    device: str = "auto"
    methods: list[Method] = Field(default_factory=lambda: list(METHODS))
    include_original: bool = True
    seed: int = 0
    # data
    n_users: int = Field(40, ge=0, description="training users sampled; 0 = every eligible user not held out")
    n_never_seen_users: int = 10
    forget_users: int | list[str] = 4
    history_len: int = 10
    max_per_user: int | None = 10
    test_frac: float = 0.2
    split: Literal["time", "user_time", "random"] = "user_time"
    like_threshold: float = 3.0
    train_samples: int | None = Field(None, ge=1, description="few-shot: training samples kept (None = all)")
    valid_frac: float = Field(0.1, gt=0, lt=1, description="validation share when early stopping is on")
    # trainer
    train: TrainConfig = Field(default_factory=TrainConfig.unlearning)
    # sharding
    n_shards: int = 4
    top_k: int = 2
    temperature: float = 0.1
    embedding: Literal["minilm", "hashing", "model"] = "minilm"
    apa_group_by_user: bool = False
    apa_partition: Literal["kmeans", "user_kmeans", "user_hash"] = "kmeans"
    apa_shared_init: bool = True
    receraser_agg_samples: int = Field(512, ge=1)
    verify_exactness: bool = True
    # E2URec and gradient ascent
    e2urec_alpha: float = 1.0
    e2urec_relu: bool = True
    e2urec_w_forget: float = 0.5
    e2urec_w_retain: float = 0.5
    e2urec_epochs: int = 2
    e2urec_aug_epochs: int = 2
    ga_epochs: int = 1
    ga_lr: float | None = None
    neggrad_weight: float = 0.2
    neggrad_epochs: int = 1
    neggrad_lr: float | None = None
    torch_threads: int | None = None
    # erasure request
    erasure_request_id: str | None = None
    keep_artifacts: bool = False

    @model_validator(mode="before")
    @classmethod
    def _flat_train_keys(cls, data: Any) -> Any:
        if not isinstance(data, dict) or not any(k in data for k in _FLAT_TRAIN_KEYS):
            return data
        data = dict(data)
        train = data.get("train") or {}
        train = train.model_dump(exclude_unset=True) if isinstance(train, TrainConfig) else dict(train)
        both = sorted(k for k in _FLAT_TRAIN_KEYS if k in data and k in train)
        if both:
            raise ValueError(f"give {both} either at the top level or under train, not both")
        train |= {k: data.pop(k) for k in _FLAT_TRAIN_KEYS if k in data}
        data["train"] = train
        return data

    @field_validator("train", mode="before")
    @classmethod
    def _preset(cls, v: Any) -> Any:
        # a mapping changes the unlearning preset, not TrainConfig()'s defaults
        return TrainConfig.unlearning(**v) if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _one_seed(self) -> "UnlearningParams":
        if "seed" in self.train.model_fields_set and self.train.seed != self.seed:
            raise ValueError("set seed, not train.seed: every seed of the experiment derives from seed")
        self.__dict__["train"] = self.train.replace(seed=self.seed)
        return self

    @field_validator("device")
    @classmethod
    def _device(cls, v: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?|mps", v):
            raise ValueError(f"device must be auto, cpu, cuda, cuda:N or mps; got {v!r}")
        return v

    @field_validator("methods")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("methods must name at least one of " + ", ".join(METHODS))
        return list(dict.fromkeys(v))

    def train_config(self) -> TrainConfig:
        """The shared TrainConfig of every method (its seed is the experiment's)."""
        return self.train
