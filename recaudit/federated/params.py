"""The ``federated`` check's parameters (shared by the check and ``recaudit.federated.results``).

``train`` is the one ``TrainConfig`` of every client's local training (preset ``check_train()``:
``TrainConfig()`` with a 256-token cutoff and batch size 4, sized for a CPU run; its seed is
``seed``), e.g. ``train: {lora_r: 16, lr: 5e-4, epochs: 2, target_modules: [q_proj, v_proj]}``.
``FederatedSettings`` carries it on its flat keys. Those flat keys are still accepted in
``settings`` (``settings: {lr: 5e-4, local_epochs: 2}``, as earlier versions took them) and move
under ``train``; one field given twice with different values is an error.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from recaudit.checks import CheckParams
from recaudit.federated.config import TRAIN_KEYS, csv_list, flat_train
from recaudit.tallrec.config import TrainConfig

_FIELD_OF = {flat: field for field, flat in TRAIN_KEYS.items()}  # flat settings key → TrainConfig field


def check_train(**changes: Any) -> TrainConfig:
    """The federated check's TrainConfig preset: ``TrainConfig()`` with max_length 256 and batch_size 4."""
    return TrainConfig(**({"max_length": 256, "batch_size": 4} | changes))


class FederatedParams(CheckParams):
    """What the federated check partitions, trains and compares; ``settings`` holds further FederatedSettings fields."""

    strategy: Literal["pplr", "pplr-softmax", "fedavg"] = "pplr"
    compare_fedavg: bool = True
    n_clients: int = Field(3, ge=2)
    users_per_client: int = Field(10, ge=1)
    scheme: Literal["iid", "genre"] = "genre"
    alpha: float = Field(0.5, gt=0)
    history_len: int = Field(5, ge=1)
    max_per_user: int | None = 8
    rounds: int = Field(2, ge=1)
    model: str = "default"
    backend: Literal["inprocess", "ray"] = "inprocess"
    dp_epsilon: float | None = Field(None, gt=0, description="set to train with DP-SGD to this target ε")
    train: TrainConfig = Field(default_factory=check_train, description="local training of every client")
    settings: dict[str, Any] = Field(default_factory=dict, description="further FederatedSettings fields")
    lose_after: dict[int, int] = Field(default_factory=dict, description="failure injection (in-process): "
                                       "client → training rounds it answers before disconnecting")

    @model_validator(mode="before")
    @classmethod
    def _train_from_settings(cls, data: Any) -> Any:
        settings = data.get("settings") if isinstance(data, dict) else None
        if not isinstance(settings, dict) or not ("train" in settings or set(settings) & set(_FIELD_OF)):
            return data
        data, settings = dict(data), dict(settings)
        flat = {_FIELD_OF[k]: settings.pop(k) for k in list(settings) if k in _FIELD_OF}
        if isinstance(flat.get("target_modules"), str):  # the flat key is comma-separated
            flat["target_modules"] = csv_list(flat["target_modules"])
        merged: dict[str, tuple[str, Any]] = {}  # field → (where it was given, value)
        for where, given in (("train", data.get("train")), ("settings.train", settings.pop("train", None)),
                             ("settings", flat)):
            for k, v in _given(where, given).items():
                if k in merged and merged[k][1] != v:
                    raise ValueError(f"{merged[k][0]}={merged[k][1]!r} and {_label(where, k)}={v!r} set the same "
                                     "TrainConfig field: give it once")
                merged.setdefault(k, (_label(where, k), v))
        data["train"], data["settings"] = {k: v for k, (_, v) in merged.items()}, settings
        return data

    @field_validator("train", mode="before")
    @classmethod
    def _preset(cls, v: Any) -> Any:
        # a mapping changes the check's preset, not TrainConfig()'s defaults
        return check_train(**v) if isinstance(v, dict) else v

    @model_validator(mode="after")
    def _one_seed(self) -> "FederatedParams":
        if "seed" in self.train.model_fields_set and self.train.seed != self.seed:
            raise ValueError("set seed, not train.seed: every seed of the check derives from seed")
        self.__dict__["train"] = self.train.replace(seed=self.seed)
        flat_train(self.train)  # refuses fields that the clients would not get
        return self

    def train_settings(self) -> dict[str, Any]:
        """``train`` on FederatedSettings' flat keys (without seed: the settings carry their own)."""
        return {k: v for k, v in flat_train(self.train).items() if k != "seed"}


def _given(where: str, train: Any) -> dict[str, Any]:
    # the TrainConfig fields ``train`` sets, as TrainConfig validates them
    if train is None:
        return {}
    try:
        cfg = train if isinstance(train, TrainConfig) else TrainConfig.model_validate(dict(train))
    except ValidationError as e:
        raise ValueError("; ".join(f"{_label(where, '.'.join(map(str, err['loc'])))}: {err['msg']}"
                                   for err in e.errors())) from None
    return {k: getattr(cfg, k) for k in cfg.model_fields_set}


def _label(where: str, field: str) -> str:
    # how the user wrote it: settings.local_epochs for the flat key, train.epochs nested
    return f"settings.{TRAIN_KEYS.get(field, field)}" if where == "settings" else f"{where}.{field}"
