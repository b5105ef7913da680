"""Pre-flight: one cheap request per adapter before any check runs, so an unreachable server, a
bad key or an unknown model stops an audit in seconds with one line instead of a run of errors.

- ``OpenAICompatible``: ``GET {base_url}/models`` (the model id must be listed), then one 1-token
  chat call; no long retry loop, ``timeout_s`` (10 s) in all.
- a ``PreflightAdapter`` (its own ``preflight(timeout_s) -> dict`` method): that method.
- a ``PreflightOptOut`` that declares ``preflight_call = False`` (``CallableAdapter`` by default: an
  in-process function has no server to be down, and calling it may have side effects): nothing is
  called; the report says so.
- any other adapter (HFCausalLM, the embedded default): one 1-token ``generate`` (or ``score`` when
  it only scores: ``ScoresOnlyAdapter``); an error or exception fails the pre-flight.

Wrappers (``WrapperAdapter``: an ``inner`` adapter, as ``CachedAdapter`` has) are looked through: a cached answer would
prove nothing about the model.
"""

from __future__ import annotations

from typing import Any, Sequence

from recaudit.adapters.base import (
    AdapterError,
    PreflightAdapter,
    PreflightError,
    PreflightOptOut,
    Request,
    ScoresOnlyAdapter,
    SettingsCheckingAdapter,
    WrapperAdapter,
)
from recaudit.adapters.secrets import redact_secrets

__all__ = ["PreflightError", "preflight", "check_requests", "unwrap"]

PREFLIGHT_TIMEOUT_S = 10.0


def unwrap(adapter: Any) -> Any:
    """The innermost adapter under wrappers that keep it as ``inner`` (CachedAdapter)."""
    seen = 0
    while isinstance(adapter, WrapperAdapter) and adapter.inner is not None and seen < 16:
        adapter = adapter.inner
        seen += 1
    return adapter


def _one_line(text: str) -> str:
    return redact_secrets(" ".join(str(text).split()))


def preflight(adapter: Any, timeout_s: float = PREFLIGHT_TIMEOUT_S) -> dict[str, Any]:
    """What the model (server) reported, for the run's fingerprint; PreflightError (one line) if it cannot answer."""
    inner = unwrap(adapter)
    if isinstance(inner, PreflightAdapter):
        try:
            return dict(inner.preflight(timeout_s))
        except PreflightError:
            raise
        except AdapterError as e:
            raise PreflightError(_one_line(f"pre-flight: {e}")) from None
    name = _describe(inner)
    if isinstance(inner, PreflightOptOut) and inner.preflight_call is False:
        return {"adapter": name, "preflight": "not called (the adapter declares preflight_call = False)"}
    request = Request.chat("recaudit pre-flight check: reply with one word.", max_new_tokens=1)
    try:
        scores_only = isinstance(inner, ScoresOnlyAdapter) and inner.scores_only
        # an object with no generate at all (a bare scorer) is asked to score
        if callable(getattr(inner, "generate", None)) and not scores_only:
            try:
                r = list(inner.generate([request]))
            except NotImplementedError:
                r = None
            if r is not None:
                if len(r) != 1:
                    raise PreflightError(f"pre-flight: {name} returned {len(r)} answers for 1 request")
                if r[0].error:
                    raise PreflightError(_one_line(f"pre-flight: {name} could not answer a 1-token request: {r[0].error}"))
                return {"adapter": name, "preflight": "answered a 1-token request"}
        s = list(inner.score([request]))
        if len(s) != 1:
            raise PreflightError(f"pre-flight: {name} returned {len(s)} scores for 1 request")
        return {"adapter": name, "preflight": "answered a scoring request"}
    except PreflightError:
        raise
    except Exception as e:  # noqa: BLE001  (any failure of the model is a failed pre-flight, in one line)
        raise PreflightError(_one_line(f"pre-flight: {name} failed a 1-token request: {type(e).__name__}: {e}")) from None


def check_requests(adapter: Any, requests: Sequence[Request]) -> None:
    """Raise one AdapterError line (UnsupportedSetting) if the adapter cannot honour a request's settings."""
    inner = unwrap(adapter)
    if isinstance(inner, SettingsCheckingAdapter):
        inner.check_requests(requests)


def _describe(adapter: Any) -> str:
    try:
        fp = adapter.fingerprint
        label = fp.get("name") or fp.get("model") or fp.get("adapter")
        return _one_line(f"{fp.get('adapter', type(adapter).__name__)} adapter {label!r}")
    except Exception:  # noqa: BLE001  (a broken fingerprint must not hide the real failure)
        return type(adapter).__name__
