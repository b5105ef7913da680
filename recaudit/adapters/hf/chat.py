"""Chats as prompt text, and where an answer's first token is read: the one definition shared by the HF
adapter and the TALLRec trainer/scorer (which import it from here, not from the adapter)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Sequence

from recaudit.adapters.base import AdapterError, Request

# characters of the prompt's end that decide how an answer's first token is split
OPTION_CONTEXT_CHARS = 64


def prompt_chars(request: Request) -> int:
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
