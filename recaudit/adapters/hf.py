"""Any transformers causal LM (folder, GGUF file, optional LoRA) behind the Adapter protocol.

Generation is batched: requests are grouped by their generation settings, sorted by prompt
length (so a batch pads little), left-padded, generated together and put back in input order.
Greedy decoding (``temperature == 0``) gives the same tokens batched as one at a time.

Three engines share the prompt handling and post-processing:

- ``"generate"``: plain ``model.generate`` with a dynamic KV cache (the reference);
- ``"static"``: ``model.generate(cache_implementation="static")``;
- ``"recaudit"``: :mod:`recaudit.adapters.engine`, a lean decode loop with a static cache and
  slot refilling (continuous batching) whose greedy tokens match ``"generate"``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from recaudit.adapters.base import AdapterError, OnResponse, Request, Response
from recaudit.adapters.generation_types import GenSettings, Generated

log = logging.getLogger(__name__)

ENGINES = ("generate", "static", "recaudit")
_HASH_BYTES = 1 << 20  # first/last MiB of each weights file: fast, and changes when weights change


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


class _StopOnStrings:
    """Stopping criterion: a row is done once its generated text contains a stop string.

    Only the tail of the generated tokens is decoded each step (a stop string of L characters
    lies within the last 4L+4 tokens even for byte-level tokenizers)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_len = prompt_len
        self.window = 4 * max(len(s) for s in self.stops) + 4

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        gen = input_ids[:, self.prompt_len :]
        tail = gen[:, -self.window :].tolist()
        texts = self.tokenizer.batch_decode(tail, skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


# decodes ``tokenizer.decode`` would post-process ("a ." -> "a."), to see whether it does
_CLEAN_UP_PROBE = "a . b , c ! d ? e n't f 'm g 's h 've i 're"


def decode_many(tokenizer: Any, rows: Sequence[Sequence[int]]) -> list[str]:
    """Texts of many token rows, special tokens skipped, as ``tokenizer.decode`` writes them: the fast
    tokenizer's own batch decode (Rust, parallel), plus transformers' space clean-up where this
    tokenizer applies it; ``batch_decode`` where the two could differ."""
    backend = getattr(tokenizer, "_tokenizer", None)
    mode = _fast_decode_mode(tokenizer) if backend is not None and hasattr(backend, "decode_batch") else None
    if mode is None:
        return tokenizer.batch_decode(rows, skip_special_tokens=True)
    assert backend is not None  # mode is set only when the backend decodes batches
    texts = backend.decode_batch([list(r) for r in rows], skip_special_tokens=True)
    return [tokenizer.clean_up_tokenization(t) for t in texts] if mode == "clean_up" else texts


def _fast_decode_mode(tokenizer: Any) -> str | None:
    """"plain" or "clean_up" when the backend's decode (then transformers' clean-up) gives what
    ``tokenizer.decode`` gives on a probe that the clean-up would change; None otherwise. Decided once
    per tokenizer: transformers 4.x cleans up BPE output where the flag says so, 5.x ignores the flag."""
    flag = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))
    try:
        seen_flag, seen_mode = _FAST_DECODE[tokenizer]
        if seen_flag == flag:  # decided for this flag (callers may change it)
            return seen_mode
    except (KeyError, TypeError):
        pass
    mode: str | None = None
    try:
        ids = tokenizer(_CLEAN_UP_PROBE, add_special_tokens=False)["input_ids"]
        want = tokenizer.decode(ids, skip_special_tokens=True)
        raw = tokenizer._tokenizer.decode(list(ids), skip_special_tokens=True)
        if raw == want:
            mode = "plain"  # no clean-up, or the flag is set but not applied (transformers 5 with BPE)
        elif hasattr(tokenizer, "clean_up_tokenization") and tokenizer.clean_up_tokenization(raw) == want:
            mode = "clean_up"
    except Exception:  # an unusual tokenizer: the slow, always-right path
        mode = None
    try:
        _FAST_DECODE[tokenizer] = (flag, mode)
    except TypeError:  # not weak-referenceable: decided again next time
        pass
    return mode


_FAST_DECODE: "weakref.WeakKeyDictionary[Any, tuple[bool, str | None]]" = weakref.WeakKeyDictionary()


