"""Atomic file writes for the audit side (the one writer lives in ``recaudit.atomic``)."""

from __future__ import annotations

from recaudit.atomic import atomic_text, write_text_atomic

__all__ = ["atomic_text", "write_text_atomic"]
