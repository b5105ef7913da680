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
  tokenised, and the rest are tokenised while queued steps run (see ``prompt_feed``).

The model's own modules (projections, norms, MLP, rotary embedding, LoRA layers) do the
arithmetic; only attention and the cache are re-implemented, mirroring transformers' eager
attention (matmul, float32 softmax, matmul). Greedy outputs therefore match ``generate`` token
for token on float32 (tested on the tiny model and on SmolLM2). Supported: decoder-only models
whose layers look like Llama's (llama, mistral without a sliding window, qwen2, qwen3).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from functools import cached_property
from typing import Any, Callable, Sequence

from recaudit.adapters.base import AdapterError
from recaudit.adapters.generation_types import GenSettings, Generated
from recaudit.adapters.prompt_feed import PromptFeed, prepared_ahead

log = logging.getLogger(__name__)

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "qwen3")
# decode steps from which compile=None compiles: ~35% of a ~5 ms step saved over 2,000 steps is about
# the 30-40 s one compile costs on an H100 (benchmarks/results/gpu_throughput_h100.json)
AUTO_COMPILE_MIN_STEPS = 2000
# max_batch=0 sizes the slots from free GPU memory, up to this many: on an H100 a 1.1B model's
# tokens/s still rose from 512 to 1024 slots (50.8k → 60.2k uncompiled), and past that the
# decode GEMMs are compute-bound, so more slots mostly add latency
MAX_AUTO_SLOTS = 1024
CPU_AUTO_SLOTS = 8
CACHE_LENGTH_BUCKET = 64
MEMORY_HEADROOM = 0.85  # share of free memory the slots may take (allocator slack, other tenants)
# finished sequences per on_done call while the GPU runs ahead: small enough that the host stops soon
# after the GPU has caught up, large enough to batch detokenising
HANDOVER_BATCH = 16
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


def _rotate_half(x: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(q: Any, k: Any, cos: Any, sin: Any) -> tuple[Any, Any]:
    cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
    return q * cos + _rotate_half(q) * sin, k * cos + _rotate_half(k) * sin


def grouped_attention(q: Any, k: Any, v: Any, allowed: Any, scaling: float) -> Any:
    """Attention of ``q`` [B, H, Q, d] over grouped ``k``/``v`` [B, Hkv, L, d] without expanding
    the KV heads; ``allowed`` is a boolean mask broadcastable to [B, 1, 1, Q, L]."""
    import torch

    b, h, nq, d = q.shape
    hkv, length = k.shape[1], k.shape[2]
    g = h // hkv
    scores = torch.matmul(q.reshape(b, hkv, g * nq, d), k.transpose(-1, -2)) * scaling
    scores = scores.view(b, hkv, g, nq, length).masked_fill(~allowed, float("-inf"))
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs.view(b, hkv, g * nq, length), v).view(b, h, nq, d)


class _Arch:
    """The pieces of a Llama-like causal LM the loop calls."""

    def __init__(self, model: Any):
        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        cfg = base.config
        mtype = getattr(cfg, "model_type", "?")
        if mtype not in SUPPORTED_MODEL_TYPES:
            raise AdapterError(
                f"engine='recaudit' supports {', '.join(SUPPORTED_MODEL_TYPES)} models, not {mtype!r}; use engine='generate'"
            )
        if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True) and mtype == "mistral":
            raise AdapterError("engine='recaudit' does not implement sliding-window attention; use engine='generate'")
        if getattr(cfg, "pretraining_tp", 1) not in (None, 1):
            raise AdapterError("engine='recaudit' does not support pretraining_tp > 1; use engine='generate'")
        dec = base.model
        self.embed = dec.embed_tokens
        self.layers = list(dec.layers)
        self.norm = dec.norm
        self.rotary = dec.rotary_emb
        self.lm_head = base.lm_head
        self.n_heads = cfg.num_attention_heads
        self.n_kv = getattr(cfg, "num_key_value_heads", None) or self.n_heads
        self.head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // self.n_heads
        attn = self.layers[0].self_attn
        self.scaling = float(getattr(attn, "scaling", self.head_dim**-0.5))
        self.vocab = base.lm_head.out_features

    def project(self, attn: Any, x: Any, heads: int, proj: Any, norm_name: str) -> Any:
        b, t = x.shape[:2]
        y = proj(x).view(b, t, heads, self.head_dim)
        norm = getattr(attn, norm_name, None)  # qwen3 normalises q and k per head
        if norm is not None:
            y = norm(y)
        return y.transpose(1, 2)


