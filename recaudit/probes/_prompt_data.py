"""Prompts as package data: load a probe's YAML next to it and merge a config's overrides."""

from __future__ import annotations

import copy
import re
import string
from importlib import resources
from typing import Any, Iterable, Mapping

import yaml


def load_prompt_file(filename: str, package: str = "recaudit.probes") -> dict[str, Any]:
    """Parse a YAML file shipped in ``package`` (a mapping at top level)."""
    text = resources.files(package).joinpath(filename).read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{package}/{filename} must hold a YAML mapping at top level")
    return data


def merge_overrides(base: Mapping[str, Any], overrides: Mapping[str, Any] | None, where: str) -> dict[str, Any]:
    """Deep-merge ``overrides`` into a copy of ``base``; unknown keys are an error naming ``where``."""
    out = copy.deepcopy(dict(base))
    for key, value in (overrides or {}).items():
        if key not in out:
            raise ValueError(f"{where}: unknown key {key!r}; known: {sorted(out)}")
        if isinstance(out[key], dict) and isinstance(value, Mapping):
            out[key] = merge_overrides(out[key], value, f"{where}.{key}")
        else:
            out[key] = value
    return out


def check_placeholders(template: str, required: Iterable[str], where: str) -> None:
    """ValueError unless ``template`` uses exactly the named placeholders (all of ``required``, no others)."""
    fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    missing, extra = set(required) - fields, fields - set(required)
    if missing or extra:
        raise ValueError(
            f"{where}: template must use the placeholders {sorted(required)}; "
            f"missing {sorted(missing)}, unknown {sorted(extra)}"
        )


def slug(text: str) -> str:
    """Lowercase dotted-name segment: 'an African American' -> 'an_african_american'."""
    s = re.sub(r"[^0-9a-z]+", "_", text.strip().lower()).strip("_")
    return s or "empty"
