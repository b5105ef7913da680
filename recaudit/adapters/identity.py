"""What identifies a local model without loading it: the key under which finished checks are reused.

Loading a checkpoint takes seconds to minutes; deciding that every check of a run folder is already
finished must not. The identity names the weights by digest (first and last MiB of each file, the
same digest the adapter's fingerprint uses), the LoRA adapter, the configured device, dtype and
engine, and the transformers version. ``device``/``dtype`` are the configured values ("auto" when
unset), not the resolved ones, because resolving them needs torch; the adapter's full fingerprint,
with the resolved values, is what results.json records.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any


def local_identity(spec: Any) -> dict[str, Any] | None:
    """The identity of a ``default`` or ``hf`` adapter spec, read from its files; None for other kinds
    (an endpoint or a callable is cheap to build, and its fingerprint is what identifies it)."""
    from recaudit.adapters.spec import DefaultSpec, HFSpec, parse_adapter_spec

    s = parse_adapter_spec(spec)
    gguf: str | None
    lora: str | None
    if isinstance(s, DefaultSpec):
        from recaudit.adapters.default import SMOLLM2_GGUF, smollm2_dir

        folder, gguf, lora, merge = smollm2_dir(), SMOLLM2_GGUF, None, True
        name = "SmolLM2-135M-Instruct.Q4_1"
    elif isinstance(s, HFSpec):
        folder, gguf, lora, merge = Path(s.path).expanduser(), s.gguf_file, s.lora, s.merge_lora
        name = s.name or (gguf or folder.name)
    else:
        return None
    from recaudit.adapters.hf import file_digest, folder_digest

    if not folder.exists() or (gguf is not None and not (folder / gguf).is_file()):
        return None  # building the adapter reports the missing file in one line
    lora_id = None
    if lora is not None:
        lora_dir = Path(lora).expanduser()
        if not lora_dir.exists():
            return None
        lora_id = {"name": lora_dir.name, "digest": folder_digest(lora_dir), "merged": bool(merge)}
    return {
        "adapter": "hf",
        "model": name,
        "weights": file_digest(folder / gguf) if gguf else folder_digest(folder),
        "lora": lora_id,
        "device": s.device or "auto",
        "dtype": s.dtype or "auto",
        "engine": s.engine,
        "transformers": _version("transformers"),
    }


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None