class DecodeEngine:
    """Generate for many prompts with a fixed number of slots (``max_batch``)."""

    def __init__(
        self,
        model: Any,
        eos_ids: Sequence[int],
        pad_id: int,
        max_batch: int = 8,
        tokenizer: Any = None,
        cuda_graphs: bool | None = None,
        check_every: int | None = None,
        prefill_chunk: int | None = None,
        refill_fraction: float = 0.125,
        compile: bool | None = None,
    ):
        import torch

        self.model = model
        self.arch = _Arch(model)
        self.eos_ids = list(eos_ids)
        self.pad_id = int(pad_id)
        if int(max_batch) < 0:
            raise ValueError(f"max_batch must be >= 1, or 0 to size it from free memory; got {max_batch}")
        self.max_batch = int(max_batch)  # 0 = auto (see auto_slots)
        self.tokenizer = tokenizer
        self.device = next(model.parameters()).device
        on_cuda = self.device.type == "cuda"
        self.cuda_graphs = on_cuda if cuda_graphs is None else (cuda_graphs and on_cuda)
        # on a GPU a host sync per step would cost as much as the step; on a CPU it is free
        self.check_every = check_every or (8 if on_cuda else 1)
        # prompts per prefill pass, at most: on a GPU a pass is mostly launch cost, so passes are as large as
        # PREFILL_BYTES of activations allow; on a CPU large passes gain nothing
        self.prefill_chunk = prefill_chunk or (GPU_PREFILL_CHUNK if on_cuda else CPU_PREFILL_CHUNK)
        self.refill_fraction = refill_fraction
        self._graph: Any = None  # the decode step (logits), for sampling
        self._graph_logits: Any = None
        self._step_graphs: dict[tuple, Any] = {}  # whole greedy steps, per (penalty, ignore_eos, ...)
        # torch.compile fuses the norms, rotary and activation chains that otherwise run as dozens of
        # tiny kernels per layer (1.4-1.7x per step on an H100); it needs CUDA graphs, and its ~30-40 s
        # compile pays off only on long runs, so None decides per call (see _want_compile)
        self.compile = compile if self.cuda_graphs else False
        self._compiled_step: Any = None
        self._use_compile = False
        self._eos_t = torch.tensor(self.eos_ids or [-1], device=self.device)
        self.stats: dict[str, int] = {"decode_steps": 0, "prefills": 0, "graph_captures": 0, "compiled": 0,
                                      "gpu_caught_up": 0, "feed_blocks_ahead": 0}
        # host seconds per phase of the loop (fill = prefill incl. its waits, launch = queueing decode
        # steps, hand_over = on_done work while the GPU runs, collect = waiting for the GPU + bookkeeping,
        # flush = on_done work after the last step): where a call's wall time goes
        self.host_seconds: dict[str, float] = {}

    # ---- buffers --------------------------------------------------------------------------------
    def _alloc(self, slots: int, length: int, width: int, want_seen: bool) -> None:
        """Static buffers for ``slots`` × ``length`` (reused, zeroed, while the shapes stay the same: the
        CUDA graphs point into them)."""
        import torch

        a, dev = self.arch, self.device
        dtype = next(self.model.parameters()).dtype
        key = (slots, length)
        if getattr(self, "_buf_key", None) != key:
            # release the old cache (and the graphs that point into it) before allocating the new one
            self.k_cache, self.v_cache, self._graph, self._step_graphs = [], [], None, {}
            self.k_cache = [torch.zeros(slots, a.n_kv, length, a.head_dim, dtype=dtype, device=dev) for _ in a.layers]
            self.v_cache = [torch.zeros_like(k) for k in self.k_cache]
            self.tok = torch.zeros(slots, dtype=torch.long, device=dev)
            self.pos = torch.zeros(slots, dtype=torch.long, device=dev)
            self.cols = torch.arange(length, device=dev)
            self.rows = torch.arange(slots, device=dev)
            self._true = torch.ones((), dtype=torch.bool, device=dev)
            self._buf_key = key
            self._state_key = None
            self._seen_buf = None
        if self._state_key != width:
            self.out = torch.zeros(slots, width, dtype=torch.long, device=dev)
            self.gen = torch.zeros(slots, dtype=torch.long, device=dev)
            self.active = torch.zeros(slots, dtype=torch.bool, device=dev)
            self.has_eos = torch.zeros(slots, dtype=torch.bool, device=dev)
            self._state_key, self._step_graphs = width, {}
        else:
            for t in (self.out, self.gen, self.active, self.has_eos):
                t.zero_()
        self.seen = None
        if want_seen:
            if self._seen_buf is None:
                self._seen_buf = torch.zeros(slots, a.vocab, dtype=torch.bool, device=dev)
            self.seen = self._seen_buf.zero_()

    # ---- model passes ---------------------------------------------------------------------------
    def _prefill(self, prompts: Sequence[Sequence[int]], slots: Sequence[int]) -> Any:
        """Run right-padded prompts, write their K/V into ``slots``; return last-token logits."""
        import torch

        a = self.arch
        n, width = len(prompts), max(len(p) for p in prompts)
        ids = torch.full((n, width), self.pad_id, dtype=torch.long)
        for i, p in enumerate(prompts):
            ids[i, : len(p)] = torch.tensor(p, dtype=torch.long)
        ids = ids.to(self.device)
        lens = torch.tensor([len(p) for p in prompts], device=self.device)
        slot_t = torch.tensor(list(slots), device=self.device)
        positions = torch.arange(width, device=self.device).unsqueeze(0).expand(n, width)
        causal = torch.ones(width, width, dtype=torch.bool, device=self.device).tril()
        h = a.embed(ids)
        cos, sin = a.rotary(h, positions)
        for li, layer in enumerate(a.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = a.project(attn, x, a.n_heads, attn.q_proj, "q_norm")
            k = a.project(attn, x, a.n_kv, attn.k_proj, "k_norm")
            v = attn.v_proj(x).view(n, width, a.n_kv, a.head_dim).transpose(1, 2)
            q, k = _rope(q, k, cos, sin)
            self.k_cache[li][slot_t, :, :width] = k
            self.v_cache[li][slot_t, :, :width] = v
            o = grouped_attention(q, k, v, causal, a.scaling)
            h = h + attn.o_proj(o.transpose(1, 2).reshape(n, width, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        last = h[torch.arange(n, device=self.device), lens - 1]
        self.stats["prefills"] += 1
        return a.lm_head(a.norm(last))

    def _decode_step(self, length: int | None = None) -> Any:
        """One token for every slot from ``self.tok`` at ``self.pos``; returns logits [S, V].

        ``length`` limits attention to the first columns (eager path); the graph path uses all."""

        a = self.arch
        s = self.tok.shape[0]
        L = length or self.cols.shape[0]
        pos = self.pos.unsqueeze(1)
        h = a.embed(self.tok.unsqueeze(1))
        cos, sin = a.rotary(h, pos)
        allowed = (self.cols[:L].unsqueeze(0) <= pos).view(s, 1, 1, 1, L)
        for li, layer in enumerate(a.layers):
            attn = layer.self_attn
            x = layer.input_layernorm(h)
            q = a.project(attn, x, a.n_heads, attn.q_proj, "q_norm")
            k = a.project(attn, x, a.n_kv, attn.k_proj, "k_norm")
            v = attn.v_proj(x).view(s, 1, a.n_kv, a.head_dim).transpose(1, 2)
            q, k = _rope(q, k, cos, sin)
            self.k_cache[li][self.rows, :, self.pos] = k[:, :, 0]
            self.v_cache[li][self.rows, :, self.pos] = v[:, :, 0]
            o = grouped_attention(q, self.k_cache[li][:, :, :L], self.v_cache[li][:, :, :L], allowed, a.scaling)
            h = h + attn.o_proj(o.transpose(1, 2).reshape(s, 1, -1))
            h = h + layer.mlp(layer.post_attention_layernorm(h))
        return a.lm_head(a.norm(h[:, 0]))

    def _decode_fn(self) -> Any:
        """The decode step to run or capture: compiled when this call compiles (see ``_want_compile``)."""
        if not self._use_compile:
            return self._decode_step
        if self._compiled_step is None:
            import torch

            self._compiled_step = torch.compile(self._decode_step, dynamic=False, fullgraph=False)
        return self._compiled_step

    def _graphed(self, capture: Callable[[Callable[[], Any]], Any], fn: Callable[[Callable[[], Any]], Any]) -> Any:
        """Capture ``fn(decode)`` with the compiled decode step when this call compiles, falling back to the
        plain one if compiling fails (an unsupported model or toolchain: the plain graph still works)."""
        if self._use_compile:
            try:
                out = capture(lambda: fn(self._decode_fn()))
                self.stats["compiled"] = 1
                return out
            except Exception as e:
                log.warning("torch.compile of the decode step failed (%s: %s); using the uncompiled CUDA graph",
                            type(e).__name__, e)
                self._use_compile = self.compile = False
                self._step_graphs = {}
        return capture(lambda: fn(self._decode_step))

    def _step_logits(self, length: int) -> Any:
        if not self.cuda_graphs:
            return self._decode_step(length)
        if self._graph is None:
            self._graph, self._graph_logits = self._graphed(self._capture, lambda step: step())
        self._graph.replay()
        return self._graph_logits

    def _greedy_step(self, decode: Callable[[], Any], settings: GenSettings, ignore_eos: bool) -> None:
        nxt = self._choose(decode(), settings, None, self.seen)
        self.pos += self.active.long()
        self._accept(nxt, ignore_eos)

    def _graph_step(self, settings: GenSettings, ignore_eos: bool) -> None:
        """One greedy step — decode, repetition penalty, argmax and bookkeeping — as one CUDA graph replay:
        for a small model the ~20 eager launches around the decode graph cost more host time than the GPU
        takes for the step, and the host is then too busy to overlap anything."""
        key = (settings.repetition_penalty, ignore_eos, self.seen is not None, self._use_compile)
        graph = self._step_graphs.get(key)
        if graph is None:
            graph = self._capture_state_step(settings, ignore_eos)
            # keyed after capturing: a compile that failed switched this call to the plain step
            self._step_graphs[(settings.repetition_penalty, ignore_eos, self.seen is not None, self._use_compile)] = graph
        graph.replay()

    def _capture_state_step(self, settings: GenSettings, ignore_eos: bool) -> Any:
        """Capture the greedy step; its warm-up runs advance the decoding state, which is put back after."""
        state = [t for t in (self.tok, self.pos, self.out, self.gen, self.has_eos, self.seen) if t is not None]
        saved = [t.clone() for t in state]
        try:
            graph, _ = self._graphed(self._capture, lambda step: self._greedy_step(step, settings, ignore_eos))
        finally:
            for t, v in zip(state, saved):
                t.copy_(v)
        return graph

    def _capture(self, step: Callable[[], Any]) -> tuple[Any, Any]:
        """Warm ``step`` up on a side stream (compiling it, if compiled), then capture it as a CUDA graph;
        returns the graph and the output tensor its replays write."""
        import torch

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up writes K/V at the current positions, rewritten by real steps
                step()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            out = step()
        self.stats["graph_captures"] += 1
        return graph, out

    def auto_slots(self, prompt_len: int, max_new: int) -> int:
        """Slots that fit in free GPU memory for prompts up to ``prompt_len`` and ``max_new`` new tokens
        (``CPU_AUTO_SLOTS`` on a CPU, where memory is not what limits a batch)."""
        import torch

        if self.device.type != "cuda":
            return CPU_AUTO_SLOTS
        a = self.arch
        dtype_bytes = next(self.model.parameters()).element_size()
        length = prompt_len + max_new + self.check_every
        per_slot = bytes_per_slot(len(a.layers), a.n_kv, a.head_dim, length, a.vocab, dtype_bytes)
        # buffers of an earlier call are freed before the new ones are allocated
        held = sum(t.numel() * t.element_size() for t in getattr(self, "k_cache", []) + getattr(self, "v_cache", []))
        reserve = max(PREFILL_BYTES, self._prefill_bytes(1, prompt_len))  # one prefill pass's activations
        free, _ = torch.cuda.mem_get_info(self.device)
        slots = slots_for_memory(free + held, per_slot, reserve)
        log.info("engine: %d slots from %.1f GiB free (%.1f MiB per slot)", slots, (free + held) / 2**30, per_slot / 2**20)
        return slots

    def _prefill_bytes(self, n: int, width: int) -> int:
        """Activations of one prefill pass over ``n`` prompts of ``width`` tokens: hidden states and MLP
        widths, and the float32 attention scores."""
        per_token, per_score = self._prefill_cost
        return n * width * per_token + n * width * width * per_score

    @cached_property
    def _prefill_cost(self) -> tuple[int, int]:
        # bytes per prompt token and per attention score; asked once per prompt at every refill
        a = self.arch
        hidden = a.embed.embedding_dim
        inter = getattr(self.model.config, "intermediate_size", 4 * hidden)
        dtype_bytes = next(self.model.parameters()).element_size()
        return (4 * hidden + 3 * inter) * dtype_bytes, a.n_heads * 4

    def _prefill_passes(self, reqs: list[int], prompts: Sequence[Sequence[int]]) -> list[list[int]]:
        """Split ``reqs`` into prefill passes: at most ``prefill_chunk`` prompts, and on a GPU at most
        ``PREFILL_BYTES`` of activations (long prompts get smaller passes; one prompt always fits)."""
        passes: list[list[int]] = []
        current: list[int] = []
        width = 0
        for j, r in enumerate(reqs):
            w = max(width, len(prompts[r]))
            too_big = self.device.type == "cuda" and self._prefill_bytes(len(current) + 1, w) > PREFILL_BYTES
            if current and (len(current) >= self.prefill_chunk or too_big):
                passes.append(current)
                current, w = [], len(prompts[r])
            current.append(j)
            width = w
        if current:
            passes.append(current)
        return passes

    def _want_compile(self, n_prompts: int, slots: int, max_new: int) -> bool:
        """Compile when asked to, or (``compile=None``) when the call is long enough to repay it."""
        if self.compile is not None:
            return bool(self.compile)
        return self.cuda_graphs and -(-n_prompts // slots) * max_new >= AUTO_COMPILE_MIN_STEPS

    # ---- token choice ---------------------------------------------------------------------------
    def _choose(self, logits: Any, settings: GenSettings, generator: Any, seen: Any) -> Any:
        """Repetition penalty (over the tokens in ``seen``), then greedy or temperature/top-p
        sampling, in the order transformers applies them."""
        import torch

        scores = logits.float()
        if settings.repetition_penalty != 1.0 and seen is not None:
            p = settings.repetition_penalty
            scores = torch.where(seen, torch.where(scores < 0, scores * p, scores / p), scores)
        if not settings.do_sample:
            return scores.argmax(dim=-1)
        scores = scores / settings.temperature
        if settings.top_p < 1.0:
            sorted_scores, idx = torch.sort(scores, descending=False)
            cum = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
            remove = cum <= (1 - settings.top_p)
            remove[..., -1:] = False
            scores = scores.masked_fill(remove.scatter(1, idx, remove), float("-inf"))
        return torch.multinomial(scores.softmax(dim=-1), 1, generator=generator).squeeze(1)

    def _accept(self, nxt: Any, ignore_eos: bool) -> None:
        width = self.out.shape[1]
        self.tok.copy_(nxt)
        self.out[self.rows, self.gen.clamp(max=width - 1)] = nxt
        if self.seen is not None:
            self.seen[self.rows, nxt] = self._true  # a device scalar: a Python True is copied from the host
        if not ignore_eos:
            self.has_eos |= (nxt.unsqueeze(1) == self._eos_t).any(dim=1) & self.active
        self.gen += self.active.long()

    # ---- the loop -------------------------------------------------------------------------------
    def generate(
        self, prompts: Sequence[Sequence[int]], settings: GenSettings, ignore_eos: bool = False,
        on_done: Callable[[list[tuple[int, Generated]]], None] | None = None,
    ) -> list[Generated | None]:
        """Generated tokens per prompt, in input order (pass prompts sorted by length for speed).
        ``prompts`` may be a ``PromptFeed``: its prompts too long for the cache sized from its
        ``longest`` hint are not run and come back as None.

        ``on_done`` receives ``(prompt index, Generated)`` pairs as sequences finish, called right after
        the next decode steps are queued, so its host work (detokenising, parsing) runs while the GPU
        computes instead of after the whole call."""
        import torch

        n = len(prompts)
        if n == 0:
            return []
        feed = prepared_ahead(prompts)  # later prompts are tokenised while the GPU decodes the first ones
        if feed is None and any(len(p) == 0 for p in prompts):
            raise AdapterError("engine='recaudit' needs non-empty prompts")
        longest = feed.longest if feed is not None else max(len(p) for p in prompts)
        max_new = settings.max_new_tokens
        # with CUDA graphs, slot counts are powers of two (up to max_batch), so a call with a few requests
        # fewer than the last one reuses its graph and compiled step instead of capturing/compiling again;
        # without graphs an idle slot is only wasted work
        cap = self.max_batch or self.auto_slots(longest, max_new)
        slots = min(cap, 1 << (n - 1).bit_length() if self.cuda_graphs else n)
        width = max_new + self.check_every
        # the cache length is rounded up so calls with slightly different prompts share one shape:
        # a new shape means a new CUDA graph and, when compiled, a new ~40 s compile
        cache_len = -(-(longest + width) // CACHE_LENGTH_BUCKET) * CACHE_LENGTH_BUCKET
        fits = cache_len - width  # the longest prompt a slot holds; a feed's longer ones are set aside
        set_aside: set[int] = set()
        self._alloc(slots, cache_len, width, settings.repetition_penalty != 1.0)
        want = self._want_compile(n, slots, max_new)
        if want != self._use_compile:
            self._use_compile, self._graph, self._step_graphs = want, None, {}
        one_graph = self.cuda_graphs and not settings.do_sample  # sampling keeps its generator outside
        generator = None
        if settings.do_sample:
            generator = torch.Generator(device=self.device).manual_seed(settings.seed)
        stops = [s for s in settings.stop if s]
        pending = deque(range(n))
        slot_req = [-1] * slots
        slot_len = [0] * slots  # prompt length per slot
        gen_host = [0] * slots
        results: list[Generated | None] = [None] * n
        refill_min = max(1, int(slots * self.refill_fraction))
        backlog: deque[tuple[int, Generated]] = deque()  # finished, not yet handed to on_done
        with torch.inference_mode():
            while pending or any(r >= 0 for r in slot_req):
                free = [s for s in range(slots) if slot_req[s] < 0]
                t0 = time.perf_counter()
                if pending and free and (len(free) >= refill_min or len(free) == slots):
                    take = [pending.popleft() for _ in range(min(len(free), len(pending)))]
                    if feed is not None:
                        take = self._admit(take, feed, fits, set_aside)
                    self._fill(take, free[: len(take)], prompts, settings, generator, ignore_eos)
                    for r, s in zip(take, free):
                        slot_req[s], slot_len[s], gen_host[s] = r, len(prompts[r]), 1
                t1 = time.perf_counter()
                live = [s for s in range(slots) if slot_req[s] >= 0]
                if not live:  # every prompt taken was set aside
                    continue
                steps = min(self.check_every, max(max_new - gen_host[s] for s in live))
                length = max(slot_len[s] + gen_host[s] for s in live) + steps
                for _ in range(steps):
                    if one_graph:
                        self._graph_step(settings, ignore_eos)
                    else:
                        nxt = self._choose(self._step_logits(length), settings, generator, self.seen)
                        self.pos += self.active.long()
                        self._accept(nxt, ignore_eos)
                    self.stats["decode_steps"] += 1
                t2 = time.perf_counter()
                if backlog and on_done is not None:
                    self._hand_over(backlog, on_done)
                if feed is not None and feed.ready < n:
                    self._prepare_ahead(feed)
                t3 = time.perf_counter()
                for s in live:
                    gen_host[s] += steps
                self._collect(live, slot_req, gen_host, results, max_new, stops, ignore_eos, backlog)
                self._time(fill=t1 - t0, launch=t2 - t1, hand_over=t3 - t2, collect=time.perf_counter() - t3)
            t0 = time.perf_counter()
            while backlog and on_done is not None:
                on_done([backlog.popleft() for _ in range(min(HANDOVER_BATCH, len(backlog)))])
            self._time(flush=time.perf_counter() - t0)
        return [None if i in set_aside else r if r is not None else Generated([], False)  # type: ignore[misc]
                for i, r in enumerate(results)]

    @staticmethod
    def _admit(take: list[int], feed: PromptFeed, fits: int, set_aside: set[int]) -> list[int]:
        """The prompts of ``take`` that fit a slot; longer ones go to ``set_aside`` (the caller runs them
        in a call sized for them)."""
        kept = []
        for r in take:
            prompt = feed[r]
            if not prompt:
                raise AdapterError("engine='recaudit' needs non-empty prompts")
            if len(prompt) <= fits:
                kept.append(r)
            else:
                set_aside.add(r)
        return kept

    def _prepare_ahead(self, feed: PromptFeed) -> None:
        """Tokenise the feed's next prompts while queued decode steps run (on a GPU; a CPU computes the
        steps in this thread, so there the feed prepares prompts when they are first needed)."""
        import torch

        if self.device.type != "cuda":
            return
        queued = torch.cuda.Event()
        queued.record()
        while not queued.query() and feed.prepare_next():
            self.stats["feed_blocks_ahead"] += 1

    def _time(self, **seconds: float) -> None:
        for k, v in seconds.items():
            self.host_seconds[k] = self.host_seconds.get(k, 0.0) + v

    def _hand_over(self, backlog: deque[tuple[int, Generated]], on_done: Callable[[list[tuple[int, Generated]]], None]) -> None:
        """Hand finished sequences to ``on_done`` while the queued decode steps run: on a GPU in small
        batches until it has caught up (the rest waits for the next steps; sequences often finish in
        waves), at least one batch per call so the backlog drains; on a CPU all at once."""
        import torch

        if self.device.type != "cuda":
            on_done(list(backlog))
            backlog.clear()
            return
        queued = torch.cuda.Event()
        queued.record()
        while backlog:
            on_done([backlog.popleft() for _ in range(min(HANDOVER_BATCH, len(backlog)))])
            if queued.query():
                self.stats["gpu_caught_up"] += 1
                break

    def _fill(self, reqs: list[int], slots: list[int], prompts: Sequence[Sequence[int]], settings: GenSettings,
              generator: Any, ignore_eos: bool) -> None:
        """Prefill ``reqs`` into ``slots`` (in chunks) and record their first token."""
        import torch

        for part in self._prefill_passes(reqs, prompts):
            rs, ss = [reqs[j] for j in part], [slots[j] for j in part]
            slot_t = torch.tensor(ss, device=self.device)
            if self.seen is not None:
                self.seen[slot_t] = False
                # one host-to-device copy for every prompt token of the chunk (a copy per prompt waits on the GPU each time)
                rows = torch.tensor([s for r, s in zip(rs, ss) for _ in prompts[r]], device=self.device)
                cols = torch.tensor([t for r in rs for t in prompts[r]], device=self.device)
                self.seen[rows, cols] = True
            logits = self._prefill([prompts[r] for r in rs], ss)
            first = self._choose(logits, settings, generator, None if self.seen is None else self.seen[slot_t])
            if self.seen is not None:
                self.seen[slot_t, first] = True
            self.tok[slot_t] = first
            self.pos[slot_t] = torch.tensor([len(prompts[r]) for r in rs], device=self.device)
            self.out[slot_t] = 0
            self.out[slot_t, 0] = first
            self.gen[slot_t] = 1
            self.active[slot_t] = True
            hit = torch.zeros_like(first, dtype=torch.bool) if ignore_eos else (first.unsqueeze(1) == self._eos_t).any(1)
            self.has_eos[slot_t] = hit

    def _collect(self, live: list[int], slot_req: list[int], gen_host: list[int], results: list[Generated | None],
                 max_new: int, stops: list[str], ignore_eos: bool, finished: deque[tuple[int, Generated]]) -> None:
        """Finish slots whose sequence hit EOS, a stop string or its length; free them (and list them
        in ``finished``)."""
        import torch

        eos_host = self.has_eos.tolist()
        need_tokens = bool(stops)
        out_host = self.out.tolist() if need_tokens else None
        done: list[int] = []
        for s in live:
            if gen_host[s] >= max_new or (eos_host[s] and not ignore_eos):
                done.append(s)
            elif need_tokens and self.tokenizer is not None and out_host is not None:
                text = self.tokenizer.decode(out_host[s][: gen_host[s]], skip_special_tokens=True)
                if any(st in text for st in stops):
                    done.append(s)
        if not done:
            return
        rows: list[Any] = (
            self.out[torch.tensor(done, device=self.device)].tolist() if out_host is None else [out_host[s] for s in done]
        )
        for s, row in zip(done, rows):
            toks = row[: min(gen_host[s], max_new)]
            hit = False
            if not ignore_eos:
                for j, t in enumerate(toks):
                    if t in self.eos_ids:
                        toks, hit = toks[:j], True
                        break
            results[slot_req[s]] = gen = Generated(toks, hit)
            finished.append((slot_req[s], gen))
            slot_req[s] = -1
        self.active[torch.tensor(done, device=self.device)] = False
