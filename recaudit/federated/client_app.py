"""The Flower ClientApp: fine-tune the TALLRec LoRA recommender on this client's own samples.

``train``: load the global shared LoRA tensors (or the seeded init in round 1) plus this client's
private tensors (flexible allocation; kept in the node's Flower ``context.state``), measure the
loss of that model on local validation samples (PPLR's "current performance"), train with the
learning-rate scale the server sent (optionally with DP-SGD), keep the private tensors, reply
with only the shared ones. ``evaluate``: AUC of the personalised model on local test samples.

Training settings come with every message (``FederatedSettings`` as a ``ConfigRecord``), data
from ``node_config['data-path']`` (deployment: each SuperNode's own folder) or
``<data-dir>/client_<partition-id>`` (simulation). The base model is loaded once per process.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from recaudit.federated.allocation import Allocation, base_parameter_split, count_blocks, split_names
from recaudit.federated.clientdata import ClientData, client_folder, load_client_data
from recaudit.federated.config import FederatedSettings
from recaudit.federated.dp import DPConfig, train_lora_dp
from recaudit.federated.strategy import ARRAYS_KEY, CONFIG_KEY, METRICS_KEY

PRIVATE_KEY = "recaudit-private-lora"
DP_KEY = "recaudit-dp"

_MODELS: dict[tuple, tuple[Any, Any]] = {}
_DATA: dict[str, ClientData] = {}


class InjectedFailure(RuntimeError):
    """Raised by a client that failure injection (``fail_partitions``) tells to fail."""


def partition_id(context: Context) -> int:
    """This node's partition id (``node_config['partition-id']``)."""
    if "partition-id" not in context.node_config:
        raise ValueError("node_config has no 'partition-id'; start the SuperNode with --node-config 'partition-id=N'")
    return int(context.node_config["partition-id"])


def client_model(settings: FederatedSettings) -> tuple[Any, Any]:
    """The base model with a LoRA adapter attached, cached per process (one load per model/LoRA shape)."""
    from recaudit.tallrec import attach_lora, load_base_model

    if settings.torch_threads:
        import torch

        torch.set_num_threads(settings.torch_threads)
    key = (settings.model, settings.lora_r, settings.lora_alpha, settings.target_modules, settings.device)
    if key not in _MODELS:
        model, tokenizer = load_base_model(settings.model, device=settings.device or None)
        _MODELS[key] = (attach_lora(model, settings.train_config()), tokenizer)
    return _MODELS[key]


def client_data(settings: FederatedSettings, context: Context) -> ClientData:
    """This client's samples, read once per process."""
    if "data-path" in context.node_config:
        folder = Path(str(context.node_config["data-path"]))
    elif settings.data_dir:
        folder = client_folder(settings.data_dir, partition_id(context))
    else:
        raise ValueError("no client data: set data_dir in the run config or --node-config 'data-path=…'")
    key = str(folder.resolve())
    if key not in _DATA:
        _DATA[key] = load_client_data(folder)
    return _DATA[key]


def _n_layers(model: Any, names: Any) -> int:
    return getattr(getattr(model, "config", None), "num_hidden_layers", None) or count_blocks(names)


def allocation_for(model: Any, settings: FederatedSettings) -> tuple[Allocation, dict]:
    """The client/server split of this model's LoRA tensors, and the seeded initial state."""
    from recaudit.tallrec import init_lora_state

    init = init_lora_state(model, settings.seed)
    alloc = split_names(init, _n_layers(model, init), settings.allocation())
    if not alloc.server:
        raise ValueError("the allocation keeps every LoRA tensor on the client: nothing left to federate; "
                         "lower alloc_first_k/alloc_last_k or add target modules")
    return alloc, init


def _to_record(state: dict, names: tuple[str, ...]) -> ArrayRecord:
    return ArrayRecord({k: state[k] for k in names})  # torch state_dict form


def assemble_state(msg: Message, context: Context, alloc: Allocation, init: dict) -> dict:
    """Full LoRA state: shared tensors from the server (init when it sent none) + this client's private ones."""
    state = dict(init)
    shared = msg.content[ARRAYS_KEY]
    if len(shared):
        unexpected = set(shared.keys()) - set(alloc.server)
        if unexpected:
            raise ValueError(f"server sent tensors this client keeps private: {sorted(unexpected)[:3]}")
        state.update(shared.to_torch_state_dict())
    private = context.state.array_records.get(PRIVATE_KEY)
    if private is not None:
        state.update(private.to_torch_state_dict())
    return state


def _mean_loss(model: Any, tokenizer: Any, samples: list, settings: FederatedSettings) -> float:
    from recaudit.tallrec import sample_outputs

    out = sample_outputs(model, tokenizer, samples, settings.eval_batch_size, settings.max_length)
    return float(np.mean(out["loss"]))


