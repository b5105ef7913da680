"""How an invalid audit config is reported: ``ConfigError`` and one line per pydantic error.

Each problem is one ``location: problem`` line whose location is written as the YAML keys are
(``checks[1].params.k``), without pydantic's union tags and validator names; an unknown key gets a
did-you-mean hint from the fields of the model found at its place.
"""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

__all__ = ["ConfigError", "format_validation_error"]


class ConfigError(ValueError):
    """An invalid audit config; ``issues`` are one-line ``location: problem`` strings."""

    def __init__(self, issues: list[str], source: str | None = None):
        self.issues = issues
        self.source = source
        prefix = f"{source}: " if source else ""
        super().__init__("\n".join(prefix + i for i in issues))


def format_validation_error(
    error: ValidationError, raw: Any, prefix: str = "", model: type[BaseModel] | None = None
) -> list[str]:
    """One line per pydantic error: ``checks[1].params.k: problem (got value)``."""
    lines = []
    for err in error.errors(include_url=False):
        loc = _clean_loc(err["loc"], raw)
        kind = err["type"]
        if kind == "extra_forbidden":
            key = str(loc[-1]) if loc else "?"
            parent = _join_loc(loc[:-1], prefix)
            hint = difflib.get_close_matches(key, _fields_at(model, loc[:-1]), n=1) if model else []
            msg = f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
            lines.append(f"{parent}: {msg}" if parent else msg)
            continue
        where = _join_loc(loc, prefix) or "config"
        msg = err["msg"]
        if kind == "missing":
            msg = "missing required key"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        elif "input" in err and not kind.startswith("union_tag"):
            shown = repr(err["input"])
            msg += f" (got {shown[:60] + '…' if len(shown) > 60 else shown})"
        lines.append(f"{where}: {msg}")
    return lines


def _clean_loc(loc: tuple[Any, ...], raw: Any) -> list[Any]:
    """Drop pydantic's union-tag and validator entries so the location matches the YAML keys."""
    out: list[Any] = []
    node = raw
    for part in loc:
        if isinstance(part, str) and isinstance(node, dict) and part not in node and node.get("kind") == part:
            continue  # discriminated-union tag, not a key
        if isinstance(part, str) and part.startswith(("function-", "tagged-union[")):
            continue
        out.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return out


def _join_loc(loc: list[Any], prefix: str = "") -> str:
    s = prefix
    for part in loc:
        if isinstance(part, int):
            s += f"[{part}]"
        else:
            s += f".{part}" if s else str(part)
    return s


def _fields_at(model: type[BaseModel] | None, loc: list[Any]) -> list[str]:
    """Field names of the (sub)model found at ``loc`` below ``model`` (for did-you-mean hints)."""
    models = [model] if model is not None else []
    for part in loc:
        if isinstance(part, int):
            continue
        nxt: list[type[BaseModel]] = []
        for m in models:
            field = m.model_fields.get(str(part))
            if field is not None:
                nxt.extend(_models_in(field.annotation))
        models = nxt
    return sorted({name for m in models for name in m.model_fields})


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [m for arg in getattr(annotation, "__args__", ()) for m in _models_in(arg)]
