"""Defenses a platform can run on a submitted title before the recommender sees it.

- ``LLMRewriteDefense`` — the paper's correction prompt ("Correct possible grammar, spelling and
  word substitution errors …") through any adapter.
- ``SpellCorrectionDefense`` — offline dictionary correction: a token the dictionary does not
  know is replaced by its de-punctuated form when that is known ("Sm'art" → "Smart"), else by
  the most frequent known word within a small Levenshtein distance ("Tmblet" → "Tablet").
  The dictionary is the catalogue's own title vocabulary (the item under review excluded),
  plus WordNet lemmas and their inflections when WordNet is installed.
- ``DriftDetector`` — flags an edit whose meaning drifted from the previous title (MiniLM
  cosine below a floor) or that reads unnaturally (share of unknown words above a ceiling);
  as a defense, a flagged edit is rejected and the previous title stays.

Every defense maps (submitted titles, previous titles) → titles the recommender will show.
Titles are untrusted data: only word tokens are ever replaced; every other character
(markup, quotes, brackets) is copied through unchanged.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from recaudit.adapters.base import Adapter, Request
from recaudit.attacks.prompts import ShillingPrompts, clean_generated_title, default_prompts, fill
from recaudit.attacks.stealth import EmbedFn, semantic_similarity
from recaudit.attacks.victim import as_context
from recaudit.checks import CheckContext
from recaudit.data.catalog import Catalog

DEFENSE_NAMES = ("llm_rewrite", "spell", "detector")
# A word, possibly with punctuation *inside* it ("Sm'art", "Spider-Man", "L.A"); nothing else.
TOKEN = re.compile(r"[^\W_]+(?:['’\-.,:;!?_][^\W_]+)*")
INNER_PUNCT = re.compile(r"['’\-.,:;!?_]")


@runtime_checkable
class Defense(Protocol):
    """Maps submitted titles (and the titles they replace) to the titles shown to the recommender."""

    name: str

    def defend(self, submitted: Sequence[str], previous: Sequence[str]) -> list[str]:
        ...


@lru_cache(maxsize=1)
def _wordnet_words() -> frozenset[str]:
    """WordNet lemma names (lower case, single words) when WordNet is installed; empty otherwise."""
    from recaudit.attacks.textattack_bridge import wordnet_status

    ok, _ = wordnet_status()
    if not ok:
        return frozenset()
    from nltk.corpus import wordnet

    return frozenset(w.lower() for w in wordnet.all_lemma_names() if w.isalpha())


@dataclass
class Vocabulary:
    """Known words with frequencies; ``use_wordnet`` also accepts WordNet lemmas and their inflections."""

    counts: Counter = field(default_factory=Counter)
    use_wordnet: bool = True
    _morph_cache: dict[str, bool] = field(default_factory=dict, repr=False)

    @classmethod
    def from_titles(cls, titles: Iterable[str], use_wordnet: bool = True, extra_words: Iterable[str] = ()) -> "Vocabulary":
        """Word counts of ``titles`` (and ``extra_words``), lower-cased."""
        counts: Counter = Counter()
        for t in titles:
            for tok in TOKEN.findall(t):
                counts[tok.lower()] += 1
                for part in INNER_PUNCT.split(tok):
                    if part and part.lower() != tok.lower():
                        counts[part.lower()] += 1
        counts.update(w.lower() for w in extra_words)
        return cls(counts=counts, use_wordnet=use_wordnet)

    @classmethod
    def from_catalog(cls, catalog: Catalog, exclude: Iterable[str] = (), use_wordnet: bool = True) -> "Vocabulary":
        """The catalogue's title vocabulary without the items in ``exclude`` (the ones under review)."""
        skip = set(exclude)
        return cls.from_titles((it.title for it in catalog if it.item_id not in skip), use_wordnet=use_wordnet)

    @property
    def wordnet_used(self) -> bool:
        return self.use_wordnet and bool(_wordnet_words())

    def known(self, word: str) -> bool:
        """Whether ``word`` (any case) is a known word, a number, or a WordNet inflection."""
        w = word.lower()
        if w in self.counts or w.isdigit():
            return True
        if not self.wordnet_used:
            return False
        if w in _wordnet_words():
            return True
        if w not in self._morph_cache:
            from nltk.corpus import wordnet

            self._morph_cache[w] = wordnet.morphy(w) is not None
        return self._morph_cache[w]

    def frequency(self, word: str) -> int:
        """Catalogue count (WordNet-only words count 0)."""
        return int(self.counts.get(word.lower(), 0))

    def choices(self) -> list[str]:
        """Every word a correction may produce (catalogue words first)."""
        words = list(self.counts)
        if self.wordnet_used:
            words += sorted(_wordnet_words() - set(self.counts))
        return words

    def oov_share(self, text: str) -> float:
        """Share of alphabetic tokens (2+ letters) that are unknown; 0 for a text without any."""
        toks = [t for t in TOKEN.findall(text) if sum(ch.isalpha() for ch in t) >= 2]
        if not toks:
            return 0.0
        return sum(not self.known(t) for t in toks) / len(toks)


def _match_case(word: str, like: str) -> str:
    letters = [c for c in like if c.isalpha()]
    if letters and all(c.isupper() for c in letters) and len(letters) > 1:
        return word.upper()
    if letters and letters[0].isupper():
        return word[:1].upper() + word[1:]
    return word


