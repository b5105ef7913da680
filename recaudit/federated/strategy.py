"""Flower strategies over LoRA parameters: plain FedAvg (baseline) and PPLR.

Both speak Flower's Message API (``flwr.serverapp.strategy.Strategy``) and share one round loop
(``Strategy.start``). What differs:

* ``LoraFedAvg``: every client trains with the configured learning rate; the shared LoRA
  tensors are averaged with data-size weights ``n_c / Σ n``.
* ``PPLRStrategy``: dynamic balance (``recaudit.federated.balance``) — aggregation weights from
  the clients' current losses mixed with data-size weights, and per-client learning-rate scales
  sent with the next round's instructions. Flexible allocation happens on the client (it sends
  only the server-side tensors); the strategy aggregates whatever shared keys arrive.

The server never loads the model: round 1 broadcasts an empty ``ArrayRecord`` and every client
starts from the same seeded LoRA init. Each round records per-client losses, weights, learning-
rate scales, the serialised bytes of every message in both directions, and the clients that
raised or did not answer (``records.FederatedRun``). A round aggregates when at least
``min_replies`` clients succeed; otherwise the global adapter stays as it was.
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
from flwr.serverapp.strategy import Strategy
from flwr.supercore import log

from recaudit.federated.balance import aggregation_weights, lr_scales, size_weights
from recaudit.federated.config import FederatedSettings
from recaudit.federated.records import ClientEvalRow, ClientTrainRow, Failure, FederatedRun, RoundSummary
from recaudit.federated.wire import wire_bytes

ARRAYS_KEY = "arrays"
CONFIG_KEY = "config"
METRICS_KEY = "metrics"
TRAIN_METRICS = ("num-examples", "partition-id", "loss-before", "train-loss", "lr-scale", "trainable-params",
                 "shared-params", "private-params")


def weighted_average(records: list[ArrayRecord], weights: np.ndarray) -> ArrayRecord:
    """Σ w_c · arrays_c, key by key; every record must hold the same keys and shapes."""
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
    """Content hash of an ArrayRecord (identifies the global adapter in results)."""
    h = hashlib.sha256()
    for k in sorted(arrays.keys()):
        h.update(k.encode())
        h.update(arrays[k].numpy().tobytes())
    return h.hexdigest()


class LoraFedAvg(Strategy):
    """FedAvg over the shared LoRA tensors, with failure and communication accounting."""

    name = "fedavg"

    def __init__(self, settings: FederatedSettings):
        self.settings = settings
        self.run = FederatedRun(strategy=self.name, settings=settings.model_dump())
        self._node_partition: dict[int, int] = {}
        self._last_loss: dict[int, float] = {}
        self._last_size: dict[int, int] = {}
        self._sent: dict[int, int] = {}
        self._sent_msgs: list[Message] = []
        self._round_started = 0.0
        self._shapes: dict[str, tuple[int, ...]] = {}

    # ---- hooks PPLR overrides -------------------------------------------------------------
    def lr_scale_for(self, node_ids: list[int]) -> dict[int, float]:
        """Learning-rate multiplier per sampled node (FedAvg: 1)."""
        return {n: 1.0 for n in node_ids}

    def aggregation_weights(self, losses: list[float], sizes: list[int]) -> np.ndarray:
        """Aggregation weights of the successful replies (FedAvg: data size)."""
        return size_weights(sizes)

    # ---- Strategy API ---------------------------------------------------------------------
    def summary(self) -> None:
        s = self.settings
        log(INFO, "\t├──> %s over LoRA tensors; min available %d, min replies %d, round timeout %.0fs",
            self.name, s.min_available_clients, s.min_replies, s.round_timeout)
        log(INFO, "\t└──> allocation: %s", s.allocation())

    def _sample(self, grid: Grid) -> list[int]:
        need = max(self.settings.min_available_clients, self.settings.min_fit_clients)
        deadline = time.monotonic() + self.settings.node_wait_timeout
        while len(nodes := sorted(grid.get_node_ids())) < need:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"only {len(nodes)} SuperNodes connected after {self.settings.node_wait_timeout:.0f}s; "
                    f"min_available_clients={need}"
                )
            log(INFO, "Waiting for nodes: %d connected, %d needed", len(nodes), need)
            time.sleep(1.0)
        return nodes

    def _messages(self, arrays: ArrayRecord, config: ConfigRecord, nodes: list[int], server_round: int,
                  message_type: str, extra: dict[int, dict] | None = None) -> list[Message]:
        self._sent = {}
        out: list[Message] = []
        for node in nodes:
            cfg = ConfigRecord(dict(config))
            cfg["server-round"] = server_round
            for k, v in (extra or {}).get(node, {}).items():
                cfg[k] = v
            msg = Message(RecordDict({ARRAYS_KEY: arrays, CONFIG_KEY: cfg}), dst_node_id=node,
                          message_type=message_type, group_id=str(server_round))
            self._sent[node] = wire_bytes(msg)
            out.append(msg)
        self._sent_msgs = out
        return out

    def _reply_node(self, reply: Message) -> int:
        """The node a reply is about: the SuperLink itself answers for unreachable nodes, so match the request."""
        for sent in self._sent_msgs:
            if sent.metadata.message_id and sent.metadata.message_id == reply.metadata.reply_to_message_id:
                return int(sent.metadata.dst_node_id)
        return int(reply.metadata.src_node_id)

    def configure_train(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                        grid: Grid) -> Iterable[Message]:
        self._round_started = time.perf_counter()
        nodes = self._sample(grid)
        scales = self.lr_scale_for(nodes)
        log(INFO, "configure_train: round %d, %d clients, lr scales %s", server_round, len(nodes),
            {self._node_partition.get(n, n): round(s, 4) for n, s in scales.items()})
        return self._messages(arrays, config, nodes, server_round, MessageType.TRAIN,
                              {n: {"lr-scale": float(s)} for n, s in scales.items()})

    def _split_replies(self, server_round: int, replies: Iterable[Message], phase: str) -> list[Message]:
        ok, answered = [], set()
        for msg in replies:
            node = self._reply_node(msg)
            answered.add(node)
            if msg.has_error():
                self.run.failures.append(Failure(round=server_round, phase=phase, node_id=node,
                                                 partition_id=self._node_partition.get(node),
                                                 reason=str(msg.error.reason)[:500]))
            else:
                ok.append(msg)
        for node in sorted(set(self._sent) - answered):
            self.run.failures.append(Failure(round=server_round, phase=phase, node_id=node,
                                             partition_id=self._node_partition.get(node),
                                             reason=f"no reply within round_timeout={self.settings.round_timeout:.0f}s"))
        n_failed = len(self._sent) - len(ok)
        if n_failed:
            log(WARNING, "%s round %d: %d of %d clients failed (recorded)", phase, server_round, n_failed,
                len(self._sent))
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
        ok = []
        answered = self._split_replies(server_round, replies, "train")
        if not self._shapes and answered:
            # the first round fixes the shared tensors' names and shapes: the most common signature
            sigs = [sig for sig in map(_signature, answered) if sig]
            self._shapes = max(sigs, key=sigs.count) if sigs else {}
        for msg in answered:
            problem = self._update_problem(msg)
            if problem is None:
                ok.append(msg)
            else:
                node = self._reply_node(msg)
                self.run.failures.append(Failure(round=server_round, phase="train", node_id=node,
                                                 partition_id=self._node_partition.get(node),
                                                 reason=f"invalid update: {problem}"))
        sent = dict(self._sent)
        summary = RoundSummary(round=server_round, sampled=len(sent), succeeded=len(ok), failed=len(sent) - len(ok),
                               aggregated=False, bytes_down=sum(sent.values()), bytes_up=0)
        summary.seconds = time.perf_counter() - self._round_started
        self.run.rounds.append(summary)
        if not ok:
            log(WARNING, "round %d: no successful client; global adapter unchanged", server_round)
            return None, None
        metrics = [m.content[METRICS_KEY] for m in ok]
        nodes = [self._reply_node(m) for m in ok]
        for node, met in zip(nodes, metrics):
            self._node_partition[node] = int(met["partition-id"])
        losses = [float(met["loss-before"]) for met in metrics]
        sizes = [int(met["num-examples"]) for met in metrics]
        weights = self.aggregation_weights(losses, sizes)
        up = [wire_bytes(m) for m in ok]
        summary.bytes_up = sum(up)
        for node, met, w, b in zip(nodes, metrics, weights, up):
            self.run.train.append(ClientTrainRow(
                round=server_round, partition_id=int(met["partition-id"]), node_id=node,
                n_train=int(met["num-examples"]), loss_before=float(met["loss-before"]),
                train_loss=float(met["train-loss"]), lr_scale=float(met["lr-scale"]), weight=float(w),
                bytes_down=sent.get(node, 0), bytes_up=b,
                epsilon=float(met["epsilon"]) if float(met.get("epsilon", -1.0)) >= 0 else None,
                seconds=float(met.get("train-seconds", 0.0)), trainable_params=int(met["trainable-params"]),
                shared_params=int(met["shared-params"]), private_params=int(met["private-params"]),
                split_client_params=int(met.get("split-client-params", 0)), model_params=int(met.get("model-params", 0)),
            ))
            self._last_loss[node] = float(met["loss-before"])
            self._last_size[node] = int(met["num-examples"])
        log(INFO, "aggregate_train: round %d weights %s (losses %s)", server_round,
            {self._node_partition[n]: round(float(w), 4) for n, w in zip(nodes, weights)},
            {self._node_partition[n]: round(x, 4) for n, x in zip(nodes, losses)})
        if len(ok) < self.settings.min_replies:
            log(WARNING, "round %d: %d replies < min_replies=%d; global adapter unchanged", server_round,
                len(ok), self.settings.min_replies)
            return None, None
        arrays = weighted_average([m.content[ARRAYS_KEY] for m in ok], weights)
        summary.aggregated = True
        self.run.global_arrays_sha256 = arrays_sha256(arrays)
        total = float(sum(sizes))
        agg = MetricRecord({
            "train-loss": float(sum(s * float(m["train-loss"]) for s, m in zip(sizes, metrics)) / total),
            "loss-before": float(sum(s * x for s, x in zip(sizes, losses)) / total),
            "clients": len(ok),
        })
        return arrays, agg

    def configure_evaluate(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord,
                           grid: Grid) -> Iterable[Message]:
        return self._messages(arrays, config, self._sample(grid), server_round, MessageType.EVALUATE)

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


class PPLRStrategy(LoraFedAvg):
    """PPLR: loss-driven aggregation weights and per-client learning-rate scales (dynamic balance)."""

    name = "pplr"

    def lr_scale_for(self, node_ids: list[int]) -> dict[int, float]:
        known = [n for n in node_ids if n in self._last_loss]
        scales = {n: 1.0 for n in node_ids}
        if len(known) >= 2:
            values = lr_scales([self._last_loss[n] for n in known], [self._last_size[n] for n in known],
                               self.settings.balance())
            scales.update(dict(zip(known, map(float, values))))
        return scales

    def aggregation_weights(self, losses: list[float], sizes: list[int]) -> np.ndarray:
        return aggregation_weights(losses, sizes, self.settings.balance())


def build_strategy(settings: FederatedSettings) -> LoraFedAvg:
    """The strategy named by ``settings.strategy``."""
    return {"fedavg": LoraFedAvg, "pplr": PPLRStrategy}[settings.strategy](settings)
