"""How visible an edit is: character and word edit distance, MiniLM meaning similarity, edit budgets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

WORD = re.compile(r"\S+")


def char_edits(a: str, b: str) -> int:
    """Levenshtein distance in characters."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(a, b))


def words(text: str) -> list[str]:
    """Whitespace-separated words (punctuation stays attached, so 'Sm'art' is one changed word)."""
    return WORD.findall(text)


def word_edits(a: str, b: str) -> int:
    """Levenshtein distance in whole words (substitutions, insertions, deletions)."""
    from rapidfuzz.distance import Levenshtein

    return int(Levenshtein.distance(words(a), words(b)))


def added_words(a: str, b: str) -> int:
    """How many more words ``b`` has than ``a`` (0 when it has fewer)."""
    return max(0, len(words(b)) - len(words(a)))


EmbedFn = Callable[[Sequence[str]], np.ndarray]


def semantic_similarity(pairs: Sequence[tuple[str, str]], embed_fn: EmbedFn | None = None) -> np.ndarray:
    """Cosine similarity of each (a, b) pair under all-MiniLM-L6-v2 (``recaudit.text.embed``)."""
    if not pairs:
        return np.zeros(0)
    if embed_fn is None:
        from recaudit.text.embed import embed as embed_fn
    texts = sorted({t for p in pairs for t in p})
    index = {t: i for i, t in enumerate(texts)}
    vecs = np.asarray(embed_fn(texts), dtype=float)
    vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    return np.array([float(vecs[index[a]] @ vecs[index[b]]) for a, b in pairs])


@dataclass(frozen=True)
class Budget:
    """Edit budget of one attack; ``None`` means unlimited on that axis.

    ``max_char_edits``: Levenshtein characters; ``max_words``: words changed (word-level edit
    distance); ``max_added_words``: words appended or inserted; ``max_total_words``: length of a
    rewritten title (the LLM rewrite's <MaxLen>).
    """

    max_char_edits: int | None = None
    max_words: int | None = None
    max_added_words: int | None = None
    max_total_words: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_char_edits", "max_words", "max_added_words", "max_total_words"):
            v = getattr(self, name)
            if v is not None and v < 0:
                raise ValueError(f"budget.{name} must be >= 0 or None, got {v}")

    def violations(self, clean: str, adversarial: str) -> list[str]:
        """Which limits ``adversarial`` breaks (empty when within budget)."""
        out = []
        if self.max_char_edits is not None and (d := char_edits(clean, adversarial)) > self.max_char_edits:
            out.append(f"{d} character edits > {self.max_char_edits}")
        if self.max_words is not None and (d := word_edits(clean, adversarial)) > self.max_words:
            out.append(f"{d} words changed > {self.max_words}")
        if self.max_added_words is not None and (d := added_words(clean, adversarial)) > self.max_added_words:
            out.append(f"{d} words added > {self.max_added_words}")
        if self.max_total_words is not None and (d := len(words(adversarial))) > self.max_total_words:
            out.append(f"{d} words > {self.max_total_words}")
        return out

    def allows(self, clean: str, adversarial: str) -> bool:
        """True when ``adversarial`` is within every limit."""
        return not self.violations(clean, adversarial)

    def as_dict(self) -> dict[str, int | None]:
        return {
            "max_char_edits": self.max_char_edits,
            "max_words": self.max_words,
            "max_added_words": self.max_added_words,
            "max_total_words": self.max_total_words,
        }
