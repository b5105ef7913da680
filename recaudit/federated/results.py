"""What a federated run reports: the ``federated`` check's metrics, tables, figures and notes.

Shared by the check (``recaudit.federated.check``), the ServerApp (which writes a run's
AuditResults in a deployment) and ``recaudit report`` (which converts raw run records), so that
none of them imports another: the check's identity (name, title, references, params) is here too.
"""

from __future__ import annotations

from typing import Any

from recaudit.federated.config import FederatedSettings
from recaudit.federated.params import FederatedParams
from recaudit.federated.pplr import PPLR_NOTES
from recaudit.federated.records import FederatedRun
from recaudit.results import AuditResults, CheckResult, FigureSpec, GroupTable, MetricValue, Series

CHECK_NAME = "federated"
TITLE = "Federated LoRA recommender: per-client performance, communication and privacy"
REFERENCES = (
    "Zhao et al. 2024, LLM-based Federated Recommendation (PPLR), arXiv:2402.09959",
    "Bao et al. 2023, TALLRec, RecSys",
    "McMahan et al. 2017, Communication-Efficient Learning of Deep Networks from Decentralized Data (FedAvg)",
    "Abadi et al. 2016, Deep Learning with Differential Privacy (DP-SGD); Opacus",
)

# metric key → (direction, description)
METRICS: dict[str, tuple[str, str]] = {
    "auc.mean": ("higher_is_better", "mean over clients of the client's test AUC after the last round"),
    "auc.min": ("higher_is_better", "worst client's test AUC"),
    "auc.max": ("higher_is_better", "best client's test AUC"),
    "auc.std": ("lower_is_better", "std of client AUCs (performance imbalance)"),
    "auc.gap": ("lower_is_better", "best minus worst client AUC (performance imbalance)"),
    "bytes.down_per_round": ("lower_is_better", "serialised bytes server → clients per training round"),
    "bytes.up_per_round": ("lower_is_better", "serialised bytes clients → server per training round"),
    "params.client_trainable": ("neutral", "LoRA parameters each client trains"),
    "params.shared": ("lower_is_better", "LoRA parameters each client sends (server side of the allocation)"),
    "params.private": ("neutral", "LoRA parameters kept on the client (never sent)"),
    "params.client_model_share": ("lower_is_better", "share of the model's weights a client would hold if the "
                                                     "server ran the shared blocks (PPLR split execution)"),
    "dp.epsilon_max": ("lower_is_better", "largest ε spent by any client (DP-SGD, per-sample unit)"),
    "failures": ("lower_is_better", "client failures (raised or no reply) over all rounds"),
    "rounds.aggregated": ("higher_is_better", "rounds whose global adapter was updated"),
    "rounds.planned": ("neutral", "rounds the run was configured for"),
    "complete": ("higher_is_better", "1 when every planned round ran; 0 when the run stopped early (lost nodes)"),
    "dp.noise_multiplier": ("neutral", "σ of DP-SGD (largest over clients): noise std = σ · max_grad_norm"),
    "dp.sample_rate": ("neutral", "Poisson sampling rate q of DP-SGD (largest over clients)"),
    "dp.steps": ("neutral", "DP-SGD steps of the client with most steps, all rounds"),
    "dp.delta": ("neutral", "δ at which ε is reported"),
    "dp.secure_noise": ("higher_is_better", "1 when every client drew noise from OS entropy; 0 when seeded (insecure)"),
    "split.activation_bytes_per_round": ("lower_is_better", "activation + gradient bytes between clients and server "
                                                            "per round (split execution)"),
}
COMPARED = ("auc.mean", "auc.min", "auc.std", "auc.gap", "bytes.up_per_round")

def _metric(key: str, value: float, n: int, prefix: str = "federated", variant: str | None = None) -> MetricValue:
    direction, desc = METRICS.get(key, ("neutral", ""))
    return MetricValue(name=f"{prefix}.{key}", value=value, n=n, direction=direction, variant=variant,  # type: ignore[arg-type]
                       description=desc)


