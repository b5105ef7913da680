"""Attack strategies: each edits one title within a budget to maximise the target's objective.

Strategies (Zhang et al., ACL 2024, Sec. 4; names are the audit's attack names):

=============  =====================================================  ==========================
name           edit                                                   search
=============  =====================================================  ==========================
trivial        append a promotional phrase ("better selling")         best phrase
llm_rewrite    the paper's marketing rewrite prompt, any adapter      best of greedy + samples
deepwordbug    character swap/substitute/delete/insert (TextAttack)    greedy WIR (default)
puncattack     punctuation inside words (recaudit's TextAttack swap)   greedy WIR (default)
textfooler     counter-fitted embedding neighbours from a local file;  greedy WIR (default)
               without one: WordNet synonyms, reported as
               ``textfooler-wordnet``
bertattack     masked-LM substitutes from a *local* MLM folder         greedy WIR (default)
=============  =====================================================  ==========================

Every strategy reports the best title it found, even when that loses to the clean title on the
attacker users (a harmful edit then shows a negative lift); ``keep_clean_fallback`` is the named
variant that keeps the clean title instead. The result is checked against the budget (a violation is a bug and raises). A strategy whose
resource is missing reports ``available=False`` with the reason; nothing falls back silently.

TextAttack strategies use TextAttack's ``Attack`` with its transformations, pre-transformation
constraints (``RepeatModification``, ``StopwordModification``, ``MaxNumWordsModified``),
``LevenshteinEditDistance`` and search methods, plus recaudit's goal function and model wrapper
(``_ta_components``). The stop-word list is scikit-learn's (the one NLTK is given).
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from recaudit.adapters.base import Adapter, Request
from recaudit.attacks.objective import ObjectiveValue, TargetObjective
from recaudit.attacks.prompts import ShillingPrompts, clean_generated_title, default_prompts, fill
from recaudit.attacks.stealth import Budget
from recaudit.attacks.victim import as_context
from recaudit.checks import CheckContext

ATTACK_NAMES = ("trivial", "llm_rewrite", "deepwordbug", "puncattack", "textfooler", "bertattack")
# Character-level recipes bound edits by edit distance only (as DeepWordBug does): a sentence
# encoder scores a typo as a large meaning change, so a MiniLM floor would forbid them outright.
CHAR_ATTACKS = ("deepwordbug", "puncattack")
SearchName = Literal["greedy-wir", "greedy", "beam"]


class BudgetError(AssertionError):
    """A strategy returned a title outside its budget (a bug, never a result)."""


@dataclass
class AttackOutcome:
    """What one strategy did to one target title."""

    attack: str
    variant: str
    available: bool
    clean_title: str
    adversarial_title: str
    reason: str = ""
    clean_value: ObjectiveValue | None = None
    attacked_value: ObjectiveValue | None = None
    evaluations: int = 0
    victim_queries: int = 0
    wall_s: float = 0.0
    budget: dict[str, int | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def changed(self) -> bool:
        return self.adversarial_title != self.clean_title


class Strategy(ABC):
    """One attack family with its edit budget."""

    name: str = ""

    keep_clean_fallback: bool = False  # the named variant that hides a harmful edit behind the clean title

    def __init__(self, budget: Budget):
        self.budget = budget

    @property
    def variant(self) -> str:
        """The name results report (differs from ``name`` when a substitute resource is used)."""
        return self.name

    def availability(self) -> tuple[bool, str]:
        """(available, reason or note); checked before any model query."""
        return True, ""

    def prepare(self) -> None:  # noqa: B027 - an optional hook: most strategies need no set-up
        """One-time set-up (library imports, corpora) done before the search clock starts."""

    @abstractmethod
    def candidates(self, title: str, objective: TargetObjective, seed: int) -> tuple[str, dict[str, Any]]:
        """Search for the best title within budget; return it and details for the report."""

    def run(self, title: str, objective: TargetObjective, seed: int = 0) -> AttackOutcome:
        """Attack ``title``: availability check, search, budget check, counts and wall time."""
        ok, note = self.availability()
        if not ok:
            return AttackOutcome(self.name, self.variant, False, title, title, reason=note, budget=self.budget.as_dict())
        self.prepare()
        start, evals0, queries0 = time.perf_counter(), objective.evaluations, objective.victim.queries
        clean_value = objective([title])[0]
        best, details = self.candidates(title, objective, seed)
        best_value = objective([best])[0]
        if best != title and best_value.value <= clean_value.value:
            if self.keep_clean_fallback:
                details["kept_clean"] = "no candidate beat the clean title on the attacker users"
                best, best_value = title, clean_value
            else:  # reported as found: a harmful edit must show as a negative lift, not hide as 0
                details["note"] = "the best edit did not beat the clean title on the attacker users; reported as found"
        bad = self.budget.violations(title, best)
        if bad:
            raise BudgetError(f"{self.variant} returned {best!r} for {title!r}: {'; '.join(bad)}")
        return AttackOutcome(
            attack=self.name,
            variant=self.variant,
            available=True,
            clean_title=title,
            adversarial_title=best,
            reason=note,
            clean_value=clean_value,
            attacked_value=best_value,
            evaluations=objective.evaluations - evals0,
            victim_queries=objective.victim.queries - queries0,
            wall_s=time.perf_counter() - start,
            budget=self.budget.as_dict(),
            details=details,
        )


class TrivialAppend(Strategy):
    """Append the promotional phrase that helps most ("better selling" is the paper's)."""

    name = "trivial"

    def __init__(self, phrases: tuple[str, ...] | None = None, max_added_words: int = 2):
        super().__init__(Budget(max_added_words=max_added_words))
        self.phrases = tuple(phrases or default_prompts().promo_phrases)
        if not self.phrases:
            raise ValueError("trivial attack needs at least one promotional phrase")

    def candidates(self, title, objective, seed):
        texts = [f"{title} {p}".strip() for p in self.phrases]
        texts = [t for t in texts if self.budget.allows(title, t)]
        if not texts:
            return title, {"note": "every phrase exceeds max_added_words"}
        best, _ = objective.best(texts)
        return best, {"tried": len(texts)}


class LLMRewrite(Strategy):
    """The paper's marketing rewrite through any adapter: one greedy and ``n_samples - 1`` sampled rewrites.

    ``n_samples=1`` is the paper's single unconditioned rewrite; more is the stronger variant
    ``llm_rewrite-best<n>`` that keeps the best of n on the attacker users.
    """

    name = "llm_rewrite"

    @property
    def variant(self) -> str:
        """``llm_rewrite`` (the paper's one rewrite) or ``llm_rewrite-best<n>`` (best of n chosen on the victim)."""
        return self.name if self.n_samples == 1 else f"{self.name}-best{self.n_samples}"

    def __init__(
        self,
        calls: Adapter | CheckContext,
        prompts: ShillingPrompts | None = None,
        max_words: int = 10,
        n_samples: int = 4,
    ):
        super().__init__(Budget(max_total_words=max_words))
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        self.ctx = as_context(calls)
        self.prompts = prompts or default_prompts()
        self.max_words = max_words
        self.n_samples = n_samples

    def requests(self, title: str, seed: int) -> list[Request]:
        """Greedy request first, then seeded samples."""
        text = fill(self.prompts.attack_rewrite, MaxLen=str(self.max_words), ItemTitle=title)
        s = dict(self.prompts.rewrite_settings)
        temperature, top_p = float(s.pop("temperature", 0.8)), float(s.pop("top_p", 0.95))
        out = [Request.chat(text, seed=seed, **s)]
        out += [Request.chat(text, seed=seed + i, temperature=temperature, top_p=top_p, **s) for i in range(1, self.n_samples)]
        return out

    def candidates(self, title, objective, seed):
        first = len(self.ctx.evidence)
        replies = self.ctx.generate(self.requests(title, seed), desc="shilling: rewrite")
        cleaned = [clean_generated_title(r.text) for r in replies]
        rewrites = list(dict.fromkeys(cleaned))
        valid = [t for t in rewrites if t and t != title and self.budget.allows(title, t)]
        for j, t in enumerate(cleaned):  # every answer's fate goes to the evidence log
            if not t:
                self.ctx.mark(first + j, "unparsed", note="no title in the reply")
            elif t in valid:
                self.ctx.mark(first + j, "usable", parse=[t])
            else:
                why = "unchanged title" if t == title else "over the word budget"
                self.ctx.mark(first + j, "unused", parse=[t], note=why)
        details = {"generated": len(replies), "distinct": len(rewrites), "within_budget": len(valid)}
        if not valid:
            details["note"] = "no usable rewrite (empty, unchanged or over the word budget)"
            return title, details
        best, _ = objective.best(valid)
        return best, details


@dataclass(frozen=True)
class TextAttackOptions:
    """Search and resource settings shared by the TextAttack strategies."""

    search: SearchName = "greedy-wir"
    beam_width: int = 3
    max_evaluations: int | None = 60  # titles scored per search (TextAttack query budget)
    min_similarity: float | None = 0.7  # MiniLM floor of word substitutions (textfooler, bertattack)
    char_min_similarity: float | None = None  # MiniLM floor of character/punctuation edits
    exhaustive: bool = False  # char/punct swaps: every position instead of one random per word
    max_candidates: int = 8  # word substitutes per word (textfooler/bertattack)
    embeddings_path: str | None = None  # counter-fitted vectors, text format (TextFooler)
    mlm_path: str | None = None  # local masked-LM folder (BERT-Attack)
    success_hit_rate: float = 1.0  # stop once this share of attacker users sees the target


class TextAttackStrategy(Strategy):
    """A TextAttack transformation + constraints + search against the recommender objective."""

    def __init__(self, name: str, budget: Budget, options: TextAttackOptions | None = None):
        if name not in ("deepwordbug", "puncattack", "textfooler", "bertattack"):
            raise ValueError(f"unknown TextAttack strategy {name!r}")
        super().__init__(budget)
        self.name = name
        self.options = options or TextAttackOptions()
        self._transformation = None
        if self.options.search not in ("greedy-wir", "greedy", "beam"):
            raise ValueError(f"search must be 'greedy-wir', 'greedy' or 'beam', got {self.options.search!r}")
        if self.options.beam_width < 1:
            raise ValueError("beam_width must be >= 1")

    @property
    def variant(self) -> str:
        if self.name == "textfooler" and not self.options.embeddings_path:
            return "textfooler-wordnet"
        return self.name

    def availability(self) -> tuple[bool, str]:
        from recaudit.attacks.textattack_bridge import textattack_available, wordnet_status

        ok, reason = textattack_available()
        if not ok:
            return False, reason
        o = self.options
        if self.name == "textfooler":
            if o.embeddings_path:
                if not Path(o.embeddings_path).is_file():
                    return False, f"embeddings_path {o.embeddings_path} is not a file"
                return True, ""
            wn, why = wordnet_status()
            base = (
                "TextFooler's counter-fitted embeddings are unavailable offline (TextAttack downloads "
                "them from S3); pass embeddings_path=<counter-fitted-vectors.txt> to use them"
            )
            if not wn:
                return False, f"{base}; the WordNet substitute is unavailable too: {why}"
            return True, f"{base}; WordNet synonyms used instead (reported as textfooler-wordnet)"
        if self.name == "bertattack":
            if not o.mlm_path:
                return False, (
                    "BERT-Attack needs a masked language model and none can be downloaded offline; "
                    "pass mlm_path=<local Hugging Face masked-LM folder, e.g. bert-base-uncased>"
                )
            if not Path(o.mlm_path).is_dir():
                return False, f"mlm_path {o.mlm_path} is not a folder"
        return True, ""

    def prepare(self) -> None:
        """Import TextAttack and build the transformation once (WordNet and MLM load here, untimed)."""
        from recaudit.attacks.textattack_bridge import load_textattack

        load_textattack()
        if self._transformation is None:
            self._transformation = self.transformation()
            if self.variant == "textfooler-wordnet":
                from nltk.corpus import wordnet

                wordnet.synsets("movie")  # the lazy corpus reads its indexes on first use

    def transformation(self):
        """The TextAttack transformation of this strategy."""
        import recaudit.attacks._ta_components as C
        from textattack.transformations import (
            CompositeTransformation,
            WordSwapEmbedding,
            WordSwapNeighboringCharacterSwap,
            WordSwapRandomCharacterDeletion,
            WordSwapRandomCharacterInsertion,
            WordSwapRandomCharacterSubstitution,
        )

        o = self.options
        random_one = not o.exhaustive
        if self.name == "deepwordbug":
            return CompositeTransformation(
                [
                    WordSwapNeighboringCharacterSwap(random_one=random_one),
                    WordSwapRandomCharacterSubstitution(random_one=random_one),
                    WordSwapRandomCharacterDeletion(random_one=random_one),
                    WordSwapRandomCharacterInsertion(random_one=random_one),
                ]
            )
        if self.name == "puncattack":
            return C.WordSwapPunctuationInsertion(random_one=False) if o.exhaustive else CompositeTransformation(
                [C.WordSwapPunctuationInsertion(punctuation=p, random_one=True) for p in "'-.,"]
            )
        if self.name == "textfooler":
            if o.embeddings_path:
                return WordSwapEmbedding(max_candidates=o.max_candidates, embedding=C.LocalWordEmbedding(o.embeddings_path))
            return C.OfflineWordSwapWordNet()
        return C.MaskedLMSwap(method="bert-attack", masked_language_model=o.mlm_path, max_candidates=o.max_candidates)

    def constraints(self, transformation) -> list:
        """RepeatModification, stop words, the edit budget and the meaning floor."""
        import recaudit.attacks._ta_components as C
        from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS
        from textattack.constraints.overlap import LevenshteinEditDistance
        from textattack.constraints.pre_transformation import (
            MaxNumWordsModified,
            RepeatModification,
            StopwordModification,
        )
        from textattack.constraints.semantics import WordEmbeddingDistance

        out = [RepeatModification(), StopwordModification(stopwords=ENGLISH_STOP_WORDS)]
        if self.budget.max_words is not None:
            out.append(MaxNumWordsModified(self.budget.max_words))
        if self.budget.max_char_edits is not None:
            out.append(LevenshteinEditDistance(self.budget.max_char_edits))
        if self.name == "textfooler" and self.options.embeddings_path:
            out.append(WordEmbeddingDistance(embedding=transformation.embedding, min_cos_sim=0.5))
        floor = self.options.char_min_similarity if self.name in CHAR_ATTACKS else self.options.min_similarity
        if floor is not None:
            out.append(C.MiniLMSimilarity(floor))
        return out

    def search_method(self):
        """Greedy search with word-importance ranking by deletion, greedy, or beam search."""
        import recaudit.attacks._ta_components as C
        from textattack.search_methods import GreedyWordSwapWIR

        if self.options.search == "greedy-wir":
            return GreedyWordSwapWIR(wir_method="delete")
        return C.MonotoneBeamSearch(beam_width=1 if self.options.search == "greedy" else self.options.beam_width)

    def candidates(self, title, objective, seed):
        from recaudit.attacks.textattack_bridge import load_textattack

        textattack = load_textattack()
        import recaudit.attacks._ta_components as C

        self.prepare()
        wrapper = C.ObjectiveModelWrapper(objective)
        budget = self.options.max_evaluations if self.options.max_evaluations is not None else float("inf")
        goal = C.ExposureGoal(wrapper, success_hit_rate=self.options.success_hit_rate, query_budget=budget)
        transformation = self._transformation
        attack = textattack.Attack(goal, self.constraints(transformation), transformation, self.search_method())
        # TextAttack draws from the global RNGs; seed them and put them back afterwards.
        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed(seed)
        random.seed(seed)
        try:
            result = attack.attack(title, 0)
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)
        adversarial = result.perturbed_result.attacked_text.text
        return adversarial, {
            "textattack_result": type(result).__name__,
            "search": self.options.search,
            "words_modified": len(result.perturbed_result.attacked_text.attack_attrs.get("modified_indices", ())),
        }