class SpellCorrectionDefense:
    """Offline dictionary spell correction of word tokens (other characters are kept as they are)."""

    name = "spell"

    def __init__(self, vocabulary: Vocabulary, max_distance: int = 2, min_length: int = 3):
        if max_distance < 1:
            raise ValueError(f"max_distance must be >= 1, got {max_distance}")
        self.vocabulary = vocabulary
        self.max_distance = max_distance
        self.min_length = min_length
        self._choices: list[str] | None = None
        self._memo: dict[str, str] = {}

    def correct_word(self, token: str) -> str:
        """The corrected form of one token (unchanged when known or when nothing is close)."""
        if token in self._memo:
            return self._memo[token]
        out = self._correct(token)
        self._memo[token] = out
        return out

    def _correct(self, token: str) -> str:
        voc = self.vocabulary
        if voc.known(token):
            return token
        parts = [p for p in INNER_PUNCT.split(token) if p]
        if len(parts) > 1:
            joined = "".join(parts)
            if voc.known(joined):
                return joined  # punctuation slipped inside a known word
            if all(voc.known(p) for p in parts):
                return token  # a compound of known words ("Spider-Man")
        word = "".join(parts)
        if len(word) < self.min_length or not word.isalpha():
            return token
        from rapidfuzz import process
        from rapidfuzz.distance import Levenshtein

        limit = 1 if len(word) <= 4 else self.max_distance
        if self._choices is None:
            self._choices = self.vocabulary.choices()
        found = process.extract(
            word.lower(), self._choices, scorer=Levenshtein.distance, score_cutoff=limit, limit=None
        )
        if not found:
            return token
        best = min(found, key=lambda m: (m[1], -voc.frequency(m[0]), m[0]))
        return _match_case(best[0], word)

    def correct(self, title: str) -> str:
        """``title`` with every unknown word token corrected."""
        return TOKEN.sub(lambda m: self.correct_word(m.group(0)), title)

    def defend(self, submitted: Sequence[str], previous: Sequence[str] = ()) -> list[str]:
        return [self.correct(t) for t in submitted]


class LLMRewriteDefense:
    """The paper's correction prompt through any adapter (greedy); an empty reply keeps the submitted title."""

    name = "llm_rewrite"

    def __init__(self, calls: Adapter | CheckContext, prompts: ShillingPrompts | None = None):
        self.ctx = as_context(calls)
        self.prompts = prompts or default_prompts()
        self.empty_replies = 0

    def request(self, title: str) -> Request:
        text = fill(self.prompts.defense_rewrite, AdversarialTitle=title)
        return Request.chat(text, **dict(_without_sampling(self.prompts.rewrite_settings)))

    def defend(self, submitted: Sequence[str], previous: Sequence[str] = ()) -> list[str]:
        first = len(self.ctx.evidence)
        replies = self.ctx.generate([self.request(t) for t in submitted], desc="shilling: defense rewrite")
        out = []
        for j, (title, reply) in enumerate(zip(submitted, replies)):
            fixed = clean_generated_title(reply.text)
            if not fixed:
                self.empty_replies += 1
                fixed = title
                self.ctx.mark(first + j, "unparsed", note="no title in the reply: the submitted title was kept")
            else:
                self.ctx.mark(first + j, "usable", parse=[fixed])
            out.append(fixed)
        return out


def _without_sampling(settings) -> dict:
    return {k: v for k, v in dict(settings).items() if k not in ("temperature", "top_p")}


@dataclass(frozen=True)
class DriftFlag:
    """Detector verdict on one edit."""

    similarity: float
    oov_share: float
    flagged: bool
    reasons: tuple[str, ...]


class DriftDetector:
    """Flags an edit whose MiniLM similarity to the previous title is < ``min_similarity`` or
    whose unknown-word share is > ``max_oov_share``; as a defense, flagged edits are rejected."""

    name = "detector"

    def __init__(
        self,
        vocabulary: Vocabulary,
        min_similarity: float = 0.8,
        max_oov_share: float = 0.25,
        embed_fn: EmbedFn | None = None,
    ):
        if not -1 <= min_similarity <= 1:
            raise ValueError(f"min_similarity must be a cosine in [-1, 1], got {min_similarity}")
        if not 0 <= max_oov_share <= 1:
            raise ValueError(f"max_oov_share must be in [0, 1], got {max_oov_share}")
        self.vocabulary = vocabulary
        self.min_similarity = min_similarity
        self.max_oov_share = max_oov_share
        self.embed_fn = embed_fn

    def inspect(self, submitted: Sequence[str], previous: Sequence[str]) -> list[DriftFlag]:
        """One verdict per (submitted, previous) pair."""
        if len(submitted) != len(previous):
            raise ValueError("submitted and previous must have the same length")
        sims = semantic_similarity(list(zip(submitted, previous)), self.embed_fn) if submitted else np.zeros(0)
        out = []
        for title, sim in zip(submitted, sims):
            oov = self.vocabulary.oov_share(title)
            reasons = []
            if sim < self.min_similarity:
                reasons.append(f"meaning drift: similarity {sim:.2f} < {self.min_similarity}")
            if oov > self.max_oov_share:
                reasons.append(f"unnatural: {oov:.0%} unknown words > {self.max_oov_share:.0%}")
            out.append(DriftFlag(float(sim), float(oov), bool(reasons), tuple(reasons)))
        return out

    def defend(self, submitted: Sequence[str], previous: Sequence[str]) -> list[str]:
        flags = self.inspect(submitted, previous)
        return [p if f.flagged else s for s, p, f in zip(submitted, previous, flags)]
