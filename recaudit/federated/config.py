"""Settings of one federated run, shared by the ServerApp, the ClientApp, the CLI and the check.

``FederatedSettings`` is a flat pydantic model so it maps one-to-one onto Flower's run config
(``[tool.flwr.app.config]``, kebab-case keys, scalar values) and onto the ``ConfigRecord`` the
server sends with every message: clients take their training settings from the message, so the
same ClientApp runs under ``run_simulation`` (no run config) and under ``flwr run``.

The LoRA training fields are ``recaudit.tallrec.TrainConfig``'s: on the wire they are flat Flower
keys (``lora-r``, ``lora-alpha``, ``target-modules``, ``lr``, ``local-epochs``, ``batch-size``,
``max-length``) whose defaults are read from ``TrainConfig()``, and ``train_config()`` turns them
back into the one ``TrainConfig``. Built in Python or from the check's params, the settings also
take that TrainConfig nested, ``train=TrainConfig(...)`` or ``train: {lora_r: 16, epochs: 2,
target_modules: [q_proj, v_proj]}``: TrainConfig validates it and its fields land on the flat keys
(``epochs`` on ``local_epochs``), so ``train_config()`` gives it back. A key given both flat and
under ``train`` with different values is an error; ``train.seed`` must equal ``seed``, and a
TrainConfig field that the flat wire format does not carry (``lora_dropout``, ``loss_on`` …) must
keep its default, since the clients would train with the default.
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from recaudit.federated.allocation import AllocationConfig
from recaudit.federated.balance import BalanceConfig
from recaudit.federated.pplr import PPLRConfig
from recaudit.tallrec.config import TrainConfig

_TRAIN = TrainConfig()  # federated local training uses recaudit's default preset

StrategyName = Literal["pplr", "pplr-softmax", "fedavg"]

# TrainConfig field → its flat key here; the other TrainConfig fields travel nowhere (clients use their defaults)
TRAIN_KEYS: dict[str, str] = {"lora_r": "lora_r", "lora_alpha": "lora_alpha", "target_modules": "target_modules",
                              "lr": "lr", "epochs": "local_epochs", "batch_size": "batch_size",
                              "max_length": "max_length"}

# keys the client needs; everything else (rounds, timeouts, output) stays on the server
CLIENT_KEYS = (
    "strategy", "model", "data_dir", "seed", "lora_r", "lora_alpha", "target_modules", "lr", "local_epochs",
    "batch_size", "max_length", "eval_batch_size", "torch_threads", "device", "num_rounds", "alloc_enabled", "alloc_embeddings",
    "alloc_first_k", "alloc_last_k", "alloc_lm_head", "dp_enabled", "dp_epsilon", "dp_delta",
    "dp_max_grad_norm", "dp_noise_multiplier", "dp_unit", "dp_insecure_reproducible_noise", "split_execution",
    "fail_partitions", "fail_rounds",
)


class FederatedSettings(BaseModel):
    """Everything that determines a federated TALLRec run (see ``docs/federated-deployment.md``)."""

    model_config = ConfigDict(extra="forbid")

    strategy: StrategyName = "pplr"
    num_rounds: int = Field(3, ge=1)
    model: str = "default"
    data_dir: str = Field("", description="federation folder written by partition.write_federation")
    seed: int = 0
    # TrainConfig fields as flat Flower keys (defaults: TrainConfig())
    lora_r: int = Field(_TRAIN.lora_r, ge=1)
    lora_alpha: int = Field(_TRAIN.lora_alpha, ge=1)
    target_modules: str = ",".join(_TRAIN.target_modules)
    lr: float = Field(_TRAIN.lr, gt=0)
    local_epochs: int = Field(_TRAIN.epochs, ge=1, description="TrainConfig.epochs of each round's local training")
    batch_size: int = Field(_TRAIN.batch_size, ge=1)
    max_length: int = Field(_TRAIN.max_length, ge=8)
    eval_batch_size: int = Field(16, ge=1)
    torch_threads: int = Field(0, ge=0, description="torch threads per client process (0 = torch's default)")
    device: str = Field("", description="torch device of the client's model ('' = CPU, 'cuda', …)")
    # Flower sampling and failures
    min_available_clients: int = Field(2, ge=1)
    min_fit_clients: int = Field(2, ge=1, description="clients sampled per round (all available ones when more)")
    min_replies: int = Field(1, ge=1, description="successful replies a round needs to aggregate")
    round_timeout: float = Field(3600.0, gt=0)
    node_wait_timeout: float = Field(600.0, gt=0)
    # PPLR dynamic balance (paper): curriculum heating of the client-specific aggregation
    pplr_alpha: float = Field(0.7, gt=0)
    pplr_beta: float = Field(1.0, gt=0)
    pplr_loss_temperature: float = Field(0.05, gt=0)
    pplr_heating: bool = True
    # simplified variant 'pplr-softmax' (recaudit's stand-in)
    balance_tau: float = 0.5
    balance_beta: float = 0.5
    balance_lr_gamma: float = 1.0
    balance_lr_min: float = 0.5
    balance_lr_max: float = 2.0
    # PPLR flexible allocation
    alloc_enabled: bool = True
    alloc_embeddings: bool = True
    alloc_first_k: int = Field(1, ge=0)
    alloc_last_k: int = Field(1, ge=0)
    alloc_lm_head: bool = True
    split_execution: bool = Field(False, description="PPLR split execution: the client runs only its layers, "
                                                     "the server the others (activations cross; in-process only)")
    # differential privacy (Opacus DP-SGD on the client's LoRA parameters)
    dp_enabled: bool = False
    dp_epsilon: float = Field(8.0, gt=0, description="target ε per client after the last round")
    dp_delta: float = Field(1e-5, gt=0, lt=1)
    dp_max_grad_norm: float = Field(1.0, gt=0)
    dp_noise_multiplier: float = Field(0.0, ge=0, description="> 0 fixes σ instead of calibrating it to dp_epsilon")
    dp_unit: Literal["record", "user"] = Field("record", description="unit of privacy: one sample, or one user "
                                                                     "(users Poisson-sampled, per-user clipping)")
    dp_insecure_reproducible_noise: bool = Field(False, description="seed DP noise and sampling from the public "
                                                                    "seed (reproducible, NOT private)")
    # failure injection (tests, demos): these partitions raise in fit in these rounds ("" = all rounds)
    fail_partitions: str = ""
    fail_rounds: str = ""
    out: str = ""

    @model_validator(mode="before")
    @classmethod
    def _nested_train(cls, data: Any) -> Any:
        if not isinstance(data, Mapping) or "train" not in data:
            return data
        data = dict(data)
        train = data.pop("train")
        if train is None:
            return data
        try:
            flat = flat_train(train)
        except ValidationError as e:  # name the nested field: train.lr, not lr
            raise ValueError("; ".join(f"train.{'.'.join(map(str, err['loc']))}: {err['msg']}"
                                       for err in e.errors())) from None
        seed = flat.pop("seed", None)
        if seed is not None and seed != data.get("seed", cls.model_fields["seed"].default):
            raise ValueError("set seed, not train.seed: the run's seed is also its training seed")
        field = {v: k for k, v in TRAIN_KEYS.items()}
        clash = [f"{k}={data[k]!r} vs train.{field[k]}={v!r}" for k, v in flat.items()
                 if k in data and not _same(data[k], v)]
        if clash:
            raise ValueError("given both flat and under train, with different values: " + "; ".join(clash))
        return data | flat

    @model_validator(mode="after")
    def _fedavg_shares_everything(self) -> "FederatedSettings":
        # FedAvg is the baseline: uniform learning rates, data-size weights, nothing kept private
        if self.strategy == "fedavg":
            self.__dict__["alloc_enabled"] = False
        self.balance()  # validates the balance parameters
        self.train_config()  # and the training ones
        return self

    def balance(self) -> BalanceConfig:
        """The dynamic-balance parameters."""
        return BalanceConfig(self.balance_tau, self.balance_beta, self.balance_lr_gamma, self.balance_lr_min,
                             self.balance_lr_max)

    def pplr(self) -> PPLRConfig:
        """The paper's curriculum-heating constants."""
        return PPLRConfig(self.pplr_alpha, self.pplr_beta, self.pplr_loss_temperature, self.pplr_heating)

    def allocation(self) -> AllocationConfig:
        """The flexible-allocation parameters (disabled for FedAvg)."""
        return AllocationConfig(self.alloc_enabled, self.alloc_embeddings, self.alloc_first_k, self.alloc_last_k,
                                self.alloc_lm_head)

    def train_config(self) -> TrainConfig:
        """The ``recaudit.tallrec.TrainConfig`` of local training."""
        return TrainConfig(
            lora_r=self.lora_r, lora_alpha=self.lora_alpha, target_modules=tuple(csv_list(self.target_modules)),
            lr=self.lr, epochs=self.local_epochs, batch_size=self.batch_size, max_length=self.max_length,
            seed=self.seed,
        )

    def failing(self, partition_id: int, server_round: int) -> bool:
        """True when failure injection says this partition raises in this round."""
        parts = {int(x) for x in csv_list(self.fail_partitions)}
        rounds = {int(x) for x in csv_list(self.fail_rounds)}
        return partition_id in parts and (not rounds or server_round in rounds)

    def to_flwr_config(self, keys: tuple[str, ...] | None = None) -> dict[str, Any]:
        """Kebab-case scalar dict for a Flower run config / ConfigRecord."""
        data = self.model_dump()
        return {k.replace("_", "-"): data[k] for k in (keys or tuple(data))}

    @classmethod
    def from_flwr_config(cls, config: Mapping[str, Any]) -> "FederatedSettings":
        """Parse a Flower run config / ConfigRecord (unknown keys are ignored; Flower adds its own)."""
        known = set(cls.model_fields)
        data = {k.replace("-", "_"): v for k, v in config.items()}
        return cls.model_validate({k: v for k, v in data.items() if k in known})