def train(msg: Message, context: Context) -> Message:
    """Handle a TRAIN message (see the module docstring)."""
    from recaudit.tallrec import load_lora_state_dict, lora_state_dict, train_lora

    config = msg.content[CONFIG_KEY]
    settings = FederatedSettings.from_flwr_config(config)
    server_round = int(config["server-round"])
    lr_scale = float(config.get("lr-scale", 1.0))
    pid = partition_id(context)
    if settings.failing(pid, server_round):
        raise InjectedFailure(f"partition {pid} fails in round {server_round} (failure injection)")
    model, tokenizer = client_model(settings)
    alloc, init = allocation_for(model, settings)
    load_lora_state_dict(model, assemble_state(msg, context, alloc, init))
    data = client_data(settings, context)
    loss_before = _mean_loss(model, tokenizer, data.valid or data.train, settings)
    t0 = time.perf_counter()
    epsilon = -1.0
    dp_metrics: dict = {}
    if settings.dp_enabled and settings.split_execution:
        raise ValueError("DP-SGD with split execution is not implemented (per-sample gradients would have to "
                         "cross the split); use one or the other")
    if settings.dp_enabled:
        dp = DPConfig(settings.dp_epsilon, settings.dp_delta, settings.dp_max_grad_norm, settings.dp_noise_multiplier,
                      unit=settings.dp_unit, insecure_reproducible=settings.dp_insecure_reproducible_noise)
        prev = context.state.config_records.get(DP_KEY)
        history = list(zip(prev["sigma"], prev["rate"], prev["steps"])) if prev is not None else []
        out = train_lora_dp(model, tokenizer, data.train, settings.train_config(), dp, settings.num_rounds,
                            history, lr_scale, seed=settings.seed * 1000 + server_round * 97 + pid)
        context.state[DP_KEY] = ConfigRecord({"sigma": [h[0] for h in out.history],
                                              "rate": [h[1] for h in out.history],
                                              "steps": [h[2] for h in out.history]})
        losses, epsilon = out.losses, out.epsilon
        dp_metrics = {"dp-sigma": float(out.noise_multiplier), "dp-sample-rate": float(out.sample_rate),
                      "dp-steps": int(out.total_steps), "dp-secure": int(out.secure_noise), "dp-units": out.n_units}
    elif settings.split_execution:
        from recaudit.federated.split import train_lora_split

        split_out = train_lora_split(model, tokenizer, data.train, settings.train_config().replace(
            seed=settings.seed * 1000 + server_round), settings.allocation(), lr_scale=lr_scale)
        losses = split_out.losses
        dp_metrics = {"split-activation-bytes": split_out.bytes_up + split_out.bytes_down}
    else:
        losses = train_lora(model, tokenizer, data.train, settings.train_config().replace(
            seed=settings.seed * 1000 + server_round), lr_scale=lr_scale).losses
    state = lora_state_dict(model)
    context.state[PRIVATE_KEY] = _to_record(state, alloc.client) if alloc.client else ArrayRecord()
    n_shared = sum(int(state[k].numel()) for k in alloc.server)
    n_private = sum(int(state[k].numel()) for k in alloc.client)
    split = base_parameter_split(model, _n_layers(model, state), settings.allocation())
    if not settings.alloc_enabled:
        split["client"] = split["total"]  # without allocation the client holds the whole model
    metrics = MetricRecord({
        "num-examples": len(data.train), "partition-id": pid, "loss-before": loss_before,
        "train-loss": float(np.mean(losses)) if losses else loss_before, "lr-scale": lr_scale,
        "epsilon": float(epsilon), "train-seconds": time.perf_counter() - t0,
        "trainable-params": n_shared + n_private, "shared-params": n_shared, "private-params": n_private,
        "split-client-params": split["client"], "model-params": split["total"], **dp_metrics,
    })
    return Message(RecordDict({ARRAYS_KEY: _to_record(state, alloc.server), METRICS_KEY: metrics}), reply_to=msg)


def evaluate(msg: Message, context: Context) -> Message:
    """Handle an EVALUATE message: AUC / accuracy / log loss of the personalised model on local test samples."""
    from recaudit.tallrec import evaluate_scores, load_lora_state_dict, score_samples

    settings = FederatedSettings.from_flwr_config(msg.content[CONFIG_KEY])
    pid = partition_id(context)
    model, tokenizer = client_model(settings)
    alloc, init = allocation_for(model, settings)
    load_lora_state_dict(model, assemble_state(msg, context, alloc, init))
    data = client_data(settings, context)
    p_yes = score_samples(model, tokenizer, data.test, settings.eval_batch_size, settings.max_length)
    scores = evaluate_scores([s.label for s in data.test], p_yes)
    metrics = MetricRecord({"num-examples": len(data.test), "partition-id": pid, "auc": scores["auc"],
                            "acc": scores["acc"], "logloss": scores["logloss"]})
    return Message(RecordDict({METRICS_KEY: metrics}), reply_to=msg)


def make_client_app() -> ClientApp:
    """A ClientApp with the ``train`` and ``evaluate`` handlers registered."""
    client_app = ClientApp()
    client_app.train()(train)
    client_app.evaluate()(evaluate)
    return client_app


app = make_client_app()
