"""Audits: the YAML config, the resumable runner, verdicts against thresholds, and diffs of two runs."""

from recaudit.audits.config import AuditConfig, ConfigError, load_config, load_default_config, parse_config
from recaudit.audits.diff import AuditDiff, diff_results
from recaudit.audits.runner import AuditRun, Runner, SetupError
from recaudit.audits.verdicts import EXIT_BREACH, EXIT_ERROR, EXIT_PASS, Threshold, evaluate_verdict

__all__ = [
    "EXIT_BREACH",
    "EXIT_ERROR",
    "EXIT_PASS",
    "AuditConfig",
    "AuditDiff",
    "AuditRun",
    "ConfigError",
    "Runner",
    "SetupError",
    "Threshold",
    "diff_results",
    "evaluate_verdict",
    "load_config",
    "load_default_config",
    "parse_config",
]
