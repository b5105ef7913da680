"""Any transformers causal LM (folder, GGUF file, optional LoRA) behind the Adapter protocol.

Generation is batched: requests are grouped by their generation settings, sorted by prompt
length (so a batch pads little), left-padded, generated together and put back in input order.
Greedy decoding (``temperature == 0``) gives the same tokens batched as one at a time.

Three engines share the prompt handling and post-processing:

- ``"generate"``: plain ``model.generate`` with a dynamic KV cache (the reference);
- ``"static"``: ``model.generate(cache_implementation="static")``;
- ``"recaudit"``: :mod:`recaudit.adapters.hf.engine`, a lean decode loop with a static cache and
  slot refilling (continuous batching) whose greedy tokens match ``"generate"``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable, Sequence

from recaudit.adapters.base import AdapterError, OnResponse, Request, Response
from recaudit.adapters.hf.chat import OPTION_CONTEXT_CHARS, option_token_id, prompt_chars, render_chat, render_chats
from recaudit.adapters.hf.decode import StopOnStrings, decode_many
from recaudit.adapters.hf.fingerprint import model_fingerprint
from recaudit.adapters.hf.load import load_causal_lm
from recaudit.adapters.hf.types import GenSettings, Generated

log = logging.getLogger(__name__)

ENGINES = ("generate", "static", "recaudit")


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
        loaded = load_causal_lm(model_path, gguf_file, lora_path, device, dtype, torch_threads, merge_lora)
        name = name or (gguf_file or Path(model_path).expanduser().name)
        self._setup(loaded.model, loaded.tokenizer, batch_size=batch_size, engine=engine, name=name)
        self._static_fingerprint: dict[str, Any] | None = {
            "adapter": "hf",
            "model": self.name,
            "weights": loaded.weights,
            "lora": loaded.lora,
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
        from recaudit.adapters.hf.engine.sizing import MAX_AUTO_SLOTS

        return MAX_AUTO_SLOTS

    @property
    def device(self) -> Any:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> Any:
        return next(self.model.parameters()).dtype

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Weights, LoRA, dtype, device, engine, transformers version and chat template (see ``model_fingerprint``)."""
        return model_fingerprint(self._static_fingerprint, self.name, self.model, self.tokenizer, self.engine)

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
    streams_responses = True  # StreamingAdapter: generate(..., on_response=) hands responses over as they finish

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
            idx = sorted(idx, key=lambda i: -prompt_chars(requests[i]))
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
            from recaudit.adapters.hf.engine import DecodeEngine

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
            kw["stopping_criteria"] = StoppingCriteriaList([StopOnStrings(self.tokenizer, settings.stop, width)])
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


def _accepts(model: Any, arg: str) -> bool:
    import inspect

    try:
        return arg in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
