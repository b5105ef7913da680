"""Items become categories here, and only here: the name→category mapping of the implicit-name probe.

News items map to MIND categories and job items to SOC major groups (keywords first, then
MiniLM similarity to the category descriptions); movies map to the catalogue's genres through
``recaudit.text.ground.Grounder``. Vocabularies ship in implicit_names_categories.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from recaudit.data.catalog import Catalog
from recaudit.text.prompts import load_prompt_file
from recaudit.text.parse import normalize_title

CATEGORY_FILE = "implicit_names_categories.yaml"


@dataclass(frozen=True)
class Category:
    """One category of a vocabulary (MIND news category, SOC job family, or a catalogue genre)."""

    id: str
    label: str
    description: str = ""
    keywords: tuple[str, ...] = ()
    interest: str = ""

    @property
    def interest_phrase(self) -> str:
        """How a prompt states an interest in this category."""
        return self.interest or self.label.lower()


def load_categories(domain: str, overrides: dict[str, list[dict[str, Any]]] | None = None) -> list[Category]:
    """The shipped vocabulary of ``domain`` (news, jobs), or the config's replacement list."""
    source = (overrides or {}).get(domain)
    if source is None:
        data = load_prompt_file(CATEGORY_FILE, "recaudit.probes")
        if domain not in data:
            raise ValueError(f"no shipped category vocabulary for domain {domain!r}; pass `categories`")
        source = data[domain]
    out = []
    for row in source:
        if "id" not in row:
            raise ValueError(f"categories.{domain}: every category needs an 'id', got {row!r}")
        out.append(Category(
            id=str(row["id"]), label=str(row.get("label", row["id"])), description=str(row.get("description", "")),
            keywords=tuple(str(k) for k in row.get("keywords", ())), interest=str(row.get("interest", "")),
        ))
    if len({c.id for c in out}) != len(out):
        raise ValueError(f"categories.{domain}: ids must be unique")
    return out


class CategoryMapper:
    """Maps recommended item texts of one domain to category ids (a tuple per item, empty = unmapped).

    ``method``: "keyword" (whole-word keyword/phrase hits in the normalised text; the category
    with the most matched words wins, ties to the vocabulary order), "embedding" (cosine of
    all-MiniLM-L6-v2 embeddings of the item and "label: description", accepted at
    ``embedding_threshold``), "auto" (keywords, then embeddings for the rest when the encoder
    is installed). With a catalogue (movies) items are grounded to catalogue items and map to
    all of the item's genres (first genre first).
    """

    def __init__(
        self,
        categories: Sequence[Category] = (),
        catalog: Catalog | None = None,
        method: Literal["auto", "keyword", "embedding"] = "auto",
        embedding_threshold: float = 0.3,
        use_embeddings_for_grounding: bool = True,
    ):
        if catalog is None and not categories:
            raise ValueError("CategoryMapper needs categories or a catalogue")
        self.catalog = catalog
        self.method = method
        self.embedding_threshold = embedding_threshold
        self.embeddings_used = False
        self.notes: list[str] = []
        if catalog is not None:
            from recaudit.text.ground import Grounder

            self.categories = [Category(id=g, label=g) for g in catalog.genres()]
            self._grounder = Grounder(catalog, use_embeddings=use_embeddings_for_grounding)
        else:
            self.categories = list(categories)
            self._keywords = [
                (j, f" {normalize_title(kw)} ", len(normalize_title(kw).split()))
                for j, c in enumerate(self.categories) for kw in c.keywords if normalize_title(kw)
            ]
        self._category_vectors: np.ndarray | None = None

    @property
    def category_ids(self) -> list[str]:
        return [c.id for c in self.categories]

    def map(self, items: Sequence[str]) -> list[tuple[str, ...]]:
        """Categories of each item, aligned with ``items``."""
        if self.catalog is not None:
            return [
                tuple(self.catalog.get(g.item_id).genres) if g.item_id is not None else ()
                for g in self._grounder.ground(list(items))
            ]
        out: list[tuple[str, ...]] = [()] * len(items)
        if self.method in ("auto", "keyword"):
            out = [self._by_keyword(it) for it in items]
        if self.method in ("auto", "embedding"):
            rest = [i for i, cats in enumerate(out) if not cats]
            if rest:
                for i, cats in zip(rest, self._by_embedding([items[i] for i in rest])):
                    out[i] = cats
        return out

    def _by_keyword(self, item: str) -> tuple[str, ...]:
        text = f" {normalize_title(item)} "
        scores = np.zeros(len(self.categories))
        for j, kw, n_words in self._keywords:
            if kw in text:
                scores[j] += n_words
        return (self.categories[int(scores.argmax())].id,) if scores.max() > 0 else ()

    def _by_embedding(self, items: list[str]) -> list[tuple[str, ...]]:
        from recaudit.text.embed import EmbeddingModelMissing, embed

        try:
            if self._category_vectors is None:
                self._category_vectors = embed([f"{c.label}: {c.description}" for c in self.categories])
            sims = embed(items) @ self._category_vectors.T
        except EmbeddingModelMissing as e:
            if self.method == "embedding":
                raise
            self.notes.append(f"embedding matcher unavailable ({e}); keyword matches only")
            return [()] * len(items)
        self.embeddings_used = True
        best = sims.argmax(axis=1)
        return [
            (self.categories[b].id,) if sims[r, b] >= self.embedding_threshold else ()
            for r, b in enumerate(best)
        ]


__all__ = ["CATEGORY_FILE", "Category", "CategoryMapper", "load_categories"]
