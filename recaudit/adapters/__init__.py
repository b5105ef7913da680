"""Adapters: every recommender behind one protocol (``generate``, ``score``, ``fingerprint``), plus
optional capabilities it may offer, each a Protocol found with ``isinstance`` (``StreamingAdapter``,
``ConcurrentAdapter``, ...; see ``recaudit.adapters.base``).

    from recaudit.adapters import build_adapter, CachedAdapter
    model = CachedAdapter(build_adapter({"kind": "hf", "path": "./my-model"}), "runs/cache.sqlite")

Heavy modules (torch, transformers, httpx, pydantic) load on first use, so importing the
protocol types stays cheap.
"""

from __future__ import annotations

from typing import Any

from recaudit.adapters.base import (
    Adapter,
    AdapterError,
    BatchedAdapter,
    ConcurrentAdapter,
    PreflightAdapter,
    PreflightError,
    PreflightOptOut,
    Request,
    Response,
    ScoresOnlyAdapter,
    SettingsCheckingAdapter,
    StreamingAdapter,
    WrapperAdapter,
    fingerprint_id,
)
from recaudit.adapters.callable import CallableAdapter
from recaudit.adapters.secrets import redact_obj, redact_secrets

# the submodule ``default`` and the function ``default`` share a name: import the module now and
# bind the function, so a later ``import recaudit.adapters.default`` cannot rebind it to the module
from recaudit.adapters.default import RECOMMENDED_LIST_SETTINGS, default  # noqa: E402  (light: no torch)

_LAZY = {
    "HFCausalLM": "recaudit.adapters.hf",
    "OpenAICompatible": "recaudit.adapters.openai_compat",
    "CachedAdapter": "recaudit.adapters.cache",
    "build_adapter": "recaudit.adapters.spec",
    "parse_adapter_spec": "recaudit.adapters.spec",
    "AdapterSpec": "recaudit.adapters.spec",
    "inspect_cache_file": "recaudit.adapters.cache",
    "preflight": "recaudit.adapters.preflight",
    "check_requests": "recaudit.adapters.preflight",
    "UnsupportedSetting": "recaudit.adapters.servers",
}

__all__ = [
    "Adapter", "AdapterError", "PreflightError", "Request", "Response", "fingerprint_id", "CallableAdapter", "default",
    "redact_secrets", "redact_obj",
    # optional capabilities an adapter may offer (see their docstrings in recaudit.adapters.base)
    "StreamingAdapter", "ConcurrentAdapter", "BatchedAdapter", "WrapperAdapter", "PreflightAdapter", "PreflightOptOut",
    "ScoresOnlyAdapter", "SettingsCheckingAdapter",
    "RECOMMENDED_LIST_SETTINGS", *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'recaudit.adapters' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
