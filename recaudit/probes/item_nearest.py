"""IFairLRS list construction as its official code builds it: embed one generated title, take the K nearest items.

JiangM-C/IFairLRS (``code/evaluate_all.py``, ``code/get_item_embedding.py``), following BIGRec's
grounding step: each catalogue title and the model's generated title (the first prediction,
quotes stripped) are fed to the LLM; the embedding is the last layer's hidden state at the last
token (left padding); items are ranked by L2 distance to the generated title's embedding and the
top K form the list — every user gets K items, nothing is dropped, and the user's seen items are
not excluded. recaudit asks for a list and embeds its first parsed title (the official prompt asks
for one next item). For a local model (an adapter exposing ``model`` and ``tokenizer``) the
embedding is that model's own hidden state (``llm-hidden``); for endpoints it is the shipped
MiniLM sentence encoder (``minilm``, recaudit.text.embed; normalised, so L2 ranks as cosine).
The embedder used is named in the result.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

EmbedFn = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class TitleEmbedder:
    """A named text → vector function (rows are texts)."""

    name: str
    embed: EmbedFn


def nearest_items(queries: np.ndarray, items: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` items nearest (L2) to each query, nearest first; ties keep catalogue order."""
    q = np.asarray(queries, dtype=np.float64)
    it = np.asarray(items, dtype=np.float64)
    if q.ndim != 2 or it.ndim != 2 or q.shape[1] != it.shape[1]:
        raise ValueError(f"queries {q.shape} and items {it.shape} must be 2-D with the same width")
    k = min(k, it.shape[0])
    # squared L2 via the expansion, exact enough to rank; argsort is stable so ties keep item order
    d2 = (q**2).sum(axis=1)[:, None] - 2.0 * q @ it.T + (it**2).sum(axis=1)[None, :]
    return np.argsort(d2, axis=1, kind="stable")[:, :k]


def unwrap(adapter: Any) -> Any:
    """The innermost adapter under cache/limit wrappers (``.inner`` chains)."""
    seen = 0
    while hasattr(adapter, "inner") and seen < 10:
        adapter = adapter.inner
        seen += 1
    return adapter


def llm_hidden_embedder(adapter: Any, batch_size: int = 16) -> TitleEmbedder | None:
    """The adapter's own model as embedder (last layer, last token), or None when it has no local model."""
    inner = unwrap(adapter)
    model, tok = getattr(inner, "model", None), getattr(inner, "tokenizer", None)
    if model is None or tok is None or not hasattr(model, "parameters"):
        return None

    def embed(texts: Sequence[str]) -> np.ndarray:
        import torch

        device = next(model.parameters()).device
        old_side = getattr(tok, "padding_side", "right")
        tok.padding_side = "left"  # the last position is then every text's last token
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        out = []
        try:
            with torch.no_grad():
                for i in range(0, len(texts), batch_size):
                    enc = tok(list(texts[i : i + batch_size]), return_tensors="pt", padding=True).to(device)
                    hs = model(**enc, output_hidden_states=True).hidden_states[-1][:, -1, :]
                    out.append(hs.float().cpu().numpy())
        finally:
            tok.padding_side = old_side
        return np.concatenate(out, axis=0) if out else np.zeros((0, 1))

    return TitleEmbedder("llm-hidden", embed)


def minilm_embedder() -> TitleEmbedder:
    """The shipped all-MiniLM-L6-v2 sentence encoder (normalised embeddings)."""
    from recaudit.text.embed import embed

    return TitleEmbedder("minilm", lambda texts: embed(list(texts)))


def first_title(titles: Sequence[str]) -> str | None:
    """The generated title the official code embeds: the first prediction, surrounding quotes stripped."""
    for t in titles:
        t = str(t).strip().strip('"').strip()
        if t:
            return t
    return None
