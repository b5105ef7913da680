"""Token-level encoding shared by training and scoring, so both read the same positions.

A sample becomes ``chat_template(prompt, add_generation_prompt=True)`` followed by the answer
tokens ("Yes." / "No."), where the answer is tokenised *as a continuation of the prompt* (so a
BPE tokenizer that would merge a leading space or newline gives the same first token the model
sees at inference). Batches are laid out ``[left pads | prompt | answer | right pads]`` with
explicit position ids, so every sample's last prompt token sits at the same index and the LM head
only runs on the few answer positions (``logits_to_keep``) instead of the whole sequence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from recaudit.adapters.hf.chat import OPTION_CONTEXT_CHARS, option_token_id, render_chat
from recaudit.tallrec.prompts import PromptTemplate, TallRecSample, default_template


@dataclass(frozen=True)
class EncodedSample:
    """Token ids of one sample's prompt and answer."""

    prompt_ids: tuple[int, ...]
    answer_ids: tuple[int, ...]
    label: int


@dataclass
class Batch:
    """Model inputs plus the answer targets; ``answer_ids`` is -100 where a sample has no token."""

    input_ids: Any
    attention_mask: Any
    position_ids: Any
    answer_ids: Any
    labels: Any
    n_keep: int
    inputs_embeds: Any = None  # set when a frozen-prefix cache feeds the top blocks
    prefix: Any = None  # the FrozenPrefix that produced ``inputs_embeds``


def prompt_text(tokenizer: Any, messages: Sequence[tuple[str, str]]) -> str:
    """The prompt exactly as the model sees it before the answer (the HF adapter's chat rendering)."""
    return render_chat(tokenizer, messages)[0]


def prompt_ids(tokenizer: Any, messages: Sequence[tuple[str, str]]) -> tuple[str, list[int]]:
    """(prompt text, token ids) as ``HFCausalLM.score`` tokenises it, so both score the same input."""
    text, special = render_chat(tokenizer, messages)
    return text, tokenizer(text, add_special_tokens=special)["input_ids"]


def continuation_ids(tokenizer: Any, context: str, continuation: str) -> list[int]:
    """Token ids of ``continuation`` as the tokenizer splits it right after ``context``."""
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    full = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    n = 0
    while n < min(len(ctx), len(full)) and ctx[n] == full[n]:
        n += 1
    out = full[n:]
    if not out:
        raise ValueError(f"continuation {continuation!r} adds no token after the prompt")
    return out


def option_token_ids(tokenizer: Any, options: tuple[str, str] = ("Yes", "No")) -> tuple[int, int]:
    """First-token ids of the two options where an answer starts (after the generation prompt),
    exactly as ``HFCausalLM.score`` reads them (``adapters.hf.chat.option_token_id``)."""
    tail = prompt_text(tokenizer, [("user", "?")])[-OPTION_CONTEXT_CHARS:]
    ids = (option_token_id(tokenizer, tail, options[0]), option_token_id(tokenizer, tail, options[1]))
    if ids[0] == ids[1]:
        raise ValueError(f"options {options!r} share their first token {ids[0]}; P(Yes) would be undefined")
    return ids


def encode_samples(
    tokenizer: Any,
    samples: Sequence[TallRecSample],
    max_length: int,
    template: PromptTemplate | None = None,
) -> list[EncodedSample]:
    """Encode prompts and answers; prompts longer than the budget lose their oldest tokens (left)."""
    template = template or default_template()
    out = []
    for s in samples:
        text, prompt = prompt_ids(tokenizer, s.prompt_messages)
        answer = continuation_ids(tokenizer, text, template.answer(s.label))
        budget = max_length - len(answer)
        if budget < 1:
            raise ValueError(f"max_length={max_length} leaves no room for a prompt")
        out.append(EncodedSample(tuple(prompt[-budget:]), tuple(answer), int(s.label)))
    return out


def collate(encoded: Sequence[EncodedSample], pad_id: int, with_answer: bool = True, device: Any = None) -> Batch:
    """Pad a list of encoded samples into one ``Batch`` (see the module docstring for the layout)."""
    import torch

    p_max = max(len(e.prompt_ids) for e in encoded)
    a_max = max(len(e.answer_ids) for e in encoded) if with_answer else 0
    t = p_max + a_max
    ids = torch.full((len(encoded), t), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encoded), t), dtype=torch.long)
    answers = torch.full((len(encoded), max(a_max, 1)), -100, dtype=torch.long)
    for i, e in enumerate(encoded):
        p = len(e.prompt_ids)
        ids[i, p_max - p : p_max] = torch.tensor(e.prompt_ids)
        mask[i, p_max - p : p_max] = 1
        if with_answer:
            a = len(e.answer_ids)
            ids[i, p_max : p_max + a] = torch.tensor(e.answer_ids)
            mask[i, p_max : p_max + a] = 1
            answers[i, :a] = torch.tensor(e.answer_ids)
    positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
    labels = torch.tensor([e.label for e in encoded], dtype=torch.long)
    batch = Batch(ids, mask, positions, answers, labels, n_keep=max(a_max, 1) + (1 if with_answer else 0))
    if device is not None:
        for f in ("input_ids", "attention_mask", "position_ids", "answer_ids", "labels"):
            setattr(batch, f, getattr(batch, f).to(device))
    return batch


def answer_logits(model: Any, batch: Batch) -> Any:
    """Logits at the positions that predict answer tokens: shape [batch, answer_len, vocab].

    Index 0 is the last prompt token (predicts the first answer token, where P(Yes) is read).
    """
    common = dict(
        attention_mask=batch.attention_mask, position_ids=batch.position_ids, logits_to_keep=batch.n_keep, use_cache=False
    )
    if batch.prefix is not None:
        with batch.prefix.top_only(model):
            logits = model(inputs_embeds=batch.inputs_embeds, **common).logits
    else:
        logits = model(input_ids=batch.input_ids, **common).logits
    n_ans = batch.answer_ids.shape[1]
    return logits[:, :n_ans, :] if logits.shape[1] > n_ans else logits


def sequence_nll(model: Any, batch: Batch) -> Any:
    """Per-sample mean next-token NLL over every real token of prompt + answer (TALLRec's ``train_on_inputs``), [batch]."""
    import torch

    common = dict(attention_mask=batch.attention_mask, position_ids=batch.position_ids, use_cache=False)
    if batch.prefix is not None:
        with batch.prefix.top_only(model):
            logits = model(inputs_embeds=batch.inputs_embeds, **common).logits
    else:
        logits = model(input_ids=batch.input_ids, **common).logits
    logp = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    targets = batch.input_ids[:, 1:]
    valid = (batch.attention_mask[:, 1:] * batch.attention_mask[:, :-1]).bool()
    tok = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return -(tok * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)


def answer_nll(logits: Any, batch: Batch, first_only: bool = False) -> Any:
    """Per-sample mean negative log-likelihood of the answer tokens, shape [batch]."""
    import torch

    targets = batch.answer_ids[:, :1] if first_only else batch.answer_ids
    logits = logits[:, : targets.shape[1], :]
    logp = torch.log_softmax(logits.float(), dim=-1)
    valid = targets != -100
    tok = logp.gather(-1, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return -(tok * valid).sum(dim=1) / valid.sum(dim=1).clamp(min=1)


def yes_probability(first_logits: Any, option_ids: tuple[int, int]) -> Any:
    """P(options[0]) normalised over the two options, from first-answer-token logits [batch, vocab]."""
    import torch

    pair = first_logits[:, list(option_ids)].float()
    return torch.softmax(pair, dim=-1)[:, 0]
