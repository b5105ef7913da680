"""The Flower ServerApp: run PPLR or FedAvg over LoRA tensors and write the run's records.

Settings come from ``make_server_app(settings)`` (simulation, CLI) or from Flower's run config
(``flwr run``: ``[tool.flwr.app.config]`` of ``recaudit/federated/flwr_app/pyproject.toml``,
overridable with ``--run-config``). When ``out`` is set, an AuditResults JSON (one ``federated``
check; ``recaudit report`` renders it) is written there and the raw ``FederatedRun`` records beside
it (``<out>.records.json``), on the SuperLink's machine in a deployment. A run that loses nodes
below ``min_available_clients`` stops after ``node_wait_timeout`` with its records so far written
and marked ``incomplete``; in a deployment the ServerApp then raises, so Flower marks the run failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from recaudit.federated.config import CLIENT_KEYS, FederatedSettings
from recaudit.federated.records import FederatedRun
from recaudit.federated.results import results_from_runs
from recaudit.federated.strategy import IncompleteRun, build_strategy

OnResult = Callable[[FederatedRun], None]


def run_rounds(grid: Grid, settings: FederatedSettings, mode: str = "") -> FederatedRun:
    """Run ``settings.num_rounds`` rounds of the configured strategy on ``grid``; return the records."""
    strategy = build_strategy(settings)
    client_config = ConfigRecord({**settings.to_flwr_config(CLIENT_KEYS), "lr-scale": 1.0})
    t0 = time.perf_counter()
    run = strategy.run
    run.unnoised_outputs = unnoised_outputs(settings)
    try:
        strategy.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=settings.num_rounds,
                       timeout=settings.round_timeout, train_config=client_config,
                       evaluate_config=ConfigRecord(dict(client_config)))
    except IncompleteRun as e:
        run.incomplete, run.stop_reason = True, str(e)
    run.seconds = time.perf_counter() - t0
    run.mode = mode
    if settings.out:
        write_run(run, Path(settings.out))
    return run


def unnoised_outputs(settings: FederatedSettings) -> list[str]:
    """What a client sends the server without DP noise (everything but the noised shared LoRA tensors)."""
    out = ["train reply: num-examples, partition-id, loss-before (validation loss), train-loss, lr-scale, "
           "train-seconds, parameter counts, epsilon and DP parameters",
           "evaluate reply: num-examples (test), auc, acc, logloss"]
    if settings.split_execution:
        out.append("split execution: activations of the client's front blocks and gradients of the server's "
                   "output, every step")
    if not settings.dp_enabled:
        out.insert(0, "shared LoRA tensors (no DP: nothing is noised)")
    return out


def write_run(run: FederatedRun, out: Path) -> None:
    """Write ``out`` (AuditResults JSON with a ``federated`` check) and ``<out>.records.json`` (raw records)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".records.json").write_text(run.model_dump_json(indent=2), encoding="utf-8")
    out.write_text(results_from_runs({run.strategy: run}, run.strategy, {}, audit_name=f"federated {run.strategy} "
                                     f"({run.mode or 'deployment'})").to_json(), encoding="utf-8")


def make_server_app(settings: FederatedSettings | None = None, on_result: OnResult | None = None,
                    mode: str = "simulation") -> ServerApp:
    """A ServerApp running ``settings`` (or the run config when None); ``on_result`` receives the records."""
    server_app = ServerApp()

    @server_app.main()
    def main(grid: Grid, context: Context) -> None:
        s = settings if settings is not None else FederatedSettings.from_flwr_config(context.run_config)
        run = run_rounds(grid, s, mode if settings is not None else "deployment")
        if on_result is not None:
            on_result(run)
        if run.incomplete and settings is None:
            # a deployment: records are written; fail the run so that Flower does not report success
            raise RuntimeError(f"federated run incomplete: {run.stop_reason}"
                               + (f"; records written to {s.out}" if s.out else ""))

    return server_app


app = make_server_app()
