"""What a run records about where it ran: library versions, platform, data hashes, cache counts, time."""

from __future__ import annotations

import os
import platform
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

from recaudit.adapters.base import Adapter
from recaudit.data.catalog import Catalog, Interactions
from recaudit.results import CheckResult

LIBRARIES = (
    "torch",
    "transformers",
    "peft",
    "sentence-transformers",
    "numpy",
    "pandas",
    "scipy",
    "scikit-learn",
    "fairlearn",
    "pydantic",
    "flwr",
    "opacus",
    "textattack",
    "rapidfuzz",
    "matplotlib",
    "jinja2",
)


def data_hashes(catalog: Catalog | None, interactions: Interactions | None) -> dict[str, str]:
    out = {}
    if catalog is not None:
        out[f"catalog:{catalog.name}"] = catalog.content_hash()
    if interactions is not None:
        out[f"interactions:{interactions.name}"] = interactions.content_hash()
    return out

def cache_stats(adapter: Adapter) -> dict[str, int]:
    stats = getattr(adapter, "stats", None)
    if stats is None:
        return {}
    if not isinstance(stats, dict):
        stats = {k: getattr(stats, k) for k in ("hits", "misses") if hasattr(stats, k)}
    return {k: int(v) for k, v in stats.items() if isinstance(v, (int, float))}

def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that can change a result (absent ones left out)."""
    out = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out

def platform_summary() -> str:
    """OS, machine and CPU count in one line."""
    return f"{platform.platform()}; {platform.machine()}; {os.cpu_count()} CPUs"

def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")

def recorded_fingerprint(results: dict[str, CheckResult]) -> dict[str, Any] | None:
    """The adapter fingerprint the finished checks recorded when they ran (the model was not loaded now)."""
    for r in results.values():
        if r.reproducibility is not None and r.reproducibility.adapter_fingerprint:
            return dict(r.reproducibility.adapter_fingerprint)
    return None
