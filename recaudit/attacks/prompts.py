"""The audit's prompt texts (package data ``prompts.yaml``), overridable per check."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
import re
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

import yaml

_TEXT_KEYS = ("attack_rewrite", "defense_rewrite", "ranking")
_SETTING_KEYS = ("ranking_settings", "rewrite_settings")


@dataclass(frozen=True)
class ShillingPrompts:
    """Rewrite attack/defense prompts, promotional phrases, the ranking prompt and generation settings."""

    attack_rewrite: str
    defense_rewrite: str
    ranking: str
    promo_phrases: tuple[str, ...]
    ranking_settings: Mapping[str, Any] = field(default_factory=dict)
    rewrite_settings: Mapping[str, Any] = field(default_factory=dict)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> "ShillingPrompts":
        """A copy with some entries replaced (unknown keys are a ValueError naming them)."""
        if not overrides:
            return self
        known = set(_TEXT_KEYS) | set(_SETTING_KEYS) | {"promo_phrases"}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"prompts: unknown keys {unknown}; known: {sorted(known)}")
        changes: dict[str, Any] = {}
        for key, value in overrides.items():
            if key in _TEXT_KEYS:
                if not isinstance(value, str) or not value.strip():
                    raise ValueError(f"prompts.{key} must be a non-empty string")
                changes[key] = value
            elif key == "promo_phrases":
                if isinstance(value, str) or not value or not all(isinstance(p, str) and p.strip() for p in value):
                    raise ValueError("prompts.promo_phrases must be a non-empty list of non-empty strings")
                changes[key] = tuple(value)
            else:
                if not isinstance(value, Mapping):
                    raise ValueError(f"prompts.{key} must be a mapping of generation settings")
                changes[key] = {**getattr(self, key), **value}
        return replace(self, **changes)


@lru_cache(maxsize=1)
def default_prompts() -> ShillingPrompts:
    """The shipped prompts (``recaudit/attacks/prompts.yaml``)."""
    raw = yaml.safe_load(resources.files("recaudit.attacks").joinpath("prompts.yaml").read_text("utf-8"))
    return ShillingPrompts(
        attack_rewrite=raw["attack_rewrite"],
        defense_rewrite=raw["defense_rewrite"],
        ranking=raw["ranking"],
        promo_phrases=tuple(raw["promo_phrases"]),
        ranking_settings=dict(raw.get("ranking_settings", {})),
        rewrite_settings=dict(raw.get("rewrite_settings", {})),
    )


def fill(template: str, **values: str) -> str:
    """Replace ``<Name>`` placeholders literally (no str.format: titles may hold braces)."""
    out = template
    for name, value in values.items():
        out = out.replace(f"<{name}>", value)
    return out


_LABEL_WORDS = re.compile(r"\b(title|name|revised|corrected|rewritten|rewrite|here)\b", re.I)
_QUOTED = re.compile(r'["“]([^"“”]{2,})["”]')


def clean_generated_title(text: str) -> str:
    """The title a rewrite model wrote: first non-empty line without a label or wrapping quotes.

    Small instruction models wrap the title ("The Product Title is: X.", 'Title should be "X"
    instead of …'): a short lead-in before ": " that names a title is dropped, a quoted span is
    taken when the words around it name a title, and one trailing full stop is removed.
    """
    for line in text.splitlines():
        line = line.strip().strip("*_` ")
        if not line:
            continue
        quoted = _QUOTED.search(line)
        if quoted and _LABEL_WORDS.search(line[: quoted.start()] + " " + line[quoted.end() :]):
            line = quoted.group(1)
        head, sep, tail = line.partition(": ")
        if sep and tail.strip() and len(head.split()) <= 8 and _LABEL_WORDS.search(head):
            line = tail
        line = line.strip().strip("*_` ")
        if len(line) >= 2 and line[0] == line[-1] and line[0] in "\"'":
            line = line[1:-1].strip()
        line = line.strip("“”").strip()
        if line.endswith(".") and not line.endswith(".."):
            line = line[:-1].rstrip()
        if line:
            return line
    return ""
