"""``recaudit federate pplr|pplr-softmax|fedavg``: federated LoRA fine-tuning of the TALLRec recommender on Flower.

    recaudit federate pplr --data ../shared/data/ml-100k --clients 3 --rounds 2 --non-iid --out fed.json
    recaudit federate fedavg --data runs/fed/clients --rounds 3 --dp-epsilon 8 --out fed.json

``--data`` is a MovieLens folder (ml-100k or ml-latest-small: users are sampled, partitioned
into clients and written under ``--workdir``) or a federation folder written earlier
(``federation.json`` + ``client_<i>/``). PPLR runs are compared with a FedAvg baseline unless
``--no-baseline``. Writes an AuditResults JSON (``recaudit report`` renders it) holding one
``federated`` check: per-client AUC, imbalance, bytes per round, parameter counts, ε, failures.
For a real deployment (SuperLink + SuperNodes) see docs/federated-deployment.md.
``pplr`` is the paper's dynamic balance (client-specific aggregation with curriculum heating);
``pplr-softmax`` is recaudit's earlier simplified variant. DP noise comes from OS entropy unless
``--insecure-reproducible-noise`` (results then say the noise is insecure).
Exit status 0 on success, 2 on bad input, 3 when a run stopped early (nodes lost below
min-available): the results JSON is still written, with the rounds that ran.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_WORKDIR = Path("runs/federated")
EXIT_INCOMPLETE = 3  # recaudit's code for "ran, but the evidence is incomplete"


def add_parser(subparsers: Any) -> None:
    """Register the ``federate`` command."""
    p = subparsers.add_parser("federate", help="federated LoRA fine-tuning (PPLR or FedAvg) on Flower",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("strategy", choices=["pplr", "pplr-softmax", "fedavg"])
    p.add_argument("--data", type=Path, required=True, help="MovieLens folder or federation folder")
    p.add_argument("--clients", type=int, default=None,
                   help="number of clients (default 3; with a prepared federation folder, read from it)")
    p.add_argument("--users-per-client", type=int, default=10)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--non-iid", action="store_true", help="partition by genre preference (Dirichlet α) instead of IID")
    p.add_argument("--alpha", type=float, default=0.5, help="Dirichlet concentration of --non-iid (default 0.5)")
    p.add_argument("--history-len", type=int, default=5)
    p.add_argument("--max-per-user", type=int, default=8, help="samples per user (0 = all)")
    p.add_argument("--model", default="default", help="base model: 'default' (SmolLM2-135M), HF folder or .gguf")
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--local-epochs", type=int, default=1)
    p.add_argument("--first-k", type=int, default=1, help="PPLR allocation: first decoder blocks kept on the client")
    p.add_argument("--last-k", type=int, default=1, help="PPLR allocation: last decoder blocks kept on the client")
    p.add_argument("--torch-threads", type=int, default=0, help="torch threads per client (0 = default)")
    p.add_argument("--dp-epsilon", type=float, help="train with Opacus DP-SGD to this target ε per client")
    p.add_argument("--dp-delta", type=float, default=1e-5)
    p.add_argument("--dp-unit", choices=["record", "user"], default="record",
                   help="unit of privacy: one sample (default) or one user (user-level DP-SGD)")
    p.add_argument("--insecure-reproducible-noise", action="store_true",
                   help="seed DP noise from --seed (reproducible but NOT private; marked insecure in results)")
    p.add_argument("--split-execution", action="store_true",
                   help="PPLR split execution: clients run only their layers, the server the rest (in-process)")
    p.add_argument("--min-available", type=int, default=0,
                   help="nodes a training round needs (default: all clients)")
    p.add_argument("--node-wait-timeout", type=float, default=600.0,
                   help="seconds to wait for min-available nodes before stopping the run")
    p.add_argument("--lose-partitions", default="",
                   help="failure injection: 'P@R,…' — client P disconnects for good after training round R")
    p.add_argument("--fail-partitions", default="", help="failure injection: comma-separated client ids that raise")
    p.add_argument("--backend", choices=["inprocess", "ray"], default="inprocess",
                   help="in-process grid (default) or Flower's Ray simulation")
    p.add_argument("--prepare-only", action="store_true",
                   help="only write the per-client data folders under --workdir (for a deployment) and exit")
    p.add_argument("--no-baseline", action="store_true", help="do not also run FedAvg")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where client data folders are written")
    p.add_argument("--out", type=Path, default=Path("federated_results.json"), help="AuditResults JSON to write")
    p.set_defaults(func=run_federate)


def _federation_folder(args: argparse.Namespace) -> Path:
    from recaudit.federated.check import prepare_federation
    from recaudit.federated.clientdata import MANIFEST

    data: Path = args.data
    if (data / MANIFEST).is_file():
        from recaudit.federated.clientdata import read_manifest

        n = int(read_manifest(data)["n_clients"])
        if args.clients is not None and args.clients != n:
            raise ValueError(f"--clients {args.clients}, but the federation in {data} has {n} clients "
                             "(leave --clients out to use the folder's)")
        return data
    from recaudit.data.loaders import load_movielens_100k, load_movielens_latest_small

    if (data / "u.data").is_file():
        catalog, interactions = load_movielens_100k(data)
    elif (data / "ratings.csv").is_file():
        catalog, interactions = load_movielens_latest_small(data)
    else:
        raise ValueError(f"--data {data}: neither a federation folder ({MANIFEST}) nor MovieLens (u.data / ratings.csv)")
    return prepare_federation(interactions, catalog, args.workdir / "clients", args.clients or 3, args.users_per_client,
                              "genre" if args.non_iid else "iid", args.alpha, args.history_len,
                              args.max_per_user or None, args.seed)


def run_federate(args: argparse.Namespace) -> int:
    """Handler of ``recaudit federate``."""
    from recaudit.audits.files import write_text_atomic
    from recaudit.audits.run_info import library_versions, platform_summary
    from recaudit.federated.check import FederatedCheck
    from recaudit.results import AuditResults, Reproducibility

    t0 = time.perf_counter()
    try:
        settings = {"max_length": args.max_length, "batch_size": args.batch_size, "lr": args.lr,
                    "local_epochs": args.local_epochs, "dp_delta": args.dp_delta,
                    "fail_partitions": args.fail_partitions, "alloc_first_k": args.first_k,
                    "alloc_last_k": args.last_k, "torch_threads": args.torch_threads, "dp_unit": args.dp_unit,
                    "dp_insecure_reproducible_noise": args.insecure_reproducible_noise,
                    "split_execution": args.split_execution, "node_wait_timeout": args.node_wait_timeout}
        if args.min_available:
            settings.update(min_available_clients=args.min_available, min_fit_clients=args.min_available)
        check = FederatedCheck({"strategy": args.strategy, "compare_fedavg": not args.no_baseline,
                                "n_clients": args.clients or 3, "users_per_client": args.users_per_client,
                                "scheme": "genre" if args.non_iid else "iid", "alpha": args.alpha,
                                "history_len": args.history_len, "max_per_user": args.max_per_user or None,
                                "rounds": args.rounds, "model": args.model, "backend": args.backend,
                                "dp_epsilon": args.dp_epsilon, "settings": settings, "seed": args.seed,
                                "lose_after": _lose_after(args.lose_partitions)})
        folder = _federation_folder(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"recaudit federate: error: {e}", file=sys.stderr)
        return 2
    if args.prepare_only:
        print(f"client data folders written to {folder}")
        return 0
    result = check.run_on_folder(folder)
    repro = Reproducibility(seed=args.seed, config={"command": "federate", **{k: str(v) for k, v in vars(args).items()
                                                                             if k != "func"}},
                            library_versions=library_versions(), platform=platform_summary(),
                            duration_s=time.perf_counter() - t0)
    result.reproducibility = repro
    results = AuditResults(audit_name=f"federated {args.strategy}", checks=[result], reproducibility=repro)
    write_text_atomic(args.out, results.to_json())
    s = {m.name: m.value for m in result.metrics}
    print(f"{args.strategy}: client AUC mean {s['federated.auc.mean']:.4f} min {s['federated.auc.min']:.4f} "
          f"std {s['federated.auc.std']:.4f}; {s['federated.bytes.up_per_round']:.0f} B up per round → {args.out}")
    incomplete = [n for n in result.notes if n.startswith("INCOMPLETE")]
    if incomplete:
        for note in incomplete:
            print(f"recaudit federate: {note}", file=sys.stderr)
        return EXIT_INCOMPLETE
    return 0


def _lose_after(text: str) -> dict[int, int]:
    """Parse ``'P@R,…'`` into {partition: rounds answered before it disconnects}."""
    out: dict[int, int] = {}
    for part in filter(None, (t.strip() for t in text.split(","))):
        pid, sep, rnd = part.partition("@")
        if not sep or not pid.isdigit() or not rnd.isdigit():
            raise ValueError(f"--lose-partitions: expected 'P@R' (client P leaves after round R), got {part!r}")
        out[int(pid)] = int(rnd)
    return out