def result_fields(runs: dict[str, FederatedRun], primary: str, manifest: dict) -> dict[str, Any]:
    """Metrics, tables, figures and notes of a CheckResult from the runs (``primary`` first)."""
    main = runs[primary]
    n = len(main.final_evals())
    summ = {name: run.summary() for name, run in runs.items()}
    metrics = [_metric(k, v, n, variant=primary) for k, v in summ[primary].items()]
    for name in runs:
        if name == primary:
            continue
        metrics += [_metric(k, v, n, f"federated.baseline.{name}", name) for k, v in summ[name].items()]
        metrics += [MetricValue(name=f"federated.{k}.delta_vs_{name}", value=summ[primary][k] - summ[name][k], n=n,
                                direction=METRICS[k][0], variant=primary,  # type: ignore[arg-type]
                                description=f"{primary} minus {name}: {METRICS[k][1]}") for k in COMPARED]
    info = {c["client_id"]: c for c in manifest.get("clients", [])}
    finals = {name: {r.partition_id: r for r in run.final_evals()} for name, run in runs.items()}
    pids = sorted({p for f in finals.values() for p in f} | set(info))
    client_rows = []
    for p in pids:
        c = info.get(p, {})
        row: list[Any] = [p, c.get("n_users"), ", ".join(c.get("top_genres", [])), c.get("n_train"), c.get("n_test")]
        row += [finals[name][p].auc if p in finals[name] else None for name in runs]
        client_rows.append(row)
    tables = [
        GroupTable(name="clients", columns=["client", "users", "top genres", "train", "test"]
                   + [f"auc ({name})" for name in runs], rows=client_rows,
                   description="Each client's data and its personalised model's test AUC after the last round."),
        GroupTable(name="rounds", columns=["strategy", "round", "sampled", "succeeded", "failed", "aggregated",
                                           "bytes down", "bytes up", "mean auc"],
                   rows=[[name, r.round, r.sampled, r.succeeded, r.failed, str(r.aggregated), r.bytes_down,
                          r.bytes_up, r.mean_auc] for name, run in runs.items() for r in run.rounds],
                   description="Per training round: participation and serialised Flower message bytes."),
        GroupTable(name="balance", columns=["strategy", "round", "client", "n train", "loss before", "train loss",
                                            "lr scale", "weight", "epsilon", "bytes up"],
                   rows=[[name, r.round, r.partition_id, r.n_train, r.loss_before, r.train_loss, r.lr_scale,
                          r.weight, r.epsilon, r.bytes_up] for name, run in runs.items() for r in run.train],
                   description="Dynamic balance log: the loss each client started from, its learning-rate "
                               "scale and its aggregation weight."),
    ]
    failures = [[name, f.round, f.phase, f.partition_id, f.reason.splitlines()[0][:200]]
                for name, run in runs.items() for f in run.failures]
    if failures:
        tables.append(GroupTable(name="failures", columns=["strategy", "round", "phase", "client", "reason"],
                                 rows=failures, description="Clients that raised or did not answer; the "
                                                            "round went on with the others."))
    figures = [
        FigureSpec(name="auc_by_round", kind="line", title="Client test AUC per round", x_label="round",
                   y_label="AUC", series=[s for name, run in runs.items() for s in _auc_series(name, run)]),
        FigureSpec(name="auc_by_client", kind="bar", title="Per-client AUC after the last round", x_label="client",
                   y_label="AUC", series=[Series(label=name, x=[str(p) for p in pids],
                                                 y=[finals[name][p].auc if p in finals[name] else float("nan")
                                                    for p in pids]) for name in runs]),
    ]
    eps = main.epsilon_by_client()
    if eps:
        figures.append(FigureSpec(name="epsilon_by_round", kind="line", title="DP ε spent per client",
                                  x_label="round", y_label="ε", series=[
                                      Series(label=f"client {p}", x=[r for r, _ in v], y=[e for _, e in v])
                                      for p, v in sorted(eps.items())]))
    s = main.settings
    notes = [
        f"{len(pids)} clients, partition scheme {manifest.get('scheme') or 'given'}, genre skew (mean JS divergence "
        f"to the population) {manifest.get('genre_skew_js', float('nan')):.3f}.",
    ]
    notes += [f"Strategy {name}: {run.variant}." for name, run in runs.items() if run.variant]
    if any(name == "pplr" for name in runs):
        notes += list(PPLR_NOTES)
    if any(name == "pplr-softmax" for name in runs):
        notes.append("pplr-softmax (simplified variant, not the paper): weights = β·softmax(loss/τ) + (1−β)·n/Σn "
                     f"with τ={s.get('balance_tau')}, β={s.get('balance_beta')}; lr scale = clip((loss/mean)^γ, "
                     f"{s.get('balance_lr_min')}, {s.get('balance_lr_max')}) with γ={s.get('balance_lr_gamma')}.")
    kept = ("nothing (FedAvg shares all)" if not s.get("alloc_enabled") else
            f"the first {s.get('alloc_first_k')} and last {s.get('alloc_last_k')} decoder blocks"
            + (", the embeddings" if s.get("alloc_embeddings") else "") + (" and the LM head" if s.get("alloc_lm_head")
                                                                           else ""))
    if s.get("split_execution"):
        notes.append(f"Flexible allocation with split execution: the client holds and runs {kept}; the server holds "
                     "and runs the other blocks (and their LoRA, one copy per client); activations and their "
                     "gradients cross every step. Realised in-process (the activation channel is a function call "
                     "whose payload bytes are counted), not over Flower's network transport.")
    else:
        notes.append(f"Flexible allocation: LoRA tensors of {kept} stay on the client; every client still runs the "
                     "whole model locally (split execution off: the client-cost saving is not realised, "
                     "params.client_model_share is what it would hold).")
    notes.append("Bytes are the serialised Flower message trees (arrays, config and metrics), per training round.")
    if eps:
        unit = s.get("dp_unit", "record")
        notes.append("DP-SGD unit of privacy: " + (
            "one user of a client (users Poisson-sampled with all their samples, per-user gradient clipping), "
            "add/remove" if unit == "user" else
            "one TALLRec sample of a client (record-level, add/remove); a user contributes up to "
            f"{s.get('max_per_user', 'several')} samples, so this is not user-level DP (dp_unit='user' is)")
            + f"; δ={s.get('dp_delta')}, accountant {s.get('dp_accountant', 'rdp')} (Opacus); σ, q and steps per "
            "client are in the 'dp' table, enough to re-derive ε.")
        if not s.get("dp_insecure_reproducible_noise"):
            notes.append("DP noise: Opacus secure_mode (floating-point attack mitigation) with a torch generator "
                         "seeded from 64 bits of OS entropy (os.urandom), Poisson sampling likewise; not a "
                         "cryptographic stream (Opacus' CSPRNG needs torchcsprng, unavailable for current torch).")
        else:
            notes.append("INSECURE DP NOISE: noise and sampling were seeded from the public seed "
                         "(--insecure-reproducible-noise); anyone with the seed can regenerate and subtract the "
                         "noise, so the reported ε does not hold against the server.")
    leaks = sorted({x for run in runs.values() for x in run.unnoised_outputs})
    if leaks:
        notes.append("Leaves a client without DP noise: " + "; ".join(leaks) + ".")
    for name, run in runs.items():
        if run.incomplete:
            notes.append(f"INCOMPLETE {name} run: {run.stop_reason}. Records up to that point are kept.")
    dp_rows = [[name, r.round, r.partition_id, r.dp_noise_multiplier, r.dp_sample_rate, r.dp_steps,
                s.get("dp_delta"), r.epsilon, str(r.dp_secure_noise)]
               for name, run in runs.items() for r in run.train if r.epsilon is not None]
    if dp_rows:
        tables.append(GroupTable(name="dp", columns=["strategy", "round", "client", "sigma", "sample rate",
                                                     "steps (all rounds)", "delta", "epsilon", "secure noise"],
                                 rows=dp_rows, description="DP-SGD parameters as reported by each client: ε is the "
                                 "RDP accountant's over `steps` Poisson-sampled steps at rate q with noise σ."))
    return {"metrics": metrics, "tables": tables, "figures": figures, "notes": notes}


