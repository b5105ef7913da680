"""The Flower ServerApp: run PPLR or FedAvg over LoRA tensors and write the run's records.

Settings come from ``make_server_app(settings)`` (simulation, CLI) or from Flower's run config
(``flwr run``: ``[tool.flwr.app.config]`` of ``recaudit/federated/flwr_app/pyproject.toml``,
overridable with ``--run-config``). When ``out`` is set, the ``FederatedRun`` JSON is written
there (on the SuperLink's machine in a deployment).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from flwr.app import ArrayRecord, ConfigRecord, Context
from flwr.serverapp import Grid, ServerApp

from recaudit.federated.config import CLIENT_KEYS, FederatedSettings
from recaudit.federated.records import FederatedRun
from recaudit.federated.strategy import build_strategy

OnResult = Callable[[FederatedRun], None]


def run_rounds(grid: Grid, settings: FederatedSettings, mode: str = "") -> FederatedRun:
    """Run ``settings.num_rounds`` rounds of the configured strategy on ``grid``; return the records."""
    strategy = build_strategy(settings)
    client_config = ConfigRecord(settings.to_flwr_config(CLIENT_KEYS))
    t0 = time.perf_counter()
    strategy.start(grid=grid, initial_arrays=ArrayRecord(), num_rounds=settings.num_rounds,
                   timeout=settings.round_timeout, train_config=client_config,
                   evaluate_config=ConfigRecord(dict(client_config)))
    run = strategy.run
    run.seconds = time.perf_counter() - t0
    run.mode = mode
    if settings.out:
        path = Path(settings.out)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(run.model_dump_json(indent=2), encoding="utf-8")
    return run


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

    return server_app


app = make_server_app()