def build_strategy(
    name: str,
    calls: Adapter | CheckContext | None = None,
    prompts: ShillingPrompts | None = None,
    *,
    max_char_edits: int = 3,
    max_words: int = 2,
    max_added_words: int = 2,
    rewrite_max_words: int = 10,
    rewrite_samples: int = 1,
    textattack: TextAttackOptions | None = None,
    keep_clean_fallback: bool = False,
) -> Strategy:
    """The strategy called ``name`` with its budget (character attacks: chars and words; word attacks: words)."""
    strategy = _build(name, calls, prompts or default_prompts(), max_char_edits, max_words, max_added_words,
                      rewrite_max_words, rewrite_samples, textattack)
    strategy.keep_clean_fallback = keep_clean_fallback
    return strategy


def _build(name, calls, prompts, max_char_edits, max_words, max_added_words, rewrite_max_words, rewrite_samples,
           textattack) -> Strategy:  # fmt: skip
    if name == "trivial":
        return TrivialAppend(prompts.promo_phrases, max_added_words=max_added_words)
    if name == "llm_rewrite":
        if calls is None:
            raise ValueError("llm_rewrite needs an adapter (calls) to write the rewrite")
        return LLMRewrite(calls, prompts, max_words=rewrite_max_words, n_samples=rewrite_samples)
    if name in CHAR_ATTACKS:
        return TextAttackStrategy(name, Budget(max_char_edits=max_char_edits, max_words=max_words), textattack)
    if name in ("textfooler", "bertattack"):
        return TextAttackStrategy(name, Budget(max_words=max_words), textattack)
    raise ValueError(f"unknown attack {name!r}; known: {', '.join(ATTACK_NAMES)}")

