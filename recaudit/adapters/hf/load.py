"""Loading a causal LM from disk for the HF adapter: a folder or a GGUF file in it, an optional peft LoRA
(merged unless asked not to), on the device and dtype asked for (a GPU's bfloat16 by default)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recaudit.adapters.base import AdapterError
from recaudit.adapters.hf.fingerprint import file_digest, folder_digest


def resolve_device_dtype(device: str | None, dtype: Any) -> tuple[Any, Any]:
    """cuda + bfloat16 when a GPU is present, else cpu + float32; explicit values win."""
    import torch

    dev = torch.device(device) if device else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dt: Any
    if dtype is None:
        dt = torch.bfloat16 if dev.type == "cuda" else torch.float32
    elif isinstance(dtype, str):
        name = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
        dt = getattr(torch, name.get(dtype, dtype), None)
        if not isinstance(dt, torch.dtype):
            raise ValueError(f"dtype: unknown torch dtype {dtype!r} (use float32, bfloat16 or float16)")
    else:
        dt = dtype
    return dev, dt


@dataclass
class Loaded:
    """A model and tokenizer read from disk, with the digests of what was read."""

    model: Any
    tokenizer: Any
    weights: str  # digest of the weights folder or GGUF file
    lora: dict[str, Any] | None  # name, digest and merged flag of the LoRA adapter, if any


def load_causal_lm(
    model_path: str | os.PathLike,
    gguf_file: str | None = None,
    lora_path: str | os.PathLike | None = None,
    device: str | None = None,
    dtype: Any = None,
    torch_threads: int | None = None,
    merge_lora: bool = True,
) -> Loaded:
    """Read tokenizer and model (and LoRA) from disk onto ``device``; a path that is not there is one
    AdapterError line."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = Path(model_path).expanduser()
    if not path.exists():
        raise AdapterError(f"model_path: {path} does not exist")
    if gguf_file is not None and not (path / gguf_file).is_file():
        raise AdapterError(f"gguf_file: {gguf_file!r} not found in {path}")
    if lora_path is not None and not Path(lora_path).expanduser().exists():
        raise AdapterError(f"lora_path: {lora_path} does not exist")
    if torch_threads is not None:
        if torch_threads < 1:
            raise ValueError("torch_threads must be >= 1")
        torch.set_num_threads(torch_threads)
    dev, dt = resolve_device_dtype(device, dtype)
    kw: dict[str, Any] = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path), **kw)
        model: Any = AutoModelForCausalLM.from_pretrained(str(path), dtype=dt, **kw)
    except (OSError, ValueError) as e:
        raise AdapterError(f"could not load a causal LM from {path}{' / ' + gguf_file if gguf_file else ''}: {e}") from e
    lora_fp = None
    if lora_path is not None:
        from peft import PeftModel

        lora = Path(lora_path).expanduser()
        model = PeftModel.from_pretrained(model, str(lora))
        if merge_lora:
            model = model.merge_and_unload()
        lora_fp = {"name": lora.name, "digest": folder_digest(lora), "merged": bool(merge_lora)}
    model.to(device=dev, dtype=dt)
    weights = file_digest(path / gguf_file) if gguf_file else folder_digest(path)
    return Loaded(model, tokenizer, weights, lora_fp)
