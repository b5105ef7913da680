"""The ``federated`` check: PPLR-style federated LoRA fine-tuning vs FedAvg, per-client audit.

Partitions the audit's users into clients (IID or non-IID by genre), fine-tunes the TALLRec LoRA
recommender with Flower (PPLR; FedAvg as the baseline), and reports per-client AUC and its
imbalance (std, min, max, gap), bytes per round in each direction, the client's trainable and
shared parameter counts, client failures and — with DP — the ε each client spent.

Params (``recaudit.federated.params``): ``train`` is the clients' one ``TrainConfig``, nested
(``train: {lora_r: 16, lr: 5e-4, epochs: 2}``); ``settings`` holds further ``FederatedSettings``
fields, where the flat training keys of earlier versions (``lr``, ``local_epochs`` …) still work.
Metrics, tables and notes are built in ``recaudit.federated.results`` (the ServerApp writes them too).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from recaudit.checks import Check, CheckContext, register_check
from recaudit.metric_names import MetricSpec
from recaudit.federated.clientdata import read_manifest, write_federation
from recaudit.federated.config import FederatedSettings
from recaudit.federated.params import FederatedParams
from recaudit.federated.partition import partition_users
from recaudit.federated.results import CHECK_NAME, COMPARED, METRICS, REFERENCES, TITLE, result_fields
from recaudit.federated.results import results_from_runs as results_from_runs  # re-exported: recaudit report
from recaudit.results import CheckResult


def prepare_federation(interactions: Any, catalog: Any, out_dir: str | Path, n_clients: int, users_per_client: int,
                       scheme: str = "genre", alpha: float = 0.5, history_len: int = 5,
                       max_per_user: int | None = 8, seed: int = 0, valid_frac: float = 0.1,
                       test_frac: float = 0.2) -> Path:
    """Sample ``n_clients × users_per_client`` users, partition them and write the federation folder."""
    min_rows = history_len + 3  # enough history for train, valid and test samples
    users = interactions.sample_users(n_clients * users_per_client, seed, min_interactions=min_rows)
    if len(users) < n_clients:
        raise ValueError(f"only {len(users)} users have ≥ {min_rows} ratings; need at least n_clients={n_clients}")
    subset = interactions.filter_users(users)
    parts = partition_users(subset, catalog, n_clients, scheme, seed, alpha)  # type: ignore[arg-type]
    return write_federation(out_dir, parts, subset, catalog, history_len, max_per_user, valid_frac, test_frac,
                            seed=seed, scheme=scheme)


@register_check(CHECK_NAME)
class FederatedCheck(Check[FederatedParams]):
    """PPLR-style federated LoRA fine-tuning audited per client (imbalance, bytes, ε, failures)."""

    records_evidence = False  # trains and evaluates its own models; its evidence is that record

    title = TITLE
    risk = "fairness"
    references = REFERENCES
    metrics = (
        MetricSpec("federated.auc.gap", headline=True),
        MetricSpec("federated.{key}", values={"key": tuple(METRICS)}),
        MetricSpec("federated.baseline.fedavg.{key}", values={"key": tuple(METRICS)},
                   when=lambda p: p.compare_fedavg and p.strategy != "fedavg"),
        MetricSpec("federated.{key}.delta_vs_fedavg", values={"key": COMPARED},
                   when=lambda p: p.compare_fedavg and p.strategy != "fedavg"),
    )

    def __init__(self, params: Any = None):
        super().__init__(params)
        if self.params.dp_epsilon is not None:
            self.risk = "privacy"  # type: ignore[misc]

    def settings(self, data_dir: Path, strategy: str, n_clients: int | None = None) -> FederatedSettings:
        """The FederatedSettings of one strategy's run (every client needed unless ``settings`` says otherwise)."""
        p = self.params
        n = n_clients or p.n_clients
        base = {"strategy": strategy, "num_rounds": p.rounds, "model": p.model, "data_dir": str(data_dir),
                "seed": p.seed, "min_available_clients": n, "min_fit_clients": n, **p.train_settings()}
        if p.dp_epsilon is not None:
            base.update(dp_enabled=True, dp_epsilon=p.dp_epsilon)
        extra = dict(p.settings)
        if strategy == "fedavg":
            extra["split_execution"] = False  # the FedAvg baseline shares everything: nothing to split
        return FederatedSettings.model_validate({**base, **extra, "strategy": strategy})

    def run_on_folder(self, folder: Path) -> CheckResult:
        """Run the configured strategy (and the FedAvg baseline) on a federation folder."""
        from recaudit.federated.simulation import run_federated

        manifest = read_manifest(folder)
        names = [self.params.strategy] + (["fedavg"] if self.params.compare_fedavg and
                                          self.params.strategy != "fedavg" else [])
        n = int(manifest["n_clients"])
        runs = {name: run_federated(self.settings(folder, name, n), n, self.params.backend,
                                    lose_after=self.params.lose_after or None)
                for name in names}
        return self.new_result(**result_fields(runs, self.params.strategy, manifest))

    def run(self, ctx: CheckContext) -> CheckResult:
        catalog = ctx.require_catalog(self.name)
        interactions = ctx.require_interactions(self.name)
        p = self.params
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(ctx.workdir) / "federated" if ctx.workdir is not None else Path(tmp)
            folder = prepare_federation(interactions, catalog, root / "clients", p.n_clients, p.users_per_client,
                                        p.scheme, p.alpha, p.history_len, p.max_per_user, p.seed)
            return self.run_on_folder(folder)
