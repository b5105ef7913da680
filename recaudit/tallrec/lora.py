"""LoRA adapters as plain tensors: attach, seeded init, get/set state, safetensors files.

A LoRA state is ``dict[str, Tensor]`` keyed as PEFT saves adapters
(``base_model.model.<module>.lora_A.weight``), so a saved file also loads with PEFT.
Files are safetensors only (never pickles); identical states give byte-identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any, Mapping

from recaudit.tallrec.config import TrainConfig

LoraState = dict  # dict[str, torch.Tensor]; a plain alias so callers need not import torch


def lora_config(
    config: TrainConfig, r: int | None = None, alpha: float | None = None, n_layers: int | None = None
) -> Any:
    """The PEFT ``LoraConfig`` for a train config (``r``/``alpha`` override, e.g. for rank concatenation).

    ``n_layers`` (the model's block count) is needed when ``config.lora_layers`` is set.
    """
    from peft import LoraConfig, TaskType

    layers = None
    if config.lora_layers is not None:
        if n_layers is None:
            raise ValueError("lora_config: n_layers is required when config.lora_layers is set")
        if config.lora_layers > n_layers:
            raise ValueError(f"TrainConfig.lora_layers={config.lora_layers} exceeds the model's {n_layers} blocks")
        layers = list(range(n_layers - config.lora_layers, n_layers))
    return LoraConfig(
        layers_to_transform=layers,
        layers_pattern="layers" if layers is not None else None,
        r=r or config.lora_r,
        lora_alpha=alpha if alpha is not None else config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.target_modules),
        bias="none",
        task_type=TaskType.CAUSAL_LM,
    )


def attach_lora(model: Any, config: TrainConfig, seed: int | None = None) -> Any:
    """Wrap ``model`` in a PEFT LoRA model (adapter "default"), initialised from ``seed`` (default config.seed).

    Only LoRA parameters are trainable. PEFT injects layers into ``model`` in place, so attach
    once per loaded base model and swap adapters with ``load_lora_state_dict``.
    """
    from peft import get_peft_model

    from recaudit.tallrec.prefix import enable_prefix_cache, num_layers

    n_layers = num_layers(model) if config.lora_layers is not None else None
    peft_model = get_peft_model(model, lora_config(config, n_layers=n_layers))
    reset_lora(peft_model, config.seed if seed is None else seed)
    if config.lora_layers is not None and config.cache_prefix:
        enable_prefix_cache(peft_model, config.lora_layers)
    return peft_model


def add_adapter(model: Any, name: str, config: TrainConfig, r: int | None = None, alpha: float | None = None) -> None:
    """Add a second named adapter to a PEFT model (frozen; used for teachers and merged adapters)."""
    from recaudit.tallrec.prefix import num_layers

    n_layers = num_layers(model) if config.lora_layers is not None else None
    model.add_adapter(name, lora_config(config, r=r, alpha=alpha, n_layers=n_layers))
    for pname, p in model.named_parameters():
        if f".{name}." in pname:
            p.requires_grad_(False)


def lora_state_dict(model: Any, adapter_name: str = "default") -> LoraState:
    """The adapter's LoRA tensors, detached CPU copies (contiguous), PEFT key names."""
    params = _lora_parameters(model, adapter_name)
    return {k: p.detach().to("cpu").clone().contiguous() for k, p in sorted(params.items())}


def load_lora_state_dict(model: Any, state: Mapping[str, Any], adapter_name: str = "default") -> None:
    """Copy ``state`` into the adapter's parameters in place; every key must match in name and shape."""
    import torch

    params = _lora_parameters(model, adapter_name)
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    if missing or unexpected:
        raise ValueError(
            f"LoRA state does not fit adapter {adapter_name!r}: missing {missing[:3]}{'…' if len(missing) > 3 else ''}, "
            f"unexpected {unexpected[:3]}{'…' if len(unexpected) > 3 else ''}"
        )
    with torch.no_grad():
        for key, p in params.items():
            src = state[key]
            if tuple(src.shape) != tuple(p.shape):
                raise ValueError(f"LoRA state {key}: shape {tuple(src.shape)} != adapter's {tuple(p.shape)}")
            p.copy_(src.to(device=p.device, dtype=p.dtype))


def init_lora_state(model: Any, seed: int, adapter_name: str = "default") -> LoraState:
    """A fresh LoRA init from ``seed`` alone: A ~ Kaiming-uniform(a=√5) (PEFT's default), B = 0.

    Seeded from a private generator over sorted parameter names, so the init does not depend on
    global RNG state or on what ran before (what APA's per-shard exactness relies on).
    """
    import torch

    gen = torch.Generator().manual_seed(int(seed))
    state: LoraState = {}
    for key, p in sorted(_lora_parameters(model, adapter_name).items()):
        if ".lora_A." in key:
            fan_in = p.shape[1]
            bound = math.sqrt(6.0 / ((1 + 5.0) * fan_in))  # kaiming_uniform_(a=sqrt(5))
            t = torch.empty(tuple(p.shape), dtype=torch.float32).uniform_(-bound, bound, generator=gen)
        else:
            t = torch.zeros(tuple(p.shape), dtype=torch.float32)
        state[key] = t.to(p.dtype)
    return state


def reset_lora(model: Any, seed: int, adapter_name: str = "default") -> None:
    """Re-initialise the adapter in place from ``seed`` (see ``init_lora_state``)."""
    load_lora_state_dict(model, init_lora_state(model, seed, adapter_name), adapter_name)


def save_lora(state: Mapping[str, Any], path: str | Path, metadata: Mapping[str, str] | None = None) -> Path:
    """Write a LoRA state to a safetensors file (deterministic bytes for equal tensors and metadata)."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in sorted(state.items())}
    # one metadata key: safetensors writes a metadata map in hash order, so two keys could swap and
    # equal states would no longer give equal bytes (APA's byte-identity checks rely on it)
    meta = {str(k): str(v) for k, v in (metadata or {}).items()}
    packed = {"recaudit": json.dumps(meta, sort_keys=True)} if len(meta) > 1 else meta
    save_file(tensors, str(path), metadata=packed)
    return path


def load_lora(path: str | Path) -> LoraState:
    """Read a LoRA state written by ``save_lora`` (safetensors; no code execution)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"LoRA file not found: {path}")
    return dict(sorted(load_file(str(path)).items()))


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (adapter identity; APA checks untouched shards with it)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def states_equal(a: Mapping[str, Any], b: Mapping[str, Any], atol: float = 0.0) -> bool:
    """True when two LoRA states have the same keys and tensors equal (bitwise when ``atol`` is 0)."""
    import torch

    if set(a) != set(b):
        return False
    if atol == 0.0:
        return all(torch.equal(a[k], b[k]) for k in a)
    return all(torch.allclose(a[k], b[k], rtol=0.0, atol=atol) for k in a)


def _lora_parameters(model: Any, adapter_name: str) -> dict[str, Any]:
    """PEFT-style key → parameter for one adapter (the adapter name removed from the key)."""
    tag = f".{adapter_name}."
    out = {}
    for name, p in model.named_parameters():
        if (".lora_A." in name or ".lora_B." in name) and tag in name:
            out[name.replace(tag, ".")] = p
    if not out:
        raise ValueError(f"model has no LoRA adapter named {adapter_name!r}")
    return out
