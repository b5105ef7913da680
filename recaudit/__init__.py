"""recaudit: audit LLM-based recommender systems for fairness, robustness and privacy."""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"


def run_check(name: str, adapter: Any, **params: Any) -> Any:
    """Run the registered check ``name`` on ``adapter`` with ``params`` and return its ``CheckResult``
    (evidence, coverage and verdict as in an audit; keyword-only extras ``thresholds``, ``catalog``,
    ``interactions`` as in ``recaudit.audits.runner.run_single_check``)."""
    # imported on call: `import recaudit` (and `recaudit --help`) must stay light, and the package
    # root sits below the audits layer
    runner = importlib.import_module("recaudit.audits.runner")
    extras = {k: params.pop(k) for k in ("thresholds", "catalog", "interactions") if k in params}
    return runner.run_single_check(name, adapter, params, **extras)
