"""``recaudit unlearn {apa,receraser,e2urec,badt,neggrad,retrain,sisa,ga,all}``: forget users, verify it.

    recaudit unlearn apa --data ../shared/data/ml-100k --forget 13,42 --out unlearn.json
    recaudit unlearn apa sisa e2urec --data ./ml-100k --forget-file request.txt --shards 8 --top-k 2
    recaudit unlearn apa --data ./ml-100k --forget-users 4          # 4 users drawn at random (experiments)
    recaudit unlearn all --data ./ml-100k --users 40 --lora-layers 4 --workdir runs/unlearn
    recaudit unlearn all --data ./ml-100k --device cuda --users 0 --never-seen-users 100 --batch-size 32 --embedding model
    recaudit unlearn apa retrain --data ./ml-100k --train-samples 64 --early-stop-patience 10   # TALLRec's few-shot regime

``--data`` is a MovieLens folder (ml-100k: u.data; ml-latest-small: ratings.csv).
``--users 0`` trains on every user with enough history except the ``--never-seen-users``.
``--train-samples 16|64|256`` is TALLRec's few-shot regime (that many training samples, seeded;
randomly drawn forget users then come from the users left). ``--early-stop-patience N`` keeps each
adapter's best validation-AUC step and stops after N evaluations without a gain (TALLRec: 10), on a
``--valid-frac`` validation split that holds no forgotten user.
An erasure request names its users: ``--forget 13,42`` or ``--forget-file`` (one id per line,
``#`` comments); ``--forget-users N`` draws N at random for experiments. The run records an
erasure-request id (``--request-id``, else a UUID) and a salted SHA-256 of the forgotten ids (the
salt is printed once on stderr, never stored); no file it writes holds a forgotten id, and every
adapter trained with the forgotten users (original, e2urec, badt, neggrad, ga) is deleted from
``--workdir`` at the end unless ``--keep-artifacts``. The model is retrained from scratch without those users as the reference every method is verified
against (test AUC, forget-set metrics, JS divergence to it, membership-inference advantage, time).
Adapters are written as safetensors under ``--workdir``, and ``partial_results.json`` there after
each method (a run stopped by a time limit keeps what it finished; the same command with
``--resume`` runs only the methods still missing). ``--device auto`` uses a CUDA
GPU when torch sees one (deterministic cuBLAS, TF32 matmuls). Writes an AuditResults JSON holding one
``unlearning`` check (``recaudit report`` renders it). Exit status 0 on success, 2 on bad input.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from recaudit.unlearning.params import METHODS

DEFAULT_WORKDIR = Path("runs/unlearning")


def add_parser(subparsers: Any) -> None:
    """Register the ``unlearn`` command."""
    p = subparsers.add_parser("unlearn", help="unlearn users with APA, E2URec, SISA, retraining or gradient ascent",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    p.add_argument("methods", nargs="+", choices=[*METHODS, "all"], help="methods to run (retrain always runs)")
    p.add_argument("--data", type=Path, required=True, help="MovieLens folder (ml-100k or ml-latest-small)")
    p.add_argument("--forget", default=None, help="the erasure request: comma-separated user ids to forget")
    p.add_argument("--forget-file", type=Path, default=None, help="the erasure request: a file of user ids, one per line")
    p.add_argument("--forget-users", default=None,
                   help="experiments: how many users to forget, drawn with --seed (default 4; ids also accepted)")
    p.add_argument("--request-id", default=None, help="erasure-request id recorded in the result (default: a UUID)")
    p.add_argument("--keep-artifacts", action="store_true",
                   help="keep the adapters trained with the forgotten users (original, e2urec, badt, neggrad, ga)")
    p.add_argument("--users", type=int, default=40, help="training users sampled from the data (default 40; 0 = every user not held out)")
    p.add_argument("--never-seen-users", type=int, default=10, help="held-out users: the MIA non-members (default 10)")
    p.add_argument("--history-len", type=int, default=10)
    p.add_argument("--max-per-user", type=int, default=10, help="samples per user (0 = all)")
    p.add_argument("--model", default="default", help="base model: 'default' (SmolLM2-135M), HF folder or .gguf")
    p.add_argument("--lora-r", type=int, default=8)
    p.add_argument("--lora-layers", type=int, default=0, help="LoRA on the top N blocks only, bottom cached (0 = all)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=384)
    p.add_argument("--train-samples", type=int, default=0,
                   help="few-shot: training samples kept, e.g. 16, 64 or 256 as TALLRec (default 0 = all)")
    p.add_argument("--early-stop-patience", type=int, default=0,
                   help="early stopping on validation AUC: evaluations without a gain before stopping (0 = off; TALLRec 10)")
    p.add_argument("--eval-every", type=int, default=0,
                   help="early stopping: steps between validation evaluations (0 = TALLRec's rule)")
    p.add_argument("--valid-frac", type=float, default=0.1, help="early stopping: validation share of each user's samples")
    p.add_argument("--shards", type=int, default=4, help="K shards for SISA and APA (default 4)")
    p.add_argument("--top-k", type=int, default=2, help="APA: shards aggregated per sample (default 2)")
    p.add_argument("--temperature", type=float, default=0.1, help="APA: softmax temperature of the weights")
    p.add_argument("--embedding", choices=["minilm", "hashing", "model"], default="minilm",
                   help="APA partition embedding: MiniLM, hashed bag of words, or the base LLM's mean hidden state")
    p.add_argument("--device", default="auto", help="auto (GPU when visible) | cpu | cuda | cuda:N")
    p.add_argument("--apa-group-by-user", action="store_true",
                   help="APA: cluster users, not samples, so forgetting a user retrains one shard")
    p.add_argument("--apa-partition", choices=["kmeans", "user_kmeans", "user_hash"], default="kmeans",
                   help="APA partition: sample k-means (paper), user k-means, or hashed user id (whole-pipeline exact)")
    p.add_argument("--apa-independent-init", action="store_true",
                   help="APA: a different LoRA init per shard (the old behaviour; breaks APA(D))")
    p.add_argument("--loss-on", choices=["answer", "sequence"], default="answer",
                   help="training loss on the answer tokens (default) or the whole sequence (TALLRec's recipe)")
    p.add_argument("--neggrad-weight", type=float, default=0.2, help="NegGrad: weight of the forget ascent term")
    p.add_argument("--neggrad-lr", type=float, default=0.0, help="NegGrad learning rate (0 = --lr)")
    p.add_argument("--receraser-agg-samples", type=int, default=512, help="RecEraser: samples its attention is trained on")
    p.add_argument("--e2urec-alpha", type=float, default=1.0)
    p.add_argument("--e2urec-epochs", type=int, default=2)
    p.add_argument("--e2urec-aug-epochs", type=int, default=2, help="epochs of the augmented (forgetting-teacher) model")
    p.add_argument("--ga-epochs", type=int, default=1)
    p.add_argument("--no-original", action="store_true", help="skip the 'original' (before unlearning) row")
    p.add_argument("--no-exactness", action="store_true",
                   help="skip APA's exactness check (it trains the retrained shards once more from scratch)")
    p.add_argument("--torch-threads", type=int, default=0, help="torch threads (0 = torch's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where adapters are written")
    p.add_argument("--resume", action="store_true",
                   help="keep the methods a stopped run with the same settings finished (its --workdir's partial_results.json)")
    p.add_argument("--out", type=Path, default=Path("unlearning_results.json"), help="AuditResults JSON to write")
    p.set_defaults(func=run_unlearn)


def read_forget_file(path: Path) -> list[str]:
    """User ids from a file, one per line (blank lines and ``#`` comments skipped)."""
    if not path.is_file():
        raise ValueError(f"--forget-file {path}: no such file")
    ids = [line.split("#", 1)[0].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    ids = [i for i in ids if i]
    if not ids:
        raise ValueError(f"--forget-file {path} names no user")
    return ids


def forget_request(args: argparse.Namespace) -> int | list[str]:
    """The users to forget from --forget / --forget-file / --forget-users (exactly one may be given)."""
    given = [n for n in ("forget", "forget_file", "forget_users") if getattr(args, n, None) is not None]
    if len(given) > 1:
        raise ValueError("give one of --forget, --forget-file, --forget-users")
    if args.forget is not None:
        ids = [v.strip() for v in args.forget.split(",") if v.strip()]
        if not ids:
            raise ValueError("--forget names no user")
        return ids
    if args.forget_file is not None:
        return read_forget_file(args.forget_file)
    return parse_forget_users(args.forget_users if args.forget_users is not None else "4")


def parse_forget_users(value: str) -> int | list[str]:
    """``"5"`` → 5 users drawn at random; ``"12,85"`` → those ids."""
    value = value.strip()
    if not value:
        raise ValueError("--forget-users is empty")
    if value.isdigit() and "," not in value:
        return int(value)
    ids = [v.strip() for v in value.split(",") if v.strip()]
    if not ids:
        raise ValueError(f"--forget-users {value!r} names no user")
    return ids


def params_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The ``unlearning`` check's params from command-line arguments."""
    methods = list(METHODS) if "all" in args.methods else list(dict.fromkeys(args.methods))
    return {
        "model": args.model, "device": args.device, "methods": methods, "include_original": not args.no_original, "seed": args.seed,
        "n_users": args.users, "n_never_seen_users": args.never_seen_users,
        "forget_users": forget_request(args), "history_len": args.history_len,
        "max_per_user": args.max_per_user or None, "train_samples": None if args.train_samples == 0 else args.train_samples,
        "valid_frac": args.valid_frac,
        "train": {"lora_r": args.lora_r, "lora_alpha": 2 * args.lora_r, "lora_layers": args.lora_layers or None,
                  "lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size, "max_length": args.max_length,
                  "loss_on": args.loss_on, "early_stop_patience": args.early_stop_patience,
                  "eval_every": args.eval_every or None},
        "n_shards": args.shards, "top_k": args.top_k, "temperature": args.temperature,
        "embedding": args.embedding, "apa_group_by_user": args.apa_group_by_user, "verify_exactness": not args.no_exactness, "e2urec_alpha": args.e2urec_alpha, "e2urec_epochs": args.e2urec_epochs,
        "e2urec_aug_epochs": args.e2urec_aug_epochs, "ga_epochs": args.ga_epochs,
        "apa_partition": "user_kmeans" if args.apa_group_by_user else args.apa_partition,
        "apa_shared_init": not args.apa_independent_init, "neggrad_weight": args.neggrad_weight,
        "neggrad_lr": args.neggrad_lr or None, "receraser_agg_samples": args.receraser_agg_samples,
        "erasure_request_id": args.request_id, "keep_artifacts": args.keep_artifacts,
        "torch_threads": args.torch_threads or None,
    }  # fmt: skip


def one_line(e: Any) -> str:
    """A pydantic ValidationError as one line: ``train.lr: Input should be greater than 0; …``."""
    return "; ".join(f"{'.'.join(map(str, err['loc'])) or 'params'}: {err['msg']}" for err in e.errors())


def load_movielens(path: Path) -> tuple[Any, Any]:
    """(Catalog, Interactions) from an ml-100k or ml-latest-small folder."""
    from recaudit.data.loaders import load_movielens_100k, load_movielens_latest_small

    if (path / "u.data").is_file():
        return load_movielens_100k(path)
    if (path / "ratings.csv").is_file():
        return load_movielens_latest_small(path)
    raise ValueError(f"--data {path}: not a MovieLens folder (no u.data or ratings.csv)")


def run_unlearn(args: argparse.Namespace) -> int:
    """Handler of ``recaudit unlearn``."""
    from pydantic import ValidationError

    from recaudit.audits.files import write_text_atomic
    from recaudit.audits.run_info import library_versions, platform_summary
    from recaudit.results import AuditResults, Reproducibility
    from recaudit.unlearning.check import UnlearningCheck, run_to_result
    from recaudit.unlearning.experiment import run_unlearning

    t0 = time.perf_counter()
    try:
        check = UnlearningCheck(params_from_args(args))
        catalog, interactions = load_movielens(args.data)
        run = run_unlearning(catalog, interactions, check.params, args.workdir,  # type: ignore[arg-type]
                             progress=lambda msg: print(f"unlearn: {msg}", file=sys.stderr), resume=args.resume)  # fmt: skip
    except ValidationError as e:
        print(f"recaudit unlearn: {one_line(e)}", file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as e:
        print(f"recaudit unlearn: {e}", file=sys.stderr)
        return 2
    result = run_to_result(check, run)
    print(f"unlearn: erasure request {run.erasure.get('request_id')}: forgotten ids' salted SHA-256 "
          f"{run.erasure.get('forgotten_ids_salted_sha256')} (salt {run.erasure_salt}: keep it to prove which users the request named; it is not stored); deleted {run.erasure.get('deleted_artifacts')}", file=sys.stderr)
    hidden = {"func", "forget", "forget_file", "forget_users"}  # never write the forgotten ids
    repro = Reproducibility(
        seed=args.seed,
        config={"command": "unlearn", **{k: str(v) for k, v in vars(args).items() if k not in hidden},
                "forget_users": run.params["forget_users"]},
        data_hashes={"catalog": catalog.content_hash(), "interactions": interactions.content_hash()},
        library_versions=library_versions(), platform=platform_summary(), duration_s=time.perf_counter() - t0,
    )  # fmt: skip
    result.reproducibility = repro
    results = AuditResults(audit_name="unlearning " + "+".join(check.params.methods), checks=[result], reproducibility=repro)  # type: ignore[attr-defined]
    write_text_atomic(args.out, results.to_json())
    table = result.tables[0]
    print(" | ".join(table.columns[:9] + ["unlearn s"]))
    for row in table.rows:
        print(" | ".join("" if v is None else str(v) for v in row[:9] + [row[11]]))
    print(f"results → {args.out}")
    return 0
