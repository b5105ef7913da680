"""The ``recaudit`` command line: one subcommand per module ``recaudit.cli.<name>``.

Each module exposes ``add_parser(subparsers)``, which adds its subparser and sets
``func=handler(args) -> int`` (the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Sequence

import recaudit

log = logging.getLogger(__name__)

COMMANDS = ("audit", "report", "diff", "schema", "models", "attack", "unlearn", "federate")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with every available subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="recaudit",
        description="Audit LLM-based recommenders for fairness, robustness and privacy; write an HTML + JSON report.",
    )
    parser.add_argument("--version", action="version", version=f"recaudit {recaudit.__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        # every command module ships with the package: a missing one is a broken install, not optional
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
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
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        print(f"recaudit {args.command}: error: {where}{e.strerror or e}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, exit 2, never a traceback
        log.debug("unhandled error", exc_info=True)
        msg = str(e).splitlines()[0] if str(e) else ""
        print(f"recaudit {args.command}: error: {type(e).__name__}: {msg} (run with -vv for the traceback)",
              file=sys.stderr)
        return 2


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