def _prompt_chars(request: Request) -> int:
    """Characters of a request's messages: a cheap stand-in for its prompt's token count."""
    return sum(len(c) for _, c in request.messages) + len(request.answer_prefix)


def render_chats(tokenizer: Any, requests: Sequence[Request]) -> list[tuple[str, bool]]:
    """``render_chat`` for many requests in one batched chat-template call (its per-call setup is a
    visible cost at thousands of prompts per audit)."""
    return _render(tokenizer, [(r.messages, r.answer_prefix) for r in requests])


def render_chat(tokenizer: Any, messages: Sequence[tuple[str, str]], answer_prefix: str = "") -> tuple[str, bool]:
    """The prompt text for a chat; returns (text, add_special_tokens).

    Uses the tokenizer's chat template with the assistant turn opened; without a template, a
    plain ``role: content`` join ending in ``assistant:``."""
    return _render(tokenizer, [(messages, answer_prefix)])[0]


def _render(tokenizer: Any, chats: Sequence[tuple[Sequence[tuple[str, str]], str]]) -> list[tuple[str, bool]]:
    """(text, add_special_tokens) per (messages, answer_prefix): the one place chats become prompt text."""
    if not chats:
        return []
    if getattr(tokenizer, "chat_template", None):
        convs = [[{"role": r, "content": c} for r, c in messages] for messages, _ in chats]
        texts = tokenizer.apply_chat_template(convs, tokenize=False, add_generation_prompt=True)
        return [(text + prefix, False) for text, (_, prefix) in zip(texts, chats)]
    out = []
    for messages, prefix in chats:
        text = "\n".join(f"{r}: {c}" for r, c in messages) + "\nassistant:"
        out.append((text + " " + prefix if prefix else text, True))
    return out


