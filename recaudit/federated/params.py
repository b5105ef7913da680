"""The ``federated`` check's parameters (shared by the check and ``recaudit.federated.results``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from recaudit.checks import CheckParams


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
    settings: dict[str, Any] = Field(default_factory=dict, description="further FederatedSettings fields")
    lose_after: dict[int, int] = Field(default_factory=dict, description="failure injection (in-process): "
                                       "client → training rounds it answers before disconnecting")
