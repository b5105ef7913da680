"""Old import path of the prompt helpers, now ``recaudit.text.prompts`` (kept while other branches import it).

The probes import ``recaudit.text.prompts`` directly; remove this module once nothing imports it.
"""

from __future__ import annotations

from typing import Any

from recaudit.text import prompts as _prompts
from recaudit.text.prompts import check_placeholders, merge_overrides, slug

__all__ = ["check_placeholders", "load_prompt_file", "merge_overrides", "slug"]


def load_prompt_file(filename: str, package: str = "recaudit.probes") -> dict[str, Any]:
    """``recaudit.text.prompts.load_prompt_file`` with the probes' package as the default."""
    return _prompts.load_prompt_file(filename, package)
