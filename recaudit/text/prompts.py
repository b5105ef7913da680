"""Prompt texts: one loader (YAML package data + overrides), one placeholder check, one template syntax.

The syntax is Python's ``str.format`` fields with plain names only: ``{name}`` is a placeholder,
``{{`` / ``}}`` a literal brace. A value is inserted once and never parsed again, so braces or
placeholder-like text inside a title (untrusted data) stay as they are. Attribute or index fields
(``{x.__class__}``, ``{x[0]}``) are refused, so a user-supplied template cannot reach into a
value. The retired ``<Name>`` syntax of the shilling prompts is refused with a one-line error
that says what to write instead (``retired_syntax``).
"""

from __future__ import annotations

import copy
import re
import string
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

_FORMATTER = string.Formatter()
_OLD_PLACEHOLDER = re.compile(r"<([A-Za-z][A-Za-z0-9_]*)>")


def load_prompt_file(filename: str | Path, package: str | None = None) -> dict[str, Any]:
    """Parse a YAML prompt file: ``filename`` inside ``package`` (package data), else a path; a mapping at top level."""
    where = f"{package}/{filename}" if package else str(filename)
    try:
        if package:
            text = resources.files(package).joinpath(str(filename)).read_text(encoding="utf-8")
        else:
            text = Path(filename).read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"prompt file {where}: {e.strerror or e}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"prompt file {where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{where} must hold a YAML mapping at top level")
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


def placeholders(template: str, where: str = "template") -> set[str]:
    """The placeholder names of ``template``; ValueError on a malformed or non-plain field."""
    if not isinstance(template, str):
        raise ValueError(f"{where}: template must be a string, got {type(template).__name__}")
    try:
        fields = [f for _, f, _, _ in _FORMATTER.parse(template) if f is not None]
    except ValueError as e:  # a lone "{" or "}"
        raise ValueError(f"{where}: {e} (write {{{{ or }}}} for a literal brace)") from None
    bad = [f for f in fields if not f.isidentifier()]
    if bad:
        raise ValueError(f"{where}: placeholders must be plain names like {{name}}, got {{{bad[0]}}}")
    return set(fields)


def retired_syntax(template: str, names: Iterable[str]) -> str | None:
    """The first ``<Name>`` of the retired syntax that names one of ``names``, else None."""
    known = set(names)
    for m in _OLD_PLACEHOLDER.finditer(template if isinstance(template, str) else ""):
        if m.group(1) in known:
            return m.group(1)
    return None


def check_placeholders(template: str, required: Iterable[str], where: str, allowed: Iterable[str] | None = None) -> None:
    """ValueError unless ``template`` uses every ``required`` placeholder and only ``allowed`` ones (default: required)."""
    required = set(required)
    allowed = required if allowed is None else set(allowed) | required
    old = retired_syntax(template, allowed)
    if old is not None:
        raise ValueError(f"{where}: the <{old}> placeholder syntax is retired; write {{{old}}} instead")
    fields = placeholders(template, where)
    missing, unknown = required - fields, fields - allowed
    if missing or unknown:
        may = f" and may use {sorted(allowed)}" if allowed != required else ""
        raise ValueError(
            f"{where}: template must use the placeholders {sorted(required)}{may}; "
            f"missing {sorted(missing)}, unknown {sorted(unknown)}"
        )


def fill(template: str, /, **values: object) -> str:
    """Fill ``{name}`` placeholders in one pass (values are never parsed as templates)."""
    names = placeholders(template)
    missing = sorted(names - set(values))
    if missing:
        raise ValueError(f"template uses {{{missing[0]}}} but no value for it was given")
    return template.format_map(values)


def escape(text: str) -> str:
    """``text`` as literal template text (braces doubled), for building a template out of plain text."""
    return text.replace("{", "{{").replace("}", "}}")


def slug(text: str) -> str:
    """Lowercase dotted-name segment: 'an African American' -> 'an_african_american'."""
    s = re.sub(r"[^0-9a-z]+", "_", text.strip().lower()).strip("_")
    return s or "empty"
