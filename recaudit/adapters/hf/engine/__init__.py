"""A lean decode loop over a transformers Llama-family model: static KV cache, continuous batching.

Why not ``model.generate``: with a dynamic cache every decode step re-allocates the cache and
expands the grouped KV heads to all attention heads, and a finished sequence keeps its batch
row until the longest one ends. Here

- the KV cache is allocated once, one row ("slot") per running sequence, and each slot keeps
  its own write position, so sequences of different lengths share a batch without padding;
- attention reads the grouped KV heads directly (queries are grouped per KV head) instead of
  copying them ``num_heads / num_kv_heads`` times;
- a finished sequence (EOS, stop string or length) frees its slot, and the next waiting prompt
  is prefilled into it (continuous batching), so the batch stays full of live work;
- on CUDA the decode step is captured once as a CUDA graph and replayed (no per-kernel launch
  cost); for greedy decoding the whole step — decode, repetition penalty, argmax, bookkeeping — is
  one graph, so the host queues a step in one call and is free while the GPU works; prompts are
  prefilled eagerly;
- finished sequences are handed to an ``on_done`` callback after the next steps are queued, so
  the caller's host work (detokenising, caching, parsing, grounding) overlaps the GPU's;
- prompts may come as a ``PromptFeed``: decoding starts once the first slots' prompts are
  tokenised, and the rest are tokenised while queued steps run (see ``recaudit.adapters.prompt_feed``).

The model's own modules (projections, norms, MLP, rotary embedding, LoRA layers) do the
arithmetic; only attention and the cache are re-implemented, mirroring transformers' eager
attention (matmul, float32 softmax, matmul). Greedy outputs therefore match ``generate`` token
for token on float32 (tested on the tiny model and on SmolLM2). Supported: decoder-only models
whose layers look like Llama's (llama, mistral without a sliding window, qwen2, qwen3).

A fenced backend of the HF adapter, in modules of one job each: ``arch`` (the model's pieces, the
prefill and decode passes), ``sampling`` (the next token), ``sizing`` (slots and prefill passes that fit
in memory), ``graphs`` (CUDA graph capture), ``overlap`` (host work while the GPU runs) and ``loop``
(``DecodeEngine``). It imports only ``recaudit.adapters.hf.types``, the adapter protocol and the prompt
feed, never the adapter, which imports it only when ``engine="recaudit"`` runs.
"""

from __future__ import annotations

from recaudit.adapters.hf.engine.arch import SUPPORTED_MODEL_TYPES, Arch, grouped_attention
from recaudit.adapters.hf.engine.loop import AUTO_COMPILE_MIN_STEPS, DecodeEngine
from recaudit.adapters.hf.engine.overlap import HANDOVER_BATCH
from recaudit.adapters.hf.engine.sampling import choose
from recaudit.adapters.hf.engine.sizing import (
    CACHE_LENGTH_BUCKET,
    CPU_AUTO_SLOTS,
    CPU_PREFILL_CHUNK,
    GPU_PREFILL_CHUNK,
    MAX_AUTO_SLOTS,
    MEMORY_HEADROOM,
    PREFILL_BYTES,
    bytes_per_slot,
    slots_for_memory,
)

__all__ = [
    "SUPPORTED_MODEL_TYPES", "Arch", "grouped_attention", "AUTO_COMPILE_MIN_STEPS", "DecodeEngine", "HANDOVER_BATCH",
    "choose", "CACHE_LENGTH_BUCKET", "CPU_AUTO_SLOTS", "CPU_PREFILL_CHUNK", "GPU_PREFILL_CHUNK", "MAX_AUTO_SLOTS",
    "MEMORY_HEADROOM", "PREFILL_BYTES", "bytes_per_slot", "slots_for_memory",
]
