"""Federated TALLRec on SmolLM2-135M + MovieLens 100K: FedAvg vs PPLR, and a real Flower deployment.

    # simulation (in-process grid, the same ServerApp/ClientApp): FedAvg vs PPLR vs centralised
    python benchmarks/federated.py simulate --data ../shared/data/ml-100k --clients 3
    # PPLR vs FedAvg with >= 10 non-IID clients on one GPU (per-client AUC spread), own JSON
    python benchmarks/federated.py simulate --device cuda --clients 12 --users-per-client 8 --rounds 4 \
        --strategies fedavg,pplr,pplr-softmax --no-central --out benchmarks/results/federated_pplr_vs_fedavg_gpu.json
    # deployment: a SuperLink and 2 SuperNodes as separate processes on 127.0.0.1, driven by `flwr run`
    python benchmarks/federated.py deploy --data ../shared/data/ml-100k --clients 2 --users-per-client 3
    # deployment with a client that disappears after round 1 (tiny model: only the plumbing is timed)
    python benchmarks/federated.py deploy --model tiny --clients 3 --users-per-client 2 --rounds 3 \
        --kill-node-after-round 1 --round-timeout 60

Both partition the sampled users into clients (non-IID by genre, Dirichlet α = 0.5), build
TALLRec samples (history 3, ≤ 6 per user, per-user time split 50/15/35: a larger test share
keeps per-client AUC less noisy at this small, CPU-sized scale) and fine-tune LoRA
(r = 8 on q_proj/v_proj) of the f32-dequantised SmolLM2-135M-Instruct GGUF on CPU.
``simulate`` also reports the zero-shot AUC (the untrained adapter) and a centralised LoRA
trained on the union of the clients' training samples for as many epochs as there were rounds.
``deploy`` first writes the dequantised model as an HF folder (each Flower ClientApp runs in a
fresh process per message, and a safetensors folder loads far faster than a GGUF).

Writes (updates) benchmarks/results/federated.json, one section per mode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recaudit.federated.check import prepare_federation  # noqa: E402
from recaudit.federated.clientdata import client_folder, load_client_data, read_manifest  # noqa: E402
from recaudit.federated.config import FederatedSettings  # noqa: E402
from recaudit.federated.records import FederatedRun  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "federated.json"
APP_DIR = REPO / "recaudit" / "federated" / "flwr_app"


def machine() -> dict:
    import torch

    return {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "load_avg_1m": os.getloadavg()[0]}


def write_section(name: str, payload: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    data[name] = payload
    RESULTS.write_text(json.dumps(data, indent=2, default=float))
    print(f"wrote section {name!r} of {RESULTS}")


def federation(args: argparse.Namespace, root: Path) -> Path:
    from recaudit.data.loaders import load_movielens_100k

    catalog, interactions = load_movielens_100k(args.data)
    return prepare_federation(interactions, catalog, root / "clients", args.clients, args.users_per_client,
                              "genre", args.alpha, args.history_len, args.max_per_user, args.seed,
                              valid_frac=0.15, test_frac=0.35)


def base_settings(args: argparse.Namespace, folder: Path, model: str) -> dict:
    return {"num_rounds": args.rounds, "model": model, "data_dir": str(folder), "seed": args.seed,
            "max_length": args.max_length, "batch_size": args.batch_size, "lr": args.lr,
            "eval_batch_size": 8 if not getattr(args, "device", "") else 64, "min_available_clients": args.clients,
            "min_fit_clients": args.clients, "torch_threads": args.torch_threads,
            **({"device": args.device} if getattr(args, "device", "") else {})}


def run_digest(run: FederatedRun) -> dict:
    return {"summary": run.summary(), "seconds": run.seconds,
            "final_auc_by_client": {r.partition_id: r.auc for r in run.final_evals()},
            "variant": run.variant, "aggregation": run.aggregation, "incomplete": run.incomplete,
            "rounds": [r.model_dump() for r in run.rounds],
            "train": [r.model_dump() for r in run.train], "failures": [f.model_dump() for f in run.failures]}


def per_client_auc(model, tokenizer, folder: Path, n_clients: int, settings: FederatedSettings) -> dict:
    from recaudit.tallrec import evaluate_scores, score_samples

    out = {}
    for pid in range(n_clients):
        test = load_client_data(client_folder(folder, pid)).test
        p = score_samples(model, tokenizer, test, settings.eval_batch_size, settings.max_length)
        out[pid] = evaluate_scores([s.label for s in test], p)["auc"]
    return out


def simulate(args: argparse.Namespace) -> None:
    import numpy as np

    from recaudit.federated.client_app import client_model
    from recaudit.federated.simulation import run_federated
    from recaudit.tallrec import reset_lora, train_lora

    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        folder = federation(args, Path(tmp))
        manifest = read_manifest(folder)
        model_spec = args.model
        if model_spec == "tiny":  # a random 4-block Llama: plumbing only, its AUCs mean nothing
            from recaudit.testing import tiny_causal_lm

            model_spec = str(tiny_causal_lm(Path(tmp) / "model", num_layers=4))
        common = base_settings(args, folder, model_spec)
        runs = {}
        for name in args.strategies.split(","):
            t0 = time.perf_counter()
            runs[name] = run_digest(run_federated(FederatedSettings(strategy=name, **common), args.clients))
            print(f"{name}: {runs[name]['summary']} in {time.perf_counter() - t0:.0f}s", flush=True)
        s = FederatedSettings(strategy="fedavg", **common)
        model, tokenizer = client_model(s)
        reset_lora(model, s.seed)
        zero_shot = per_client_auc(model, tokenizer, folder, args.clients, s)
        central, central_s = {}, 0.0
        if not args.no_central:
            train = [x for pid in range(args.clients) for x in load_client_data(client_folder(folder, pid)).train]
            t0 = time.perf_counter()
            train_lora(model, tokenizer, train, s.train_config().replace(epochs=args.rounds))
            central = per_client_auc(model, tokenizer, folder, args.clients, s)
            central_s = time.perf_counter() - t0

    def stats(d: dict) -> dict:
        v = np.array([x for x in d.values() if np.isfinite(x)])
        if not v.size:
            return {"by_client": d}
        return {"by_client": d, "mean": float(v.mean()), "min": float(v.min()), "max": float(v.max()),
                "std": float(v.std()), "gap": float(v.max() - v.min())}

    payload = {
        "command": " ".join(sys.argv), "machine": machine(), "settings": common, "federation": manifest,
        "runs": runs, "auc_spread": {name: stats(r["final_auc_by_client"]) for name, r in runs.items()},
        "zero_shot_auc": stats(zero_shot), "centralised_auc": {**stats(central), "seconds": central_s},
        "seconds_total": time.perf_counter() - t_all,
    }
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(payload, indent=2, default=float))
        print(f"wrote {args.out}")
    else:
        write_section("simulation", payload)


def hf_copy_of_model(model: str, out: Path) -> Path:
    from recaudit.tallrec import load_base_model

    m, tok = load_base_model(model)
    m.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    return out


def _start(cmd: list[str], log: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, env=env, start_new_session=True)


def deploy(args: argparse.Namespace) -> None:
    """SuperLink + N SuperNodes on 127.0.0.1 (insecure, loopback only), `flwr run`, then stop them all."""
    bindir = Path(sys.executable).parent
    work = Path(tempfile.mkdtemp(prefix="recaudit-flwr-"))
    env = {**os.environ, "FLWR_HOME": str(work / "flwr-home")}
    (work / "flwr-home").mkdir()
    (work / "flwr-home" / "config.toml").write_text(
        '[superlink]\ndefault = "local-deployment"\n\n[superlink.local-deployment]\n'
        f'address = "127.0.0.1:{args.port}"\ninsecure = true\n')
    folder = federation(args, work)
    t0 = time.perf_counter()
    if args.model == "tiny":  # a random 4-block Llama: exercises the deployment plumbing, not the model
        from recaudit.testing import tiny_causal_lm

        model = str(tiny_causal_lm(work / "model", num_layers=4))
    elif args.model.endswith((".gguf", "default")):
        model = str(hf_copy_of_model(args.model, work / "model"))
    else:
        model = args.model
    convert_s = time.perf_counter() - t0
    out = work / "run.json"
    procs: list[subprocess.Popen] = []
    t_start = time.perf_counter()
    try:
        procs.append(_start([str(bindir / "flower-superlink"), "--insecure", "--disable-runtime-dependency-installation",
                             "--host", "127.0.0.1", "--port", str(args.port)], work / "superlink.log", env))
        time.sleep(5)
        for pid in range(args.clients):
            procs.append(_start([str(bindir / "flower-supernode"), "--insecure", "--superlink",
                                 f"127.0.0.1:{args.port}", "--host", "127.0.0.1", "--port", str(args.port + 100 + pid),
                                 "--node-config", f"partition-id={pid} num-partitions={args.clients} "
                                 f'data-path="{client_folder(folder, pid)}"'],
                                work / f"supernode{pid}.log", env))
        # each SuperNode reads only its own folder (node config data-path), so the run config names none
        overrides = {**base_settings(args, folder, model), "data_dir": "", "strategy": args.strategy, "out": str(out),
                     "node_wait_timeout": 300.0, "round_timeout": float(args.round_timeout)}
        if args.kill_node_after_round:
            overrides["min_available_clients"] = overrides["min_fit_clients"] = args.clients - 1
        run_config = " ".join(f"{k.replace('_', '-')}={json.dumps(v)}" for k, v in overrides.items())
        cmd = [str(bindir / "flwr"), "run", str(APP_DIR), "local-deployment", "--run-config", run_config, "--stream"]
        print(" ".join(cmd), flush=True)
        with (work / "flwr-run.log").open("w") as log:
            run_proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            if args.kill_node_after_round:
                # a client disappears: stop the last SuperNode once the given round has been evaluated
                marker = f"aggregate_evaluate: round {args.kill_node_after_round} "
                while run_proc.poll() is None and marker not in (work / "flwr-run.log").read_text():
                    time.sleep(1)
                os.killpg(procs[-1].pid, signal.SIGKILL)
                print(f"killed SuperNode {args.clients - 1} after round {args.kill_node_after_round}", flush=True)
            run_proc.wait(timeout=args.timeout)
    finally:
        for p in reversed(procs):  # stop the processes this script started, by id
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    wall = time.perf_counter() - t_start
    if not out.exists():
        tail = (work / "flwr-run.log").read_text()[-3000:]
        raise SystemExit(f"deployment produced no result; logs in {work}\n{tail}")
    run = FederatedRun.model_validate_json(out.with_suffix(".records.json").read_text())
    logs = {p.name: p.read_text()[-1500:] for p in sorted(work.glob("*.log"))}
    section = f"deployment_{args.strategy}" + ("_dropout" if args.kill_node_after_round else "")
    write_section(section, {
        "command": " ".join(sys.argv), "machine": machine(), "superlink": f"127.0.0.1:{args.port} (insecure, loopback)",
        "supernodes": args.clients, "killed_supernode_after_round": args.kill_node_after_round,
        "settings": overrides, "federation": read_manifest(folder), "mode": run.mode,
        "model_conversion_seconds": convert_s, "wall_seconds": wall, "run": run_digest(run),
        "evals": [e.model_dump() for e in run.evals], "log_tails": logs,
    })
    shutil.rmtree(work)  # the model copy is ~600 MB; kept only when the run failed (see the error above)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["simulate", "deploy"])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "ml-100k")
    parser.add_argument("--model", default="default", help="'default' (SmolLM2 GGUF), 'tiny', an HF folder or .gguf")
    parser.add_argument("--clients", type=int, default=3)
    parser.add_argument("--users-per-client", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--alpha", type=float, default=0.5)
    parser.add_argument("--history-len", type=int, default=3)
    parser.add_argument("--max-per-user", type=int, default=6)
    parser.add_argument("--max-length", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--torch-threads", type=int, default=1, help="1 is fastest on a busy shared CPU")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--strategy", choices=["pplr", "pplr-softmax", "fedavg"], default="pplr",
                        help="deploy mode only")
    parser.add_argument("--strategies", default="fedavg,pplr", help="simulate mode: strategies to run, in order")
    parser.add_argument("--device", default="", help="simulate mode: torch device of the clients' model (cuda)")
    parser.add_argument("--no-central", action="store_true", help="simulate mode: skip the centralised baseline")
    parser.add_argument("--out", type=Path, help="simulate mode: write this JSON instead of a section of "
                                                  "results/federated.json")
    parser.add_argument("--port", type=int, default=19200, help="deploy mode: SuperLink port on 127.0.0.1")
    parser.add_argument("--timeout", type=int, default=1500, help="deploy mode: seconds before giving up")
    parser.add_argument("--round-timeout", type=int, default=1500, help="deploy mode: seconds a round waits for replies")
    parser.add_argument("--kill-node-after-round", type=int, default=0,
                        help="deploy mode: SIGKILL the last SuperNode after this round (client dropout)")
    args = parser.parse_args()
    simulate(args) if args.mode == "simulate" else deploy(args)


if __name__ == "__main__":
    main()
