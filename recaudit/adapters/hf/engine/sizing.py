"""How much the engine runs at once: slots that fit in free GPU memory, and prompts per prefill pass."""

from __future__ import annotations

import logging
from typing import Any, Sequence

log = logging.getLogger(__name__)

# max_batch=0 sizes the slots from free GPU memory, up to this many: on an H100 a 1.1B model's
# tokens/s still rose from 512 to 1024 slots (50.8k → 60.2k uncompiled), and past that the
# decode GEMMs are compute-bound, so more slots mostly add latency
MAX_AUTO_SLOTS = 1024
CPU_AUTO_SLOTS = 8
CACHE_LENGTH_BUCKET = 64
MEMORY_HEADROOM = 0.85  # share of free memory the slots may take (allocator slack, other tenants)
CPU_PREFILL_CHUNK = 64
GPU_PREFILL_CHUNK = 512
PREFILL_BYTES = 1 << 30  # activations one prefill pass may take on a GPU


def bytes_per_slot(n_layers: int, n_kv: int, head_dim: int, length: int, vocab: int, dtype_bytes: int) -> int:
    """Device bytes one slot holds: its K and V cache rows in every layer, plus its per-step vocabulary
    rows (logits, float32 scores, the repetition-penalty mask)."""
    kv = 2 * n_layers * n_kv * head_dim * length * dtype_bytes
    return kv + vocab * (dtype_bytes + 4 + 1)


def slots_for_memory(free_bytes: int, per_slot: int, reserve: int, cap: int = MAX_AUTO_SLOTS) -> int:
    """How many slots fit in ``MEMORY_HEADROOM`` of the free memory after ``reserve`` (at least 1)."""
    budget = int(free_bytes * MEMORY_HEADROOM) - reserve
    return max(1, min(cap, budget // max(1, per_slot)))


def prefill_cost(arch: Any, model: Any) -> tuple[int, int]:
    """Activation bytes of a prefill pass per prompt token and per attention score."""
    hidden = arch.embed.embedding_dim
    inter = getattr(model.config, "intermediate_size", 4 * hidden)
    dtype_bytes = next(model.parameters()).element_size()
    return (4 * hidden + 3 * inter) * dtype_bytes, arch.n_heads * 4


def prefill_bytes(cost: tuple[int, int], n: int, width: int) -> int:
    """Activations of one prefill pass over ``n`` prompts of ``width`` tokens: hidden states and MLP
    widths, and the float32 attention scores."""
    per_token, per_score = cost
    return n * width * per_token + n * width * width * per_score


def prefill_passes(reqs: list[int], prompts: Sequence[Sequence[int]], chunk: int, cost: tuple[int, int],
                   on_cuda: bool) -> list[list[int]]:
    """Split ``reqs`` into prefill passes: at most ``chunk`` prompts, and on a GPU at most
    ``PREFILL_BYTES`` of activations (long prompts get smaller passes; one prompt always fits)."""
    passes: list[list[int]] = []
    current: list[int] = []
    width = 0
    for j, r in enumerate(reqs):
        w = max(width, len(prompts[r]))
        too_big = on_cuda and prefill_bytes(cost, len(current) + 1, w) > PREFILL_BYTES
        if current and (len(current) >= chunk or too_big):
            passes.append(current)
            current, w = [], len(prompts[r])
        current.append(j)
        width = w
    if current:
        passes.append(current)
    return passes


def auto_slots(arch: Any, model: Any, device: Any, cost: tuple[int, int], held: int, prompt_len: int,
               max_new: int, check_every: int) -> int:
    """Slots that fit in free GPU memory for prompts up to ``prompt_len`` and ``max_new`` new tokens
    (``CPU_AUTO_SLOTS`` on a CPU, where memory is not what limits a batch); ``held`` bytes of an earlier
    call's cache count as free (they are freed before the new ones are allocated)."""
    import torch

    if device.type != "cuda":
        return CPU_AUTO_SLOTS
    dtype_bytes = next(model.parameters()).element_size()
    length = prompt_len + max_new + check_every
    per_slot = bytes_per_slot(len(arch.layers), arch.n_kv, arch.head_dim, length, arch.vocab, dtype_bytes)
    reserve = max(PREFILL_BYTES, prefill_bytes(cost, 1, prompt_len))  # one prefill pass's activations
    free, _ = torch.cuda.mem_get_info(device)
    slots = slots_for_memory(free + held, per_slot, reserve)
    log.info("engine: %d slots from %.1f GiB free (%.1f MiB per slot)", slots, (free + held) / 2**30, per_slot / 2**20)
    return slots
