"""The ``recaudit`` command line: one subcommand per module ``recaudit.cli.<name>``.

Each module exposes ``add_parser(subparsers)``, which adds its subparser and sets
``func=handler(args) -> int`` (the exit code). Only the module of the command being run is
imported (``recaudit --help`` imports none, so it starts in a fraction of a second): the other
commands appear in the top-level help from ``COMMAND_HELP``, which a test keeps equal to theirs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

import recaudit

log = logging.getLogger(__name__)

COMMANDS = ("audit", "report", "diff", "schema", "models", "attack", "unlearn", "federate", "completion")
# each command's one-line help, as its module registers it (test_cli_lazy checks they agree)
COMMAND_HELP = {
    "audit": "run an audit (default: the embedded SmolLM2 audit) and write the report",
    "report": "re-render report.html and metrics.csv from a results.json",
    "diff": "compare two results.json files and flag regressions",
    "schema": "print the JSON Schema of results.json",
    "models": "load a model adapter and check that it answers",
    "attack": "run an attack audit (shilling)",
    "unlearn": "unlearn users with APA, E2URec, SISA, retraining or gradient ascent",
    "federate": "federated LoRA fine-tuning (PPLR or FedAvg) on Flower",
    "completion": "print a shell completion script (bash or zsh)",
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The top-level parser; every subcommand's module is imported, or only ``only``'s (the others
    are listed with their help but not built)."""
    parser = argparse.ArgumentParser(
        prog="recaudit",
        description="Audit LLM-based recommenders for fairness, robustness and privacy; write an HTML + JSON report.",
    )
    parser.add_argument("--version", action="version", version=f"recaudit {recaudit.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        if only is not None and name != only:
            subparsers.add_parser(name, help=COMMAND_HELP.get(name, ""), add_help=False)
            continue
        # every command module ships with the package: a missing one is a broken install, not optional
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def _command_of(argv: Sequence[str]) -> str:
    """The subcommand named in ``argv`` ("" when none: top-level help, version or a usage error)."""
    for a in argv:
        if a in COMMANDS:
            return a
        if not a.startswith("-"):
            return ""
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _command_of(argv)
    try:
        parser = build_parser(only=command)
        args = parser.parse_args(argv)
    except BrokenPipeError:  # `recaudit --help | head -1`
        _silence_stdout()
        return 0
    except ModuleNotFoundError as e:  # a command module that imports an optional dependency
        if _extra_for(e) is None:
            raise
        print(_needs_extra(command, e), file=sys.stderr)
        return 2
    logging.basicConfig(
        level=(logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)],
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        rc = int(args.func(args))
        sys.stdout.flush()  # inside the guard: a closed pipe surfaces here, not at interpreter exit
        return rc
    except BrokenPipeError:
        # the reader closed the pipe (`recaudit diff --json | head`): not an error, and no traceback
        _silence_stdout()
        return 0
    except ModuleNotFoundError as e:
        if _extra_for(e) is None:
            return _unhandled(args, e)
        print(_needs_extra(args.command, e), file=sys.stderr)
        return 2
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"recaudit {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, exit 2, never a traceback
        return _unhandled(args, e)


def _unhandled(args: argparse.Namespace, e: BaseException) -> int:
    log.debug("unhandled error", exc_info=e)
    msg = str(e).splitlines()[0] if str(e) else ""
    print(f"recaudit {args.command}: error: {type(e).__name__}: {msg} (run with -vv for the traceback)", file=sys.stderr)
    return 2


def _needs_extra(command: str, e: ModuleNotFoundError) -> str:
    extra = _extra_for(e)
    return f"recaudit {command}: needs the {extra} extra ({e.name} is not installed): pip install 'recaudit[{extra}]'"


def _extra_for(e: ModuleNotFoundError) -> str | None:
    """The pip extra that provides the missing module, if it is an optional dependency."""
    from recaudit.checks import OPTIONAL_DEPENDENCIES

    return OPTIONAL_DEPENDENCIES.get((e.name or "").split(".")[0])


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
