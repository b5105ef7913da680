"""The audit's prompt texts (package data ``prompts.yaml``), overridable per check.

Templates use the one syntax of ``recaudit.text.prompts`` (``{ItemTitle}``); each text's
placeholders are checked when the prompts are loaded or overridden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Mapping

from recaudit.text.prompts import check_placeholders, fill, load_prompt_file

__all__ = ["PLACEHOLDERS", "ShillingPrompts", "clean_generated_title", "default_prompts", "fill"]

_TEXT_KEYS = ("attack_rewrite", "defense_rewrite", "ranking")
_SETTING_KEYS = ("ranking_settings", "rewrite_settings")
# (required, allowed) placeholders of each text
PLACEHOLDERS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "attack_rewrite": (frozenset({"ItemTitle"}), frozenset({"ItemTitle", "MaxLen"})),
    "defense_rewrite": (frozenset({"AdversarialTitle"}), frozenset({"AdversarialTitle"})),
    "ranking": (frozenset({"History", "Candidates"}), frozenset({"History", "Candidates", "N", "K"})),
}


def _check_text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"prompts.{key} must be a non-empty string")
    required, allowed = PLACEHOLDERS[key]
    check_placeholders(value, required, f"prompts.{key}", allowed)
    return value


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
                changes[key] = _check_text(key, value)
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
    raw = load_prompt_file("prompts.yaml", "recaudit.attacks")
    return ShillingPrompts(
        attack_rewrite=_check_text("attack_rewrite", raw["attack_rewrite"]),
        defense_rewrite=_check_text("defense_rewrite", raw["defense_rewrite"]),
        ranking=_check_text("ranking", raw["ranking"]),
        promo_phrases=tuple(raw["promo_phrases"]),
        ranking_settings=dict(raw.get("ranking_settings", {})),
        rewrite_settings=dict(raw.get("rewrite_settings", {})),
    )


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