class HFCausalLM:
    """A transformers causal LM as an Adapter.

    Load from a folder (``model_path``) or a GGUF file inside it (``gguf_file``), optionally with
    a peft LoRA adapter (``lora_path``, merged into the weights unless ``merge_lora=False``), or
    wrap a model already in memory with :meth:`from_model`.
    """

    def __init__(
        self,
        model_path: str | os.PathLike,
        gguf_file: str | None = None,
        lora_path: str | os.PathLike | None = None,
        device: str | None = None,
        dtype: Any = None,
        torch_threads: int | None = None,
        batch_size: int = 8,
        engine: str = "generate",
        merge_lora: bool = True,
        name: str | None = None,
    ):
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
        self._setup(model, tokenizer, batch_size=batch_size, engine=engine, name=name or (gguf_file or path.name))
        self._static_fingerprint: dict[str, Any] | None = {
            "adapter": "hf",
            "model": self.name,
            "weights": weights,
            "lora": lora_fp,
        }

    @classmethod
    def from_model(
        cls, model: Any, tokenizer: Any, name: str = "model", batch_size: int = 8, engine: str = "generate"
    ) -> "HFCausalLM":
        """Wrap a model already in memory (e.g. a peft model mid-training); the fingerprint follows
        its current weights, so a cache never serves answers of earlier weights."""
        self = cls.__new__(cls)
        self._setup(model, tokenizer, batch_size=batch_size, engine=engine, name=name)
        self._static_fingerprint = None
        return self

    def _setup(self, model: Any, tokenizer: Any, batch_size: int, engine: str, name: str) -> None:
        if engine not in ENGINES:
            raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
        if batch_size < 0 or (batch_size == 0 and engine != "recaudit"):
            raise ValueError("batch_size must be >= 1 (0 = sized from free GPU memory, with engine='recaudit')")
        model.eval()
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.engine = engine
        self.name = name
        self.eos_ids = self._eos_ids()
        self.pad_id = self._pad_id()
        self._engine_impl: Any = None

    # ---- identity -------------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        """Sequences generated at once: ``batch_size``, or the engine's memory-sized cap when it is 0."""
        if self.batch_size:
            return self.batch_size
        from recaudit.adapters.engine import MAX_AUTO_SLOTS

        return MAX_AUTO_SLOTS

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    @property
    def fingerprint(self) -> dict[str, Any]:
        import transformers

        base = dict(self._static_fingerprint) if self._static_fingerprint else {
            "adapter": "hf",
            "model": self.name,
            "weights": module_digest(self.model),
            "lora": None,
        }
        base.update(
            dtype=str(self.dtype).replace("torch.", ""),
            device=self.device.type,
            engine=self.engine,
            transformers=transformers.__version__,
            chat_template=hashlib.sha256(str(getattr(self.tokenizer, "chat_template", "")).encode()).hexdigest()[:12],
        )
        return base

    # ---- tokens ---------------------------------------------------------------------------------
    def _eos_ids(self) -> list[int]:
        ids: list[int] = []
        gc = getattr(self.model, "generation_config", None)
        cand = getattr(gc, "eos_token_id", None)
        for x in cand if isinstance(cand, (list, tuple)) else [cand]:
            if x is not None:
                ids.append(int(x))
        if self.tokenizer.eos_token_id is not None:
            ids.append(int(self.tokenizer.eos_token_id))
        # chat models end a turn with an end-of-turn token that is not always the declared EOS
        for special in ("<|im_end|>", "<|eot_id|>", "<end_of_turn>"):
            tid = self.tokenizer.convert_tokens_to_ids(special)
            if isinstance(tid, int) and tid != self.tokenizer.unk_token_id and tid >= 0:
                ids.append(tid)
        return sorted(set(ids))

    def _pad_id(self) -> int:
        # a pad id that is not an EOS: HF's repetition penalty also penalises pad tokens, and a
        # penalised EOS would make batched greedy output differ from one-at-a-time output
        for tid in (self.tokenizer.pad_token_id, self.tokenizer.unk_token_id):
            if tid is not None and tid not in self.eos_ids:
                return int(tid)
        return self.eos_ids[0] if self.eos_ids else 0

    def prompt_ids(self, request: Request) -> list[int]:
        """Token ids of the rendered chat prompt (plus ``answer_prefix``)."""
        return self.prompts_ids([request])[0]

    def prompts_ids(self, requests: Sequence[Request]) -> list[list[int]]:
        """Token ids of many prompts: one batched tokenizer call (the fast tokenizer's batch path)."""
        rendered = render_chats(self.tokenizer, requests)
        out: list[list[int]] = [[] for _ in rendered]
        for special in (False, True):
            idx = [i for i, (_, sp) in enumerate(rendered) if sp is special]
            if idx:
                ids = self.tokenizer([rendered[i][0] for i in idx], add_special_tokens=special)["input_ids"]
                for i, row in zip(idx, ids):
                    out[i] = list(row)
        return out

    def _left_pad(self, seqs: Sequence[Sequence[int]]) -> tuple[Any, Any]:
        import torch

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, width - len(s) :] = torch.tensor(s, dtype=torch.long)
                mask[i, width - len(s) :] = 1
        return ids.to(self.device), mask.to(self.device)

    # ---- generate -------------------------------------------------------------------------------
    streams_responses = True  # generate(..., on_response=) hands responses over as they finish

    def generate(self, requests: Sequence[Request], on_response: OnResponse | None = None) -> list[Response]:
        """One response per request, in input order; batched by shared settings and prompt length.

        ``on_response(i, response)`` is called as each one is ready: with ``engine="recaudit"`` while
        the engine is still decoding the others (see ``DecodeEngine.generate``), else per batch."""
        requests = list(requests)
        out: list[Response | None] = [None] * len(requests)
        groups: dict[GenSettings, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(GenSettings.of(r), []).append(i)

        def finish(pairs: Sequence[tuple[int, Generated, int]], settings: GenSettings) -> None:
            texts = decode_many(self.tokenizer, [g.token_ids for _, g, _ in pairs])
            for (i, g, n_prompt), text in zip(pairs, texts):
                out[i] = resp = self._response(g, settings, n_prompt, text)
                if on_response is not None:
                    on_response(i, resp)

        for settings, idx in groups.items():
            if self.engine == "recaudit":
                self._engine_generate(requests, idx, settings, finish)
                continue
            idx, prompts = self._by_length(requests, idx)
            for start in range(0, len(idx), self.batch_size):
                chunk = range(start, min(start + self.batch_size, len(idx)))
                done = self._generate_batch([prompts[j] for j in chunk], settings)
                finish([(idx[j], g, len(prompts[j])) for j, g in zip(chunk, done)], settings)
        missing = sum(r is None for r in out)
        if missing:
            raise AdapterError(f"the model produced no response for {missing} of {len(out)} requests")
        return out  # type: ignore[return-value]  # every slot is filled above

    def _engine_generate(self, requests: list[Request], idx: list[int], settings: GenSettings,
                         finish: Callable[[Sequence[tuple[int, Generated, int]], GenSettings], None]) -> None:
        """Run ``requests[idx]`` through the engine. A call of many more prompts than slots hands the
        engine a ``PromptFeed`` (longest first, by characters), so decoding starts once the first slots'
        prompts are tokenised and the rest are tokenised while the GPU works; prompts the feed's length
        hint did not foresee run in a second call sized for them."""
        from recaudit.adapters.prompt_feed import PromptFeed

        engine = self._engine()
        first = self.in_flight
        prompts: Sequence[Sequence[int]]
        if len(idx) > 2 * first:
            idx = sorted(idx, key=lambda i: -_prompt_chars(requests[i]))
            prompts = PromptFeed(len(idx), lambda a, b: self.prompts_ids([requests[i] for i in idx[a:b]]), first=first)
        else:
            idx, prompts = self._by_length(requests, idx)

        def run(idx: list[int], prompts: Sequence[Sequence[int]]) -> list[Generated | None]:
            return engine.generate(prompts, settings, on_done=lambda pairs: finish(
                [(idx[j], g, len(prompts[j])) for j, g in pairs], settings))

        left = [j for j, g in enumerate(run(idx, prompts)) if g is None]
        if left:
            log.info("engine: %d prompts longer than the first block's run in a second call", len(left))
            run([idx[j] for j in left], [prompts[j] for j in left])

    def _by_length(self, requests: list[Request], idx: list[int]) -> tuple[list[int], list[list[int]]]:
        """``idx`` and the token ids of its prompts, shortest prompt first (batches of similar lengths)."""
        ids = self.prompts_ids([requests[i] for i in idx])
        order = sorted(range(len(idx)), key=lambda j: len(ids[j]))
        return [idx[j] for j in order], [ids[j] for j in order]


    def _engine(self) -> Any:
        if self._engine_impl is None:
            from recaudit.adapters.engine import DecodeEngine

            self._engine_impl = DecodeEngine(self.model, eos_ids=self.eos_ids, pad_id=self.pad_id,
                                             max_batch=self.batch_size, tokenizer=self.tokenizer)
        return self._engine_impl

    def generation_config(self, settings: GenSettings) -> Any:
        """A fresh GenerationConfig from the request settings (the model's defaults do not leak in)."""
        from transformers import GenerationConfig

        kw: dict[str, Any] = dict(
            max_new_tokens=settings.max_new_tokens,
            do_sample=settings.do_sample,
            repetition_penalty=settings.repetition_penalty,
            pad_token_id=self.pad_id,
            eos_token_id=self.eos_ids or None,
            bos_token_id=getattr(getattr(self.model, "generation_config", None), "bos_token_id", None),
        )
        if settings.do_sample:
            kw.update(temperature=settings.temperature, top_p=settings.top_p, top_k=0)
        else:
            kw.update(temperature=None, top_p=None, top_k=None)
        return GenerationConfig(**kw)

    def _generate_batch(self, prompts: Sequence[Sequence[int]], settings: GenSettings) -> list[Generated]:
        import torch
        from transformers import StoppingCriteriaList

        ids, mask = self._left_pad(prompts)
        width = ids.shape[1]
        kw: dict[str, Any] = {}
        if settings.stop:
            kw["stopping_criteria"] = StoppingCriteriaList([_StopOnStrings(self.tokenizer, settings.stop, width)])
        if self.engine == "static":
            kw["cache_implementation"] = "static"
        if settings.do_sample:
            torch.manual_seed(settings.seed)
        with torch.inference_mode():
            seqs = self.model.generate(
                input_ids=ids, attention_mask=mask, generation_config=self.generation_config(settings), **kw
            )
        return [self._strip(row) for row in seqs[:, width:].tolist()]

    def _strip(self, row: list[int]) -> Generated:
        for j, t in enumerate(row):
            if t in self.eos_ids:
                return Generated(row[:j], True)
        return Generated(row, False)

    def _response(self, g: Generated, settings: GenSettings, n_prompt: int, text: str | None = None) -> Response:
        if text is None:
            text = self.tokenizer.decode(g.token_ids, skip_special_tokens=True)
        finish = "stop" if g.hit_eos else "length"
        cut = [text.find(s) for s in settings.stop if s and s in text]
        if cut:
            text, finish = text[: min(cut)], "stop"
        return Response(text=text, finish_reason=finish, prompt_tokens=n_prompt, completion_tokens=len(g.token_ids))

    # ---- score ----------------------------------------------------------------------------------
    def score(self, requests: Sequence[Request]) -> list[float]:
        """P(options[0]) / (P(options[0]) + P(options[1])) from the next-token logits after the
        prompt, at each option's first token (TALLRec's P(Yes)); one forward per batch."""
        import torch

        requests = list(requests)
        prompts: list[list[int]] = []
        option_ids: list[tuple[int, int]] = []
        for r in requests:
            text, special = render_chat(self.tokenizer, r.messages, r.answer_prefix)
            prompts.append(self.tokenizer(text, add_special_tokens=special)["input_ids"])
            a, b = (self.option_token_id(text[-OPTION_CONTEXT_CHARS:], o) for o in r.options)
            if a == b:
                raise AdapterError(f"options {r.options!r} start with the same token; score() cannot tell them apart")
            option_ids.append((a, b))
        order = sorted(range(len(requests)), key=lambda i: len(prompts[i]))
        out = [0.0] * len(requests)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            logits = self.next_token_logits([prompts[i] for i in chunk])
            pair = torch.tensor([option_ids[i] for i in chunk], device=logits.device)
            two = logits.gather(1, pair).float()
            p = torch.softmax(two, dim=-1)[:, 0].tolist()
            for i, v in zip(chunk, p):
                out[i] = float(v)
        return out

    def next_token_logits(self, prompts: Sequence[Sequence[int]]) -> Any:
        """Logits of the token after each prompt (left-padded batch, one forward)."""
        import torch

        ids, mask = self._left_pad(prompts)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        kw = {"logits_to_keep": 1} if _accepts(self.model, "logits_to_keep") else {}
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False, **kw).logits
        return logits[:, -1, :]

    def option_token_id(self, prompt_tail: str, option: str) -> int:
        """The first token the model would write for ``option`` right after the prompt.

        Tokenising ``prompt + option`` and taking the first token past the prompt handles
        tokenizers that fold a leading space into the word (" Yes" vs "Yes")."""
        return option_token_id(self.tokenizer, prompt_tail, option)