def flat_train(train: TrainConfig | Mapping[str, Any]) -> dict[str, Any]:
    """The flat FederatedSettings keys (and ``seed``) of the TrainConfig fields ``train`` was given.

    A mapping is validated by ``TrainConfig`` itself; a field the wire format does not carry is
    refused unless it keeps ``TrainConfig()``'s value (the clients train with that)."""
    cfg = train if isinstance(train, TrainConfig) else TrainConfig.model_validate(dict(train))
    given = cfg.model_fields_set
    dropped = sorted(k for k in given - set(TRAIN_KEYS) - {"seed"} if getattr(cfg, k) != getattr(_TRAIN, k))
    if dropped:
        raise ValueError(f"federated training takes only {', '.join(TRAIN_KEYS)} and seed from train; "
                         f"{', '.join(f'train.{k}' for k in dropped)} would be ignored (clients use TrainConfig()'s)")
    out: dict[str, Any] = {flat: getattr(cfg, k) for k, flat in TRAIN_KEYS.items() if k in given}
    if "target_modules" in out:
        out["target_modules"] = ",".join(out["target_modules"])
    if "seed" in given:
        out["seed"] = cfg.seed
    return out


def _same(flat: Any, nested: Any) -> bool:
    # the flat value as its field would read it (Flower config values may be strings)
    if isinstance(nested, str):  # target_modules, comma-separated
        return csv_list(flat if isinstance(flat, str) else ",".join(flat)) == csv_list(nested)
    try:
        return TypeAdapter(type(nested)).validate_python(flat) == nested
    except ValidationError:
        return False


def csv_list(text: str) -> list[str]:
    """The items of a comma-separated Flower config value (``target-modules``, ``fail-rounds``)."""
    return [t.strip() for t in str(text).split(",") if t.strip()]