def results_from_runs(runs: dict[str, FederatedRun], primary: str, manifest: dict,
                      audit_name: str = "federated") -> AuditResults:
    """AuditResults holding one ``federated`` check built from ``runs`` (what ``recaudit report`` renders)."""
    # what FederatedCheck(params).new_result(...) makes, without importing the check (it imports the ServerApp)
    params = FederatedParams(strategy=primary, compare_fedavg=len(runs) > 1,  # type: ignore[arg-type]
                             train=_run_train(runs[primary]))
    result = CheckResult(name=CHECK_NAME, check=CHECK_NAME, title=TITLE, risk="fairness",
                         params=params.model_dump(mode="json"), references=list(REFERENCES),
                         **result_fields(runs, primary, manifest))
    return AuditResults(audit_name=audit_name, checks=[result])


def _run_train(run: FederatedRun) -> dict[str, Any]:
    # the TrainConfig the run trained with (its recorded settings), so the params do not show the check's preset
    if not run.settings:
        return {}
    return FederatedSettings.from_flwr_config(run.settings).train_config().model_dump(exclude={"seed"})


def _auc_series(name: str, run: FederatedRun) -> list[Series]:
    rounds = sorted({r.round for r in run.evals})
    by_round = [[e.auc for e in run.evals if e.round == k] for k in rounds]
    return [Series(label=f"{name} mean", x=rounds, y=[sum(v) / len(v) for v in by_round]),
            Series(label=f"{name} min", x=rounds, y=[min(v) for v in by_round])]
