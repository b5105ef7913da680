"""Run a federation on one machine: Flower's Ray simulation, or an in-process grid.

Both run the very same ``ServerApp`` (``server_app.make_server_app``) and ``ClientApp``
(``client_app.app``); only the transport differs:

* ``backend="ray"``: ``flwr.simulation.run_simulation`` — each virtual SuperNode's ClientApp runs
  in a Ray actor process, messages go through Flower's in-memory SuperLink state. Ray's start-up
  costs ~20 s on a 2-core machine, so tests use it only in a slow test.
* ``backend="inprocess"``: ``InProcessGrid``, a ``flwr.serverapp.Grid`` that calls the ClientApp
  directly in this process with one persistent ``Context`` per node, turns a raising ClientApp
  into an error reply (as Flower's runtime does) and can make nodes vanish (no reply). Fast and
  deterministic; used by the fast tests, the CLI default and the check.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal
from uuid import uuid4

from flwr.app import Context, Error, Message, MessageType, RecordDict
from flwr.clientapp import ClientApp
from flwr.common.constant import SUPERLINK_NODE_ID, ErrorCode
from flwr.serverapp import Grid
from flwr.supercore.task_identity import TaskIdentity

from recaudit.federated.config import FederatedSettings
from recaudit.federated.records import FederatedRun
from recaudit.federated.wire import wire_copy

Backend = Literal["inprocess", "ray"]
NODE_ID_BASE = 1001


class InProcessGrid(Grid):
    """A Grid whose SuperNodes are ClientApp calls in this process (see module docstring)."""

    def __init__(self, client_app: ClientApp, num_nodes: int, drop_partitions: Sequence[int] = (),
                 lose_after: Mapping[int, int] | None = None):
        if num_nodes < 1:
            raise ValueError(f"num_nodes must be >= 1, got {num_nodes}")
        self.client_app = client_app
        self.drop_partitions = set(drop_partitions)
        # partition -> training rounds it answers before its SuperNode disconnects for good
        self.lose_after = dict(lose_after or {})
        self._trained: dict[int, int] = {}
        self._run = None
        self.contexts = {
            NODE_ID_BASE + i: Context(run_id=1, node_id=NODE_ID_BASE + i,
                                      node_config={"partition-id": i, "num-partitions": num_nodes},
                                      state=RecordDict(), run_config={})
            for i in range(num_nodes)
        }
        self._replies: dict[str, Message] = {}
        # what Flower's runtimes set for the ServerApp process; Message() reads it
        TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, SUPERLINK_NODE_ID

    def set_run(self, run) -> None:  # type: ignore[no-untyped-def]
        self._run = run

    @property
    def run(self):  # type: ignore[no-untyped-def]
        return self._run

    def create_message(self, content: RecordDict, message_type: str, dst_node_id: int, group_id: str,
                       ttl: float | None = None) -> Message:
        return Message(content, dst_node_id, message_type, ttl=ttl, group_id=group_id)

    def _lost(self, node: int) -> bool:
        pid = int(self.contexts[node].node_config["partition-id"])
        return pid in self.lose_after and self._trained.get(pid, 0) >= self.lose_after[pid]

    def get_node_ids(self) -> Iterable[int]:
        return [n for n in self.contexts if not self._lost(n)]

    def _deliver(self, msg: Message) -> Message | None:
        node = msg.metadata.dst_node_id
        context = self.contexts[node]
        pid = int(context.node_config["partition-id"])
        if pid in self.drop_partitions or self._lost(node):
            return None  # the node vanished: no reply ever comes
        incoming = wire_copy(msg)  # the client never shares objects with the server
        try:
            return self.client_app(incoming, context)
        except Exception as ex:  # Flower's runtime reports ClientApp exceptions as error replies
            reason = f"{type(ex).__name__}: {ex}\n{traceback.format_exc(limit=3)}"
            return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=reason), reply_to=incoming)
        finally:
            if msg.metadata.message_type == MessageType.TRAIN:
                self._trained[pid] = self._trained.get(pid, 0) + 1

    def push_messages(self, messages: Iterable[Message]) -> Iterable[str]:
        ids = []
        for msg in messages:
            msg.metadata.__dict__["_message_id"] = str(uuid4())
            reply = self._deliver(msg)
            if reply is not None:
                self._replies[msg.metadata.message_id] = wire_copy(reply)
            ids.append(msg.metadata.message_id)
        return ids

    def pull_messages(self, message_ids: Iterable[str]) -> Iterable[Message]:
        return [self._replies.pop(i) for i in message_ids if i in self._replies]

    def send_and_receive(self, messages: Iterable[Message], *, timeout: float | None = None) -> Iterable[Message]:
        return self.pull_messages(self.push_messages(messages))


def run_federated(settings: FederatedSettings, num_clients: int, backend: Backend = "inprocess",
                  drop_partitions: Sequence[int] = (), ray_num_cpus: int = 2,
                  lose_after: Mapping[int, int] | None = None) -> FederatedRun:
    """Run ``settings`` with ``num_clients`` simulated clients and return the run's records."""
    from recaudit.federated.client_app import app as client_app
    from recaudit.federated.server_app import make_server_app, run_rounds

    if settings.min_available_clients > num_clients:
        raise ValueError(f"min_available_clients={settings.min_available_clients} > num_clients={num_clients}")
    if backend == "inprocess":
        grid = InProcessGrid(client_app, num_clients, drop_partitions, lose_after)
        return run_rounds(grid, settings, mode="inprocess")
    if backend != "ray":
        raise ValueError(f"backend must be 'inprocess' or 'ray', got {backend!r}")
    if drop_partitions or lose_after:
        raise ValueError("drop_partitions / lose_after are only supported by the in-process backend; "
                         "use fail_partitions")
    from flwr.simulation import run_simulation

    results: list[FederatedRun] = []
    run_simulation(
        server_app=make_server_app(settings, on_result=results.append, mode="ray-simulation"),
        client_app=client_app,
        num_supernodes=num_clients,
        backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                        "init_args": {"num_cpus": ray_num_cpus, "num_gpus": 0, "include_dashboard": False}},
    )
    if not results:
        raise RuntimeError("the Flower simulation ended without a result; see the log above for the ServerApp error")
    return results[0]