# characters of the prompt's end that decide how an answer's first token is split
OPTION_CONTEXT_CHARS = 64


@lru_cache(maxsize=4096)
def option_token_id(tokenizer: Any, prompt_tail: str, option: str) -> int:
    """The first token a model writes for ``option`` right after a prompt ending in ``prompt_tail``.

    The one definition of "where P(Yes) is read" shared by ``HFCausalLM.score`` and the TALLRec
    trainer/scorer; cached per (tokenizer, tail, option)."""
    if not option.strip():
        raise AdapterError("score options must be non-empty strings")
    if prompt_tail and not prompt_tail[-1].isspace() and not option[0].isspace():
        option = " " + option  # after "Answer:" a model writes " Yes", not "Yes"
    p = tokenizer(prompt_tail, add_special_tokens=False)["input_ids"]
    full = tokenizer(prompt_tail + option, add_special_tokens=False)["input_ids"]
    if full[: len(p)] == p and len(full) > len(p):
        return int(full[len(p)])
    # the prompt's last token merged with the option's start: the model, which saw the prompt's
    # own last token, would write the option tokenised on its own
    return int(tokenizer(option, add_special_tokens=False)["input_ids"][0])


def _accepts(model: Any, arg: str) -> bool:
    import inspect

    try:
        return arg in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
