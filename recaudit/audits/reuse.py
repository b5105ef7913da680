"""Reusing finished checks: the check key, the check file, and which earlier results may be kept.

A check file (``<run dir>/checks/<name>.json``) is an envelope ``{"format", "key", "result"}``.
An earlier result is reused when its key matches (check, params, seed, adapter fingerprint, data
hashes, recaudit version) and its evidence was complete: an errored check, one with adapter
errors or too little usable evidence is recomputed. Coverage floors and thresholds are not part of
the key: a reused result is re-judged against the current config (``rejudge_coverage``; the
verdict is recomputed by the runner for every check).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import recaudit
from recaudit.adapters.base import fingerprint_id
from recaudit.audits.config import PlannedCheck
from recaudit.audits.files import write_text_atomic
from recaudit.evidence import coverage_from_counts
from recaudit.results import CheckResult

log = logging.getLogger(__name__)

CHECK_FILE_FORMAT = 1


def check_key(plan: PlannedCheck, fingerprint: dict[str, Any], data_hashes: dict[str, str]) -> str:
    """What must match for a finished check to be reused."""
    blob = json.dumps(
        {
            "check": plan.spec.check,
            "params": plan.params.model_dump(mode="json"),
            "adapter": fingerprint_id(fingerprint),
            "data": data_hashes,
            "recaudit": recaudit.__version__,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def write_check_file(path: Path, key: str, result: CheckResult) -> None:
    """One finished check as its envelope, written atomically."""
    envelope = {"format": CHECK_FILE_FORMAT, "key": key, "result": json.loads(result.model_dump_json())}
    write_text_atomic(path, json.dumps(envelope, indent=1, allow_nan=True))


def load_finished(path: Path, key: str) -> CheckResult | None:
    """A finished check from an earlier run with the same key whose evidence was complete, else None:
    an errored check, one with adapter errors or too little usable evidence is recomputed."""
    if not path.is_file():
        return None
    try:
        envelope = json.loads(path.read_text(encoding="utf-8"))
        if envelope.get("format") != CHECK_FILE_FORMAT or envelope.get("key") != key:
            return None
        result = CheckResult.model_validate(envelope["result"])
    except (ValueError, KeyError, TypeError) as e:
        log.warning("ignoring unreadable check file %s: %s", path, e)
        return None
    if result.error is not None:
        return None
    cov = result.coverage
    if cov is not None and (not cov.sufficient or cov.outcomes.get("adapter_error", 0) > 0):
        return None
    return result


def finished_checks(
    checks_dir: Path, plans: list[PlannedCheck], fingerprint: dict[str, Any], data_hashes: dict[str, str]
) -> dict[str, CheckResult]:
    """The finished result of every check that can be reused under ``fingerprint``, by check name."""
    out = {}
    for plan in plans:
        result = load_finished(checks_dir / f"{plan.name}.json", check_key(plan, fingerprint, data_hashes))
        if result is not None:
            out[plan.name] = result
    return out


def all_finished(
    checks_dir: Path, plans: list[PlannedCheck], identity: dict[str, Any] | None, data_hashes: dict[str, str]
) -> dict[str, CheckResult] | None:
    """Every check's finished result when all of them can be reused, else None. Only a local model
    is skipped this way (loading it is the slow part); the others are cheap to build and check."""
    if identity is None or not plans:
        return None
    out = finished_checks(checks_dir, plans, identity, data_hashes)
    return out if len(out) == len(plans) else None


def rejudge_coverage(result: CheckResult, plan: PlannedCheck) -> None:
    """A reused result's coverage against the config's current floors (they may have changed)."""
    if result.coverage is not None:
        result.coverage = coverage_from_counts(
            result.coverage.outcomes, min_answered=plan.min_answered, min_usable=plan.min_usable
        )
