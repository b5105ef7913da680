"""``recaudit attack shilling``: textual shilling attacks on item titles, with rewrite defenses.

    recaudit attack shilling --data ./ml-100k --target 1210 --out shilling.json
    recaudit attack shilling --data ./ml-100k --n-targets 2 --attacks trivial,deepwordbug,puncattack \\
        --victims pyes,ranking --eval-users 40 --attacker-users 20 --out shilling.json
    recaudit attack shilling --data demo --hf ./my-model --param rewrite_samples=2 --out shilling.json
    recaudit attack shilling --data ./ml-100k --pool full --victims pyes -k 10 --out shilling.json  # the paper's protocol

The command runs the registered ``shilling`` check through the audit runner (so the response
cache, resumption and thresholds work as in ``recaudit audit``) and writes the results JSON to
``--out`` (the run folder keeps its own copy, the cache and the check file). Every check
parameter can be set with ``--param KEY=VALUE`` (YAML values); the flags below are shortcuts.
Exposure is measured as pool-100-top1 by default (the target among 99 unseen items drawn per
user, chance 0.01); ``--pool full`` ranks every unseen item (full-topK, pyes victim only).

Exit status: 0 done (every --threshold holds; without thresholds the run is a measurement, not a
gate, so "not judged" is 0 here), 1 a threshold was breached, 2 bad input or the check errored,
3 incomplete evidence (adapter errors, unusable answers, an underpowered test).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

ATTACK_FLAGS = {
    # flag → check parameter
    "attacks": "attacks",
    "defenses": "defenses",
    "victims": "victims",
    "search_victim": "search_victim",
    "n_targets": "n_targets",
    "k": "k",
    "candidates": "n_candidates",
    "pool": "pool",
    "attacker_users": "n_attacker_users",
    "eval_users": "n_eval_users",
    "history_len": "history_len",
    "max_char_edits": "max_char_edits",
    "max_words": "max_words",
    "embeddings_path": "embeddings_path",
    "mlm_path": "mlm_path",
}
LIST_PARAMS = ("attacks", "defenses", "victims")


def add_parser(subparsers: Any) -> None:
    """Register ``attack`` with its ``shilling`` subcommand."""
    p = subparsers.add_parser("attack", help="run an attack audit (shilling)", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="attack_command", metavar="ATTACK")
    s = sub.add_parser("shilling", help="textual shilling attacks on item titles, with defenses",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    data = s.add_argument_group("data")
    data.add_argument("--data", required=True,
                      help="a MovieLens folder (100K or latest-small, detected), a catalogue file, or 'demo'")
    data.add_argument("--interactions", type=Path, help="interactions file (CSV/JSONL) when --data is a catalogue file")
    attack = s.add_argument_group("attack")
    attack.add_argument("--target", action="append", dest="targets", metavar="ITEM", help="target item id (repeatable)")
    attack.add_argument("--n-targets", type=int, help="targets to pick when no --target is given")
    attack.add_argument("--attacks", help="comma list: trivial,llm_rewrite,deepwordbug,puncattack,textfooler,bertattack")
    attack.add_argument("--defenses", help="comma list: llm_rewrite,spell,detector")
    attack.add_argument("--victims", help="comma list: pyes,ranking")
    attack.add_argument("--search-victim", choices=("pyes", "ranking"))
    attack.add_argument("-k", type=int, help="top-K cut-off of exposure (default 1)")
    attack.add_argument("--pool", choices=("sampled", "full"),
                        help="sampled: target + --candidates − 1 unseen items per user (default); full: every unseen "
                             "item, the paper's protocol (pyes victim only)")
    attack.add_argument("--candidates", type=int, help="sampled candidate list size per user (default 100)")
    attack.add_argument("--attacker-users", type=int, help="users the attacker tunes on")
    attack.add_argument("--eval-users", type=int, help="held-out users exposure is measured on")
    attack.add_argument("--history-len", type=int)
    attack.add_argument("--max-char-edits", type=int, help="character budget of deepwordbug/puncattack")
    attack.add_argument("--max-words", type=int, help="words an attack may change")
    attack.add_argument("--embeddings-path", help="counter-fitted word vectors (text) for TextFooler")
    attack.add_argument("--mlm-path", help="local masked-LM folder for BERT-Attack")
    attack.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="any check parameter (YAML value)")
    attack.add_argument("--threshold", action="append", default=[], metavar="EXPR",
                        help='e.g. "exposure.lift.deepwordbug.pyes <= 0.05" (repeatable)')
    model = s.add_argument_group("model (default: the embedded SmolLM2)")
    src = model.add_mutually_exclusive_group()
    src.add_argument("--adapter-config", metavar="FILE", help="YAML/JSON adapter mapping")
    src.add_argument("--hf", metavar="PATH", help="a transformers model folder")
    src.add_argument("--openai", metavar="URL", help="an OpenAI-compatible base URL (…/v1)")
    model.add_argument("--gguf-file")
    model.add_argument("--lora")
    model.add_argument("--model", help="model name for --openai")
    model.add_argument("--api-key-env")
    model.add_argument("--device")
    run = s.add_argument_group("run")
    run.add_argument("--out", type=Path, required=True, help="results JSON to write")
    run.add_argument("--run-dir", type=Path, help="run folder (cache, check file); default: <out>.run/")
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--batch-size", type=int, default=8)
    run.add_argument("--no-cache", action="store_true", help="do not cache model responses")
    run.add_argument("--fresh", action="store_true", help="recompute even if the run folder has a finished result")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    s.set_defaults(func=run_shilling_command)
    p.set_defaults(func=lambda args: _no_attack(p))


def _no_attack(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def data_spec(value: str, interactions: Path | None) -> dict[str, Any]:
    """The audit config's ``data`` mapping for ``--data`` (folder kind detected from its files)."""
    if value == "demo":
        return {"kind": "demo"}
    path = Path(value).expanduser()
    if path.is_dir():
        if (path / "u.data").is_file():
            return {"kind": "movielens-100k", "path": str(path)}
        if (path / "ratings.csv").is_file():
            return {"kind": "movielens-latest-small", "path": str(path)}
        raise ValueError(f"--data: {path} holds neither u.data (MovieLens 100K) nor ratings.csv (latest-small)")
    if path.is_file():
        if interactions is None:
            raise ValueError("--data is a catalogue file: the shilling check also needs --interactions")
        return {"kind": "files", "catalog": str(path), "interactions": str(interactions)}
    raise ValueError(f"--data: {path} does not exist")


