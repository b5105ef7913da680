"""The decode loop: slots of a static KV cache kept full of live sequences (continuous batching), each
step queued as a CUDA graph replay on a GPU, finished sequences handed over while the next steps run.
What the loop does and why is told in the package docstring (``recaudit.adapters.hf.engine``)."""

from __future__ import annotations

import logging
import time
from collections import deque
from functools import cached_property
from typing import Any, Callable, Sequence

import recaudit.adapters.hf.engine.graphs as graphs
import recaudit.adapters.hf.engine.overlap as overlap
import recaudit.adapters.hf.engine.sizing as sizing
from recaudit.adapters.base import AdapterError
from recaudit.adapters.hf.engine.arch import Arch
from recaudit.adapters.hf.engine.sampling import choose
from recaudit.adapters.hf.types import GenSettings, Generated
from recaudit.adapters.prompt_feed import prepared_ahead

log = logging.getLogger(__name__)

# decode steps from which compile=None compiles: ~35% of a ~5 ms step saved over 2,000 steps is about
# the 30-40 s one compile costs on an H100 (benchmarks/results/gpu_throughput_h100.json)
AUTO_COMPILE_MIN_STEPS = 2000


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
        self.arch = Arch(model)
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
        self.prefill_chunk = prefill_chunk or (sizing.GPU_PREFILL_CHUNK if on_cuda else sizing.CPU_PREFILL_CHUNK)
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
        logits = self.arch.prefill(prompts, slots, self.pad_id, self.device, self.k_cache, self.v_cache)
        self.stats["prefills"] += 1
        return logits

    def _decode_step(self, length: int | None = None) -> Any:
        """One token for every slot from ``self.tok`` at ``self.pos``; returns logits [S, V].

        ``length`` limits attention to the first columns (eager path); the graph path uses all."""
        return self.arch.decode(self.tok, self.pos, self.cols, self.rows, self.k_cache, self.v_cache, length)

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
        nxt = choose(decode(), settings, None, self.seen)
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
        return graphs.capture(step, self.stats)

    def auto_slots(self, prompt_len: int, max_new: int) -> int:
        """Slots that fit in free GPU memory for prompts up to ``prompt_len`` and ``max_new`` new tokens
        (``CPU_AUTO_SLOTS`` on a CPU, where memory is not what limits a batch)."""
        held = sum(t.numel() * t.element_size() for t in getattr(self, "k_cache", []) + getattr(self, "v_cache", []))
        return sizing.auto_slots(self.arch, self.model, self.device, self._prefill_cost, held, prompt_len, max_new,
                                 self.check_every)

    def _prefill_bytes(self, n: int, width: int) -> int:
        return sizing.prefill_bytes(self._prefill_cost, n, width)

    @cached_property
    def _prefill_cost(self) -> tuple[int, int]:
        # bytes per prompt token and per attention score; asked once per prompt at every refill
        return sizing.prefill_cost(self.arch, self.model)

    def _prefill_passes(self, reqs: list[int], prompts: Sequence[Sequence[int]]) -> list[list[int]]:
        return sizing.prefill_passes(reqs, prompts, self.prefill_chunk, self._prefill_cost, self.device.type == "cuda")

    def _want_compile(self, n_prompts: int, slots: int, max_new: int) -> bool:
        """Compile when asked to, or (``compile=None``) when the call is long enough to repay it."""
        if self.compile is not None:
            return bool(self.compile)
        return self.cuda_graphs and -(-n_prompts // slots) * max_new >= AUTO_COMPILE_MIN_STEPS

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
        cache_len = -(-(longest + width) // sizing.CACHE_LENGTH_BUCKET) * sizing.CACHE_LENGTH_BUCKET
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
                        take = overlap.admit(take, feed, fits, set_aside)
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
                        nxt = choose(self._step_logits(length), settings, generator, self.seen)
                        self.pos += self.active.long()
                        self._accept(nxt, ignore_eos)
                    self.stats["decode_steps"] += 1
                t2 = time.perf_counter()
                if backlog and on_done is not None:
                    overlap.hand_over(backlog, on_done, self.device, self.stats)
                if feed is not None and feed.ready < n:
                    overlap.prepare_ahead(feed, self.device, self.stats)
                t3 = time.perf_counter()
                for s in live:
                    gen_host[s] += steps
                self._collect(live, slot_req, gen_host, results, max_new, stops, ignore_eos, backlog)
                self._time(fill=t1 - t0, launch=t2 - t1, hand_over=t3 - t2, collect=time.perf_counter() - t3)
            t0 = time.perf_counter()
            if on_done is not None:
                overlap.flush(backlog, on_done)
            self._time(flush=time.perf_counter() - t0)
        return [None if i in set_aside else r if r is not None else Generated([], False)  # type: ignore[misc]
                for i, r in enumerate(results)]

    def _time(self, **seconds: float) -> None:
        for k, v in seconds.items():
            self.host_seconds[k] = self.host_seconds.get(k, 0.0) + v

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
            first = choose(logits, settings, generator, None if self.seen is None else self.seen[slot_t])
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
