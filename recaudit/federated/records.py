"""What a federated run logs: per-client rows per round, failures, bytes — and the summaries.

The strategy appends to a ``FederatedRun`` as rounds complete; the CLI and the check turn it
into a ``CheckResult``. JSON round-trips (pydantic), so a run can be reported without the model.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

Phase = Literal["train", "evaluate"]


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", ser_json_inf_nan="constants")


class _ClientRow(_Row):
    round: int
    partition_id: int
    node_id: int


class ClientTrainRow(_ClientRow):
    """One client's training step of one round, as the server saw it."""

    n_train: int
    loss_before: float = Field(description="loss of the model the client started from, on its validation samples")
    train_loss: float
    lr_scale: float
    weight: float = Field(description="aggregation weight of this client's shared update (PPLR: its weight in "
                                      "its own aggregate); NaN when the round did not aggregate")
    heat: float | None = Field(None, description="PPLR curriculum-heating λ of this client in this round")
    bytes_down: int
    bytes_up: int
    epsilon: float | None = None
    dp_noise_multiplier: float | None = Field(None, description="σ of DP-SGD (noise std / clipping norm)")
    dp_sample_rate: float | None = Field(None, description="Poisson sampling rate q of DP-SGD")
    dp_steps: int | None = Field(None, description="DP-SGD steps taken so far by this client (all rounds)")
    dp_secure_noise: bool | None = Field(None, description="False when the noise was seeded (insecure flag)")
    seconds: float = 0.0
    trainable_params: int = 0
    shared_params: int = 0
    private_params: int = 0
    split_client_params: int = Field(0, description="model parameters the client would hold if the server ran "
                                                    "the shared blocks (PPLR's split execution)")
    model_params: int = 0
    activation_bytes: int = Field(0, description="bytes of activations and their gradients between client and "
                                                 "server in split execution, this round")


class ClientEvalRow(_ClientRow):
    """One client's evaluation (its own test samples, its personalised model) after a round."""

    n_test: int
    auc: float
    acc: float
    logloss: float
    bytes_down: int = 0
    bytes_up: int = 0


class Failure(_Row):
    """A client that raised or did not answer within the round timeout."""

    round: int
    phase: Phase
    node_id: int
    partition_id: int | None = None
    reason: str


class RoundSummary(_Row):
    """One round's outcome: who took part, whether the global adapter was updated, bytes moved."""

    round: int
    sampled: int
    succeeded: int
    failed: int
    aggregated: bool
    bytes_down: int
    bytes_up: int
    eval_bytes_down: int = 0
    eval_bytes_up: int = 0
    mean_auc: float | None = None
    seconds: float = 0.0


class FederatedRun(_Row):
    """Everything a federated run records; see ``summary`` for the headline numbers."""

    strategy: str
    settings: dict[str, Any] = Field(default_factory=dict)
    rounds: list[RoundSummary] = Field(default_factory=list)
    train: list[ClientTrainRow] = Field(default_factory=list)
    evals: list[ClientEvalRow] = Field(default_factory=list)
    failures: list[Failure] = Field(default_factory=list)
    seconds: float = 0.0
    mode: str = ""
    variant: str = ""
    global_arrays_sha256: str = ""
    aggregation: list[dict[str, Any]] = Field(default_factory=list, description="PPLR per-round weight matrices")
    incomplete: bool = Field(False, description="the run stopped before its last round (see stop_reason)")
    stop_reason: str = ""
    unnoised_outputs: list[str] = Field(default_factory=list, description="what leaves a client without DP noise")

    def final_evals(self) -> list[ClientEvalRow]:
        """Each client's evaluation from the last round it was evaluated in."""
        last: dict[int, ClientEvalRow] = {}
        for row in self.evals:
            if row.partition_id not in last or row.round >= last[row.partition_id].round:
                last[row.partition_id] = row
        return [last[k] for k in sorted(last)]

    def epsilon_by_client(self) -> dict[int, list[tuple[int, float]]]:
        """Partition id → [(round, spent ε)], for DP runs."""
        out: dict[int, list[tuple[int, float]]] = {}
        for row in self.train:
            if row.epsilon is not None:
                out.setdefault(row.partition_id, []).append((row.round, row.epsilon))
        return out

    def summary(self) -> dict[str, float]:
        """Headline numbers: per-client AUC spread (imbalance), bytes per round, parameter counts, ε."""
        aucs = np.array([r.auc for r in self.final_evals()], dtype=float)
        aucs = aucs[np.isfinite(aucs)]
        out: dict[str, float] = {
            "auc.mean": _stat(aucs, np.mean),
            "auc.min": _stat(aucs, np.min),
            "auc.max": _stat(aucs, np.max),
            "auc.std": _stat(aucs, np.std),
        }
        out["auc.gap"] = out["auc.max"] - out["auc.min"]
        n_rounds = max(len(self.rounds), 1)
        out["bytes.down_per_round"] = sum(r.bytes_down for r in self.rounds) / n_rounds
        out["bytes.up_per_round"] = sum(r.bytes_up for r in self.rounds) / n_rounds
        if self.train:
            out["params.client_trainable"] = float(max(r.trainable_params for r in self.train))
            out["params.shared"] = float(max(r.shared_params for r in self.train))
            out["params.private"] = float(max(r.private_params for r in self.train))
            total = max(r.model_params for r in self.train)
            if total:
                out["params.client_model_share"] = max(r.split_client_params for r in self.train) / total
        eps = [r.epsilon for r in self.train if r.epsilon is not None]
        if eps:
            out["dp.epsilon_max"] = float(max(eps))
            out["dp.noise_multiplier"] = float(max(r.dp_noise_multiplier or 0.0 for r in self.train))
            out["dp.sample_rate"] = float(max(r.dp_sample_rate or 0.0 for r in self.train))
            out["dp.steps"] = float(max(r.dp_steps or 0 for r in self.train))
            out["dp.delta"] = float(self.settings.get("dp_delta", math.nan))
            out["dp.secure_noise"] = float(all(r.dp_secure_noise for r in self.train if r.epsilon is not None))
        if any(r.activation_bytes for r in self.train):
            out["split.activation_bytes_per_round"] = sum(r.activation_bytes for r in self.train) / n_rounds
        out["failures"] = float(len(self.failures))
        out["rounds.aggregated"] = float(sum(r.aggregated for r in self.rounds))
        out["rounds.planned"] = float(self.settings.get("num_rounds", len(self.rounds)))
        out["complete"] = 0.0 if self.incomplete else 1.0
        return out


def _stat(values: np.ndarray, fn: Any) -> float:
    return float(fn(values)) if values.size else math.nan