def check_params(args: argparse.Namespace) -> dict[str, Any]:
    """The shilling check's params from the shortcut flags and ``--param`` pairs (pairs win)."""
    import yaml

    params: dict[str, Any] = {"seed": args.seed}
    if args.targets:
        params["targets"] = [str(t) for t in args.targets]
    for flag, key in ATTACK_FLAGS.items():
        value = getattr(args, flag, None)
        if value is None:
            continue
        params[key] = [v.strip() for v in value.split(",") if v.strip()] if key in LIST_PARAMS else value
    for pair in args.param:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param {pair!r}: expected KEY=VALUE")
        params[key.strip()] = yaml.safe_load(raw)
    return params


def build_config(args: argparse.Namespace):
    """An AuditConfig with the one shilling check (validated like an audit YAML)."""
    from recaudit.audits.config import parse_config
    from recaudit.cli.models import adapter_spec_from_args

    raw = {
        "name": "shilling attack audit",
        "adapter": adapter_spec_from_args(args),
        "data": data_spec(args.data, args.interactions),
        "seed": args.seed,
        "batch_size": args.batch_size,
        "cache": not args.no_cache,
        "checks": [{"check": "shilling", "params": check_params(args), "thresholds": list(args.threshold)}],
    }
    return parse_config(raw, base_dir=Path.cwd(), source="recaudit attack shilling")


def run_shilling_command(args: argparse.Namespace) -> int:
    """Handler of ``recaudit attack shilling``: run the check, write --out, print the exposure table."""
    from recaudit.audits.config import ConfigError
    from recaudit.audits.files import write_text_atomic
    from recaudit.audits.runner import Runner, SetupError
    from recaudit.audits.verdicts import EXIT_ERROR

    try:
        config = build_config(args)
        missing = _missing_extra(config.checks[0].params.get("attacks"))
        if missing:
            print(f"recaudit attack shilling: {missing}", file=sys.stderr)
            return EXIT_ERROR
        run_dir = args.run_dir or args.out.with_name(args.out.name + ".run")
        run = Runner(config, run_dir=run_dir, fresh=args.fresh, progress=not args.quiet).run()
    except ConfigError as e:
        for line in str(e).splitlines():
            print(f"recaudit attack shilling: {line}", file=sys.stderr)
        return EXIT_ERROR
    except (SetupError, ValueError) as e:
        print(f"recaudit attack shilling: error: {e}", file=sys.stderr)
        return EXIT_ERROR
    write_text_atomic(args.out, run.results.to_json())
    result = run.results.checks[0]
    if result.error:
        print(f"recaudit attack shilling: the check errored: {result.error}", file=sys.stderr)
    else:
        print_summary(result)
    if result.status == "incomplete":
        print(f"recaudit attack shilling: incomplete: {result.verdict.reason}", file=sys.stderr)
    print(f"results: {args.out}", file=sys.stderr)
    from recaudit.audits.verdicts import audit_exit_code

    return audit_exit_code(run.results, allow_unjudged=True)


TEXTATTACK_ATTACKS = ("deepwordbug", "puncattack", "textfooler", "bertattack")


def _missing_extra(attacks: list[str] | None) -> str | None:
    """One line naming the extra to install when a requested attack needs TextAttack and it is absent."""
    from recaudit.attacks.strategies import ATTACK_NAMES
    from recaudit.attacks.textattack_bridge import textattack_available

    wanted = [a for a in (attacks if attacks is not None else ATTACK_NAMES) if a in TEXTATTACK_ATTACKS]
    if not wanted or textattack_available()[0]:
        return None
    return (f"needs the attacks extra for {', '.join(wanted)} (textattack is not installed): "
            "pip install 'recaudit[attacks]' (or --attacks trivial,llm_rewrite)")


def print_summary(result, out=None) -> None:
    """One line per victim × attack: exposure clean → attacked → defended, with the lift's CI."""
    out = out or sys.stdout
    table = next((t for t in result.tables if t.name == "exposure"), None)
    if table is None:
        return
    rows = table.as_records()
    clean = {r["victim"]: r for r in rows if r["condition"] == "clean"}
    for r in rows:
        if r["condition"] != "attacked":
            continue
        c = clean[r["victim"]]
        defended = [
            f"{d['condition'].split(':', 1)[1]} {d['exposure']:.3f}"
            for d in rows
            if d["victim"] == r["victim"] and d["attack"] == r["attack"] and d["condition"].startswith("defended:")
        ]
        print(
            f"{r['victim']:8s} {r['attack']:20s} clean {c['exposure']:.3f} → attacked {r['exposure']:.3f} "
            f"(lift {r['diff_vs_clean']:+.3f} [{r['diff_ci_low']:+.3f}, {r['diff_ci_high']:+.3f}], p={r['p_value']:.3g})"
            + (f" → defended: {', '.join(defended)}" if defended else ""),
            file=out,
        )
