"""The next token from a step's logits: repetition penalty, then greedy or temperature/top-p sampling,
in the order transformers applies them (so greedy tokens match ``model.generate``)."""

from __future__ import annotations

from typing import Any

from recaudit.adapters.hf.types import GenSettings


def choose(logits: Any, settings: GenSettings, generator: Any, seen: Any) -> Any:
    """Next token per row: the penalty over the tokens marked in ``seen`` (a [rows, vocab] bool mask,
    or None), then argmax, or a draw from ``generator`` when sampling."""
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
