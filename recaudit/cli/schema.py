"""``recaudit schema``: print the JSON Schema of results.json (or of the audit config).

    recaudit schema                 # results.json (AuditResults)
    recaudit schema --config        # the audit config YAML (AuditConfig)

docs/results-schema.md explains the fields in prose.
"""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(subparsers: Any) -> None:
    """Register the ``schema`` command."""
    p = subparsers.add_parser(
        "schema", help="print the JSON Schema of results.json", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", action="store_true", help="the audit config's schema instead")
    p.set_defaults(func=run_schema)


def run_schema(args: argparse.Namespace) -> int:
    """Handler of ``recaudit schema``."""
    if args.config:
        from recaudit.audits.config import AuditConfig

        schema = AuditConfig.model_json_schema()
    else:
        from recaudit.results import AuditResults

        schema = AuditResults.model_json_schema()
    print(json.dumps(schema, indent=2))
    return 0
