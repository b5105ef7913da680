"""Erasure hygiene: the salted digest of a request's users and the adapters deleted once it is done."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

TRAINED_WITH_FORGOTTEN = ("original", "e2urec", "badt", "neggrad", "ga")  # adapters deleted after the request


def erasure_digest(user_ids: Sequence[str], salt: str) -> str:
    """Salted SHA-256 of a set of user ids (order and duplicates do not matter)."""
    blob = "\x1f".join([salt, *sorted(set(map(str, user_ids)))]).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()



def delete_trained_with_forgotten(workdir: Path) -> list[str]:
    """Delete every adapter of ``workdir`` trained with the forgotten users; the file names deleted."""
    deleted = []
    for name in TRAINED_WITH_FORGOTTEN:
        path = workdir / f"{name}.safetensors"
        if path.exists():
            path.unlink()
            deleted.append(path.name)
    return deleted
