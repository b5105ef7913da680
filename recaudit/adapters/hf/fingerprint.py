"""Model identity: cheap digests of weights on disk (folder, GGUF file, LoRA) and of a model in memory,
and the fingerprint dict the HF adapter reports (and the cache keys answers by)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Iterable

_HASH_BYTES = 1 << 20  # first/last MiB of each weights file: fast, and changes when weights change


def file_digest(path: Path) -> str:
    """sha256 over a file's size plus its first and last MiB (fast on multi-GB weights)."""
    h = hashlib.sha256()
    size = path.stat().st_size
    h.update(str(size).encode())
    with open(path, "rb") as f:
        h.update(f.read(_HASH_BYTES))
        if size > 2 * _HASH_BYTES:
            f.seek(size - _HASH_BYTES)
            h.update(f.read(_HASH_BYTES))
    return h.hexdigest()[:16]


def folder_digest(folder: Path, only: Iterable[str] | None = None) -> str:
    """Digest of every regular file in a folder (names relative, so moving the folder keeps it)."""
    h = hashlib.sha256()
    files = [folder / n for n in only] if only is not None else sorted(
        p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts)
    )
    for p in files:
        h.update(str(p.relative_to(folder)).encode())
        h.update(file_digest(p).encode())
    return h.hexdigest()[:16]


def module_digest(model: Any) -> str:
    """Cheap digest of an in-memory model: every parameter's name/shape and a strided sample of
    its values, plus all values of trainable and LoRA parameters (what training changes)."""
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for name, p in model.named_parameters():
            h.update(f"{name}:{tuple(p.shape)}:{p.dtype}".encode())
            flat = p.detach().reshape(-1)
            if p.requires_grad or "lora_" in name:
                sample = flat
            else:
                sample = flat[:: max(1, flat.numel() // 256)][:256]
            h.update(sample.float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


def model_fingerprint(static: dict[str, Any] | None, name: str, model: Any, tokenizer: Any, engine: str) -> dict[str, Any]:
    """The adapter's fingerprint: ``static`` (weights digested at load) or, for a model wrapped in memory,
    a digest of its current weights; plus dtype, device, engine, transformers and the chat template."""
    import transformers

    base = dict(static) if static else {
        "adapter": "hf",
        "model": name,
        "weights": module_digest(model),
        "lora": None,
    }
    param = next(model.parameters())
    base.update(
        dtype=str(param.dtype).replace("torch.", ""),
        device=param.device.type,
        engine=engine,
        transformers=transformers.__version__,
        chat_template=hashlib.sha256(str(getattr(tokenizer, "chat_template", "")).encode()).hexdigest()[:12],
    )
    return base
