"""Flower strategies over LoRA tensors: FedAvg (Flower's own), PPLR, and PPLR's simplified variant.

All three are thin subclasses of Flower's message-API ``FedAvg`` (``flwr.serverapp.strategy``):
Flower's round loop (``Strategy.start``), node sampling, the round's loss average
(``aggregate_metricrecords``) and — for the baseline — Flower's own weighted averaging
(``aggregate_arrayrecords``, weights ``num-examples``). What recaudit adds
around them (``RecordingFedAvg``) is bookkeeping an audit needs and Flower does not keep:
per-client rows, the serialised bytes of every message both ways, replies that failed, that never
came or that cannot be aggregated (NaNs, wrong shapes), and a bounded wait for nodes: Flower's
``sample_nodes`` waits forever for ``min_available_nodes``, recaudit waits ``node_wait_timeout``
and then stops the run with ``IncompleteRun`` so that the records so far can be written.

* ``fedavg`` — Flower's FedAvg unchanged.
* ``pplr`` — the paper's dynamic balance (``recaudit.federated.pplr``): each client gets its own
  aggregate (similarity attention + curriculum heating) and trains and is evaluated from it.
* ``pplr-softmax`` — the stand-in built first, kept as a named simplified variant: one global
  average with weights ``β·softmax(loss/τ) + (1−β)·n/Σn`` and per-client learning-rate scales
  (``recaudit.federated.balance``).

Flexible allocation happens on the client (it sends only the server-side tensors). The server
never loads the model: round 1 broadcasts an empty ``ArrayRecord`` and every client starts from
the same seeded LoRA init.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable
from logging import INFO, WARNING

import numpy as np
from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from flwr.serverapp import Grid
from flwr.serverapp.strategy import FedAvg
from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords
from flwr.supercore import log

from recaudit.federated.balance import aggregation_weights, lr_scales, size_weights
from recaudit.federated.config import FederatedSettings
from recaudit.federated.pplr import aggregate_client_specific, heating_weights
from recaudit.federated.records import ClientEvalRow, ClientTrainRow, Failure, FederatedRun, RoundSummary
from recaudit.federated.wire import wire_bytes

ARRAYS_KEY = "arrays"
CONFIG_KEY = "config"
METRICS_KEY = "metrics"
LOSS_METRICS = ("train-loss", "loss-before")  # averaged over clients for Flower's round log
TRAIN_METRICS = ("num-examples", "partition-id", "loss-before", "train-loss", "lr-scale", "trainable-params",
                 "shared-params", "private-params")
VARIANTS = {
    "fedavg": "Flower's FedAvg (flwr.serverapp.strategy.FedAvg): one average, weights n_c/Σn",
    "pplr": "PPLR dynamic balance as in the paper: client-specific aggregation with curriculum heating",
    "pplr-softmax": "simplified PPLR variant (recaudit's stand-in, not the paper): one average with weights "
                    "β·softmax(loss/τ)+(1−β)·n/Σn and per-client lr scales clip((L/L̄)^γ)",
}


class IncompleteRun(RuntimeError):
    """Fewer SuperNodes than ``min_available_clients`` stayed connected: the run cannot go on."""


def weighted_average(records: list[ArrayRecord], weights: np.ndarray) -> ArrayRecord:
    """Σ w_c · arrays_c, key by key; every record must hold the same keys and shapes.

    pplr-softmax's weights are the server's, not a reply metric, which is all Flower's
    ``aggregate_arrayrecords`` weights by; the sum is in float64 (Flower's is in the arrays' dtype)."""
    keys = sorted(records[0].keys())
    out = ArrayRecord()
    for k in keys:
        acc = sum(float(w) * rec[k].numpy().astype(np.float64) for rec, w in zip(records, weights))
        out[k] = Array(np.asarray(acc, dtype=records[0][k].numpy().dtype))
    return out


def _signature(msg: Message) -> dict[str, tuple[int, ...]]:
    arrays = msg.content.array_records.get(ARRAYS_KEY)
    return {k: tuple(arrays[k].shape) for k in sorted(arrays.keys())} if arrays is not None else {}


def arrays_sha256(arrays: ArrayRecord) -> str:
    """Content hash of an ArrayRecord (identifies an adapter in results)."""
    h = hashlib.sha256()
    for k in sorted(arrays.keys()):
        h.update(k.encode())
        h.update(arrays[k].numpy().tobytes())
    return h.hexdigest()


def loss_metrics(contents: list[RecordDict], weighted_by_key: str) -> MetricRecord:
    """Flower's weighted average of the replies' losses; the other reply metrics (ids, ε …) are per client."""
    keys = (weighted_by_key, *LOSS_METRICS)
    kept = [RecordDict({METRICS_KEY: MetricRecord({k: c.metric_records[METRICS_KEY][k] for k in keys})})
            for c in contents]
    return aggregate_metricrecords(kept, weighted_by_key)


def _optional(met: MetricRecord, key: str) -> float | None:
    value = float(met.get(key, -1.0))
    return value if value >= 0 else None


class RecordingFedAvg(FedAvg):
    """Flower's FedAvg, with recaudit's per-client records, byte counts, failures and bounded node wait."""

    name = "fedavg"

    def __init__(self, settings: FederatedSettings):
        super().__init__(fraction_train=1.0, fraction_evaluate=1.0, min_train_nodes=settings.min_fit_clients,
                         min_evaluate_nodes=1, min_available_nodes=settings.min_available_clients,
                         weighted_by_key="num-examples", arrayrecord_key=ARRAYS_KEY, configrecord_key=CONFIG_KEY,
                         train_metrics_aggr_fn=loss_metrics)
        self.settings = settings
        self.run = FederatedRun(strategy=self.name, variant=VARIANTS[self.name], settings=settings.model_dump())
        self._node_partition: dict[int, int] = {}
        self._sent: dict[int, int] = {}
        self._sent_msgs: list[Message] = []
        self._round = 0
        self._round_started = 0.0
        self._shapes: dict[str, tuple[int, ...]] = {}

    # ---- hooks the PPLR strategies override -------------------------------------------------
    def content_for(self, node: int, record: RecordDict, message_type: str) -> RecordDict:
        """What node ``node`` is sent (FedAvg: the same record for every node)."""
        return record

    def combine(self, server_round: int, ok: list[Message], nodes: list[int]) -> tuple[ArrayRecord, np.ndarray]:
        """The round's aggregate and each reply's recorded weight (FedAvg: Flower's weighted average)."""
        arrays, _ = super().aggregate_train(server_round, ok)
        sizes = [int(m.content[METRICS_KEY]["num-examples"]) for m in ok]
        return arrays, size_weights(sizes)

    # ---- Strategy API ---------------------------------------------------------------------
    def summary(self) -> None:
        s = self.settings
        log(INFO, "\t├──> %s over LoRA tensors; min available %d, min replies %d, round timeout %.0fs",
            self.name, s.min_available_clients, s.min_replies, s.round_timeout)
        log(INFO, "\t└──> allocation: %s", s.allocation())

    def _wait_for_nodes(self, grid: Grid, need: int | None = None) -> None:
        need = need or max(self.settings.min_available_clients, self.settings.min_fit_clients)
        deadline = time.monotonic() + self.settings.node_wait_timeout
        while len(nodes := list(grid.get_node_ids())) < need:
            left = deadline - time.monotonic()
            if left <= 0:
                raise IncompleteRun(f"round {self._round}: only {len(nodes)} SuperNodes connected after "
                                    f"{self.settings.node_wait_timeout:g}s; min_available_clients={need}")
            log(INFO, "Waiting for nodes: %d connected, %d needed", len(nodes), need)
            time.sleep(min(1.0, left))

    def _construct_messages(self, record: RecordDict, node_ids: list[int], message_type: str) -> Iterable[Message]:
        self._sent = {}
        out: list[Message] = []
        for node in sorted(node_ids):
            msg = Message(content=self.content_for(node, record, message_type), message_type=message_type,
                          dst_node_id=node, group_id=str(self._round))
            self._sent[node] = wire_bytes(msg)
            out.append(msg)
        self._sent_msgs = out
        return out

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._round, self._round_started = server_round, time.perf_counter()
        self._wait_for_nodes(grid)
        return super().configure_train(server_round, arrays, config, grid)

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        self._round = server_round
        # evaluation goes on with the nodes still connected (it is evidence); only training needs the minimum
        self._wait_for_nodes(grid, need=1)
        saved = self.min_available_nodes
        self.min_available_nodes = min(saved, len(list(grid.get_node_ids())))
        try:
            return super().configure_evaluate(server_round, arrays, config, grid)
        finally:
            self.min_available_nodes = saved

    def _reply_node(self, reply: Message) -> int:
        """The node a reply is about: the SuperLink itself answers for unreachable nodes, so match the request."""
        for sent in self._sent_msgs:
            if sent.metadata.message_id and sent.metadata.message_id == reply.metadata.reply_to_message_id:
                return int(sent.metadata.dst_node_id)
        return int(reply.metadata.src_node_id)

    def _fail(self, server_round: int, phase: str, node: int, reason: str) -> None:
        self.run.failures.append(Failure(round=server_round, phase=phase, node_id=node,  # type: ignore[arg-type]
                                         partition_id=self._node_partition.get(node), reason=reason[:500]))

    def _split_replies(self, server_round: int, replies: Iterable[Message], phase: str) -> list[Message]:
        ok, answered = [], set()
        for msg in replies:
            node = self._reply_node(msg)
            answered.add(node)
            if msg.has_error():
                self._fail(server_round, phase, node, str(msg.error.reason))
            else:
                ok.append(msg)
        for node in sorted(set(self._sent) - answered):
            self._fail(server_round, phase, node, f"no reply within round_timeout={self.settings.round_timeout:.0f}s")
        if len(self._sent) - len(ok):
            log(WARNING, "%s round %d: %d of %d clients failed (recorded)", phase, server_round,
                len(self._sent) - len(ok), len(self._sent))
        return ok

    def _update_problem(self, msg: Message) -> str | None:
        """Why a training reply cannot be aggregated (None when it can): untrusted clients send it."""
        met = msg.content.metric_records.get(METRICS_KEY)
        arrays = msg.content.array_records.get(ARRAYS_KEY)
        if met is None or arrays is None:
            return f"reply lacks '{METRICS_KEY}' or '{ARRAYS_KEY}'"
        missing = [k for k in TRAIN_METRICS if k not in met]
        if missing:
            return f"metrics lack {missing}"
        if not all(math.isfinite(float(met[k])) for k in ("loss-before", "train-loss")) or int(met["num-examples"]) < 1:
            return "non-finite loss or no training example"
        if _signature(msg) != self._shapes:
            return "shared tensors differ in names or shapes from the other clients'"
        if not all(np.all(np.isfinite(arrays[k].numpy())) for k in arrays.keys()):
            return "non-finite values in the update"
        return None

    def aggregate_train(self, server_round: int, replies: Iterable[Message]) -> tuple[ArrayRecord | None,
                                                                                     MetricRecord | None]:
        answered = self._split_replies(server_round, replies, "train")
        if not self._shapes and answered:
            # the first round fixes the shared tensors' names and shapes: the most common signature
            sigs = [sig for sig in map(_signature, answered) if sig]
            self._shapes = max(sigs, key=sigs.count) if sigs else {}
        ok = []
        for msg in answered:
            problem = self._update_problem(msg)
            if problem is None:
                ok.append(msg)
            else:
                self._fail(server_round, "train", self._reply_node(msg), f"invalid update: {problem}")
        sent = dict(self._sent)
        summary = RoundSummary(round=server_round, sampled=len(sent), succeeded=len(ok), failed=len(sent) - len(ok),
                               aggregated=False, bytes_down=sum(sent.values()),
                               bytes_up=sum(wire_bytes(m) for m in ok))
        summary.seconds = time.perf_counter() - self._round_started
        self.run.rounds.append(summary)
        if not ok:
            log(WARNING, "round %d: no successful client; adapters unchanged", server_round)
            return None, None
        nodes = [self._reply_node(m) for m in ok]
        for node, msg in zip(nodes, ok):
            self._node_partition[node] = int(msg.content[METRICS_KEY]["partition-id"])
        if len(ok) < self.settings.min_replies:
            self._record_rows(server_round, ok, nodes, [math.nan] * len(ok))
            log(WARNING, "round %d: %d replies < min_replies=%d; adapters unchanged", server_round, len(ok),
                self.settings.min_replies)
            return None, None
        arrays, weights = self.combine(server_round, ok, nodes)
        self._record_rows(server_round, ok, nodes, list(map(float, weights)))
        summary.aggregated = True
        self.run.global_arrays_sha256 = arrays_sha256(arrays)
        agg = self.train_metrics_aggr_fn([m.content for m in ok], self.weighted_by_key)
        agg["clients"] = len(ok)
        return arrays, agg

    def _record_rows(self, server_round: int, ok: list[Message], nodes: list[int], weights: list[float]) -> None:
        heat = getattr(self, "_heat", {})
        for node, msg, w in zip(nodes, ok, weights):
            met = msg.content[METRICS_KEY]
            self.run.train.append(ClientTrainRow(
                round=server_round, partition_id=int(met["partition-id"]), node_id=node,
                n_train=int(met["num-examples"]), loss_before=float(met["loss-before"]),
                train_loss=float(met["train-loss"]), lr_scale=float(met["lr-scale"]), weight=w,
                heat=heat.get(node), bytes_down=self._sent.get(node, 0), bytes_up=wire_bytes(msg),
                epsilon=_optional(met, "epsilon"), dp_noise_multiplier=_optional(met, "dp-sigma"),
                dp_sample_rate=_optional(met, "dp-sample-rate"),
                dp_steps=int(met["dp-steps"]) if _optional(met, "dp-steps") is not None else None,
                dp_secure_noise=bool(met["dp-secure"]) if _optional(met, "dp-secure") is not None else None,
                seconds=float(met.get("train-seconds", 0.0)), trainable_params=int(met["trainable-params"]),
                shared_params=int(met["shared-params"]), private_params=int(met["private-params"]),
                split_client_params=int(met.get("split-client-params", 0)),
                model_params=int(met.get("model-params", 0)),
                activation_bytes=int(met.get("split-activation-bytes", 0)),
            ))

    def aggregate_evaluate(self, server_round: int, replies: Iterable[Message]) -> MetricRecord | None:
        ok = self._split_replies(server_round, replies, "evaluate")
        sent = dict(self._sent)
        rows = []
        for msg in ok:
            met = msg.content[METRICS_KEY]
            node = self._reply_node(msg)
            self._node_partition[node] = int(met["partition-id"])
            rows.append(ClientEvalRow(round=server_round, partition_id=int(met["partition-id"]), node_id=node,
                                      n_test=int(met["num-examples"]), auc=float(met["auc"]), acc=float(met["acc"]),
                                      logloss=float(met["logloss"]), bytes_down=sent.get(node, 0),
                                      bytes_up=wire_bytes(msg)))
        self.run.evals.extend(rows)
        summary = next((r for r in self.run.rounds if r.round == server_round), None)
        aucs = np.array([r.auc for r in rows], dtype=float)
        aucs = aucs[np.isfinite(aucs)]
        if summary is not None:
            summary.eval_bytes_down = sum(sent.values())
            summary.eval_bytes_up = sum(r.bytes_up for r in rows)
            summary.mean_auc = float(aucs.mean()) if aucs.size else None
        if not rows:
            return None
        log(INFO, "aggregate_evaluate: round %d AUC per client %s", server_round,
            {r.partition_id: round(r.auc, 4) for r in sorted(rows, key=lambda r: r.partition_id)})
        return MetricRecord({
            "auc-mean": float(aucs.mean()) if aucs.size else math.nan,
            "auc-min": float(aucs.min()) if aucs.size else math.nan,
            "auc-std": float(aucs.std()) if aucs.size else math.nan,
        })


def _with(record: RecordDict, arrays: ArrayRecord | None = None, **config: float) -> RecordDict:
    """A copy of ``record`` with other arrays and/or extra config entries."""
    cfg = ConfigRecord(dict(record[CONFIG_KEY]))
    for k, v in config.items():
        cfg[k] = v
    return RecordDict({ARRAYS_KEY: arrays if arrays is not None else record[ARRAYS_KEY], CONFIG_KEY: cfg})


class PPLRStrategy(RecordingFedAvg):
    """PPLR (paper): every client trains and is evaluated from its own client-specific aggregate."""

    name = "pplr"

    def __init__(self, settings: FederatedSettings):
        super().__init__(settings)
        self._personal: dict[int, ArrayRecord] = {}
        self._heat: dict[int, float] = {}

    def content_for(self, node: int, record: RecordDict, message_type: str) -> RecordDict:
        personal = self._personal.get(node)
        return record if personal is None else _with(record, personal)

    def combine(self, server_round: int, ok: list[Message], nodes: list[int]) -> tuple[ArrayRecord, np.ndarray]:
        cfg = self.settings.pplr()
        updates = [{k: m.content[ARRAYS_KEY][k].numpy() for k in m.content[ARRAYS_KEY].keys()} for m in ok]
        # the authors' code heats with the round's training loss of each client
        losses = [float(m.content[METRICS_KEY]["train-loss"]) for m in ok]
        personal, w = aggregate_client_specific(updates, losses, server_round, cfg)
        heat = heating_weights(losses, server_round, cfg)
        for node, arrays, lam in zip(nodes, personal, heat):
            self._personal[node] = ArrayRecord({k: Array(v) for k, v in arrays.items()})
            self._heat[node] = float(lam)
        self.run.aggregation.append({"round": server_round, "partition_ids": [self._node_partition[n] for n in nodes],
                                     "weights": w.tolist(), "heat": heat.tolist(), "losses": losses})
        log(INFO, "aggregate_train: round %d PPLR self-weights %s, heating %s", server_round,
            {self._node_partition[n]: round(float(w[i, i]), 4) for i, n in enumerate(nodes)},
            {self._node_partition[n]: round(float(x), 4) for n, x in zip(nodes, heat)})
        # the 'global' adapter only seeds clients that have no aggregate yet
        global_arrays, _ = RecordingFedAvg.combine(self, server_round, ok, nodes)
        return global_arrays, np.diag(w)


class PPLRSoftmaxStrategy(RecordingFedAvg):
    """Simplified PPLR variant (not the paper): loss-softmax weights of one average and per-client lr scales."""

    name = "pplr-softmax"

    def __init__(self, settings: FederatedSettings):
        super().__init__(settings)
        self._last_loss: dict[int, float] = {}
        self._last_size: dict[int, int] = {}

    def lr_scale_for(self, node_ids: list[int]) -> dict[int, float]:
        """Learning-rate multipliers from the nodes' last known losses (1 until two are known)."""
        known = [n for n in node_ids if n in self._last_loss]
        scales = {n: 1.0 for n in node_ids}
        if len(known) >= 2:
            values = lr_scales([self._last_loss[n] for n in known], [self._last_size[n] for n in known],
                               self.settings.balance())
            scales.update(dict(zip(known, map(float, values))))
        return scales

    def _construct_messages(self, record: RecordDict, node_ids: list[int], message_type: str) -> Iterable[Message]:
        self._scales = self.lr_scale_for(sorted(node_ids)) if message_type == MessageType.TRAIN else {}
        return super()._construct_messages(record, node_ids, message_type)

    def content_for(self, node: int, record: RecordDict, message_type: str) -> RecordDict:
        if message_type != MessageType.TRAIN:
            return record
        return _with(record, **{"lr-scale": float(self._scales.get(node, 1.0))})

    def combine(self, server_round: int, ok: list[Message], nodes: list[int]) -> tuple[ArrayRecord, np.ndarray]:
        metrics = [m.content[METRICS_KEY] for m in ok]
        losses = [float(m["loss-before"]) for m in metrics]
        sizes = [int(m["num-examples"]) for m in metrics]
        for node, loss, size in zip(nodes, losses, sizes):
            self._last_loss[node], self._last_size[node] = loss, size
        weights = aggregation_weights(losses, sizes, self.settings.balance())
        return weighted_average([m.content[ARRAYS_KEY] for m in ok], weights), weights


STRATEGIES: dict[str, type[RecordingFedAvg]] = {"fedavg": RecordingFedAvg, "pplr": PPLRStrategy,
                                                "pplr-softmax": PPLRSoftmaxStrategy}


def build_strategy(settings: FederatedSettings) -> RecordingFedAvg:
    """The strategy named by ``settings.strategy``."""
    return STRATEGIES[settings.strategy](settings)
