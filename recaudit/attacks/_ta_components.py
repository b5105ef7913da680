"""TextAttack pieces recaudit adds or adjusts (imports TextAttack at module level).

Import this module only through ``recaudit.attacks.textattack_bridge.load_textattack()`` first
(the leading underscore keeps ``load_checks`` from importing it): it needs NLTK data prepared.

- ``ObjectiveModelWrapper`` / ``ExposureGoal`` — the recommender as TextAttack's "model": the
  output of a title is [mean utility, top-K hit rate] over the attacker users; the goal
  function maximises the utility and succeeds when every attacker user sees the target.
- ``WordSwapPunctuationInsertion`` — PuncAttack-style punctuation inside a word (TextAttack has
  no such transformation).
- ``OfflineWordSwapWordNet`` — TextAttack's WordNet swap without its ``nltk.download("omw-1.4")``
  call in ``__init__`` (a network attempt; Open Multilingual WordNet is not needed for English).
- ``MaskedLMSwap`` — BERT-Attack's masked-LM swap minus the MLM's special tokens, which
  TextAttack 0.3.11 lets through as replacement words.
- ``MiniLMSimilarity`` — sentence-meaning floor with the offline MiniLM (TextAttack's USE
  constraint needs TensorFlow Hub).
- ``MonotoneBeamSearch`` — TextAttack's ``BeamSearch`` keeps expanding while the goal is not
  reached and returns the *last* level's best, which can be worse than an earlier level for a
  maximising goal; this version stops when no candidate improves and returns the best seen.
- ``LocalWordEmbedding`` — counter-fitted (or any) word vectors from a local text file; its
  nearest neighbours are computed by cosine on demand (TextAttack 0.3.11's on-the-fly
  ``nearest_neighbours`` indexes the ``topk`` tuple wrongly and fails).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from textattack.constraints import Constraint
from textattack.goal_function_results import GoalFunctionResult, GoalFunctionResultStatus
from textattack.goal_functions import GoalFunction
from textattack.models.wrappers import ModelWrapper
from textattack.search_methods import BeamSearch
from textattack.shared import WordEmbedding
from textattack.transformations import WordSwap, WordSwapMaskedLM, WordSwapWordNet

from recaudit.attacks.objective import TargetObjective


class ObjectiveModelWrapper(ModelWrapper):
    """TextAttack model: title → [mean utility, hit rate] on the attacker users."""

    def __init__(self, objective: TargetObjective):
        self.model = objective  # TextAttack reads ``model`` (its class) for compatibility checks

    def __call__(self, text_input_list, **kwargs):
        values = self.model(list(text_input_list))
        return np.array([[v.value, v.hit_rate] for v in values], dtype=np.float64)


class ExposureGoalResult(GoalFunctionResult):
    """A goal result whose displayed output is the attacker users' hit rate."""

    def get_text_color_input(self):
        return "red"

    def get_text_color_perturbed(self):
        return "blue"

    def get_colored_output(self, color_method=None):
        return f"hit rate {float(self.output):.3f}"


class ExposureGoal(GoalFunction):
    """Maximise the target's utility; succeed when the hit rate reaches ``success_hit_rate``."""

    def __init__(self, model_wrapper: ObjectiveModelWrapper, success_hit_rate: float = 1.0, **kwargs):
        self.success_hit_rate = float(success_hit_rate)
        from textattack.shared import logger as ta_logger

        level = ta_logger.level
        ta_logger.setLevel(logging.ERROR)  # "No entry found for goal function": expected for a custom goal
        try:
            super().__init__(model_wrapper, maximizable=False, **kwargs)
        finally:
            ta_logger.setLevel(level)

    def _process_model_outputs(self, inputs, outputs):
        out = torch.as_tensor(np.asarray(outputs, dtype=np.float64)).reshape(len(inputs), 2)
        return out

    def _is_goal_complete(self, model_output, attacked_text):
        return float(model_output[1]) >= self.success_hit_rate

    def _get_score(self, model_output, attacked_text):
        return float(model_output[0])

    def _get_displayed_output(self, raw_output):
        return float(raw_output[1])

    def _goal_function_result_type(self):
        return ExposureGoalResult

    def extra_repr_keys(self):
        return ["success_hit_rate"]


class WordSwapPunctuationInsertion(WordSwap):
    """Insert one punctuation character inside a word ("Smart" → "Sm'art"), PuncAttack-style.

    ``random_one``: one random position and mark per word (TextAttack's global RNG, seeded by
    the caller); otherwise every interior position × every mark, in a fixed order.
    """

    def __init__(self, punctuation: str = "'-.,", random_one: bool = False, **kwargs):
        super().__init__(**kwargs)
        if not punctuation:
            raise ValueError("punctuation must name at least one character")
        self.punctuation = punctuation
        self.random_one = random_one

    def _get_replacement_words(self, word):
        if len(word) < 2:
            return []
        if self.random_one:
            i = np.random.randint(1, len(word))
            p = self.punctuation[np.random.randint(len(self.punctuation))]
            return [word[:i] + p + word[i:]]
        return [word[:i] + p + word[i:] for i in range(1, len(word)) for p in self.punctuation]

    @property
    def deterministic(self):
        return not self.random_one

    def extra_repr_keys(self):
        return super().extra_repr_keys() + ["punctuation", "random_one"]


class OfflineWordSwapWordNet(WordSwapWordNet):
    """WordNet synonym swap that never calls ``nltk.download`` (English only).

    Synonyms take the case of the word they replace ("Storm" → "Rage", as TextAttack's embedding
    swap does), and a synonym that differs only in case is no swap at all.
    """

    def __init__(self, language: str = "eng"):
        if language != "eng":
            raise ValueError("offline WordNet swap supports English ('eng') only; other languages need omw-1.4")
        self.language = language

    def _get_replacement_words(self, word, random=False):
        from textattack.transformations.word_swaps.word_swap_embedding import recover_word_case

        out = []
        for syn in super()._get_replacement_words(word.lower()) + super()._get_replacement_words(word):
            cased = recover_word_case(syn, word)
            if cased.lower() != word.lower() and cased not in out:
                out.append(cased)
        return out


class MaskedLMSwap(WordSwapMaskedLM):
    """TextAttack's masked-LM swap without the MLM's special tokens as "words" ([UNK], [SEP], …)."""

    def _get_transformations(self, current_text, indices_to_modify):
        special = [tok for tok in self._lm_tokenizer.all_special_tokens if tok not in current_text.text]
        out = super()._get_transformations(current_text, indices_to_modify)
        return [t for t in out if not any(tok in t.text for tok in special)]


class MiniLMSimilarity(Constraint):
    """Keep candidates whose MiniLM cosine to the original title is >= ``min_similarity``."""

    def __init__(self, min_similarity: float, embed_fn: Callable[[Sequence[str]], np.ndarray] | None = None):
        super().__init__(compare_against_original=True)
        if not -1.0 <= min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be a cosine in [-1, 1], got {min_similarity}")
        self.min_similarity = float(min_similarity)
        self._embed_fn = embed_fn
        self._cache: dict[str, np.ndarray] = {}

    def _vectors(self, texts: list[str]) -> list[np.ndarray]:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            if self._embed_fn is None:
                from recaudit.text.embed import embed

                self._embed_fn = embed
            vecs = np.asarray(self._embed_fn(new), dtype=np.float64)
            vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
            self._cache.update(zip(new, vecs))
        return [self._cache[t] for t in texts]

    def _check_constraint_many(self, transformed_texts, reference_text):
        if not transformed_texts:
            return []
        ref, *cands = self._vectors([reference_text.text] + [t.text for t in transformed_texts])
        kept = []
        for t, v in zip(transformed_texts, cands):
            sim = float(v @ ref)
            if sim >= self.min_similarity:
                t.attack_attrs["similarity_score"] = sim
                kept.append(t)
        return kept

    def _check_constraint(self, transformed_text, reference_text):
        return bool(self._check_constraint_many([transformed_text], reference_text))

    def extra_repr_keys(self):
        return ["min_similarity"] + super().extra_repr_keys()


class MonotoneBeamSearch(BeamSearch):
    """Beam search that stops when a level brings no improvement and returns the best result seen."""

    def perform_search(self, initial_result):
        beam = [initial_result.attacked_text]
        best = initial_result
        while best.goal_status != GoalFunctionResultStatus.SUCCEEDED:
            candidates = []
            for text in beam:
                candidates += self.get_transformations(text, original_text=initial_result.attacked_text)
            if not candidates:
                return best
            results, search_over = self.get_goal_results(candidates)
            if not results:
                return best
            scores = np.array([r.score for r in results])
            top = results[int(scores.argmax())]
            if top.score <= best.score:
                return best
            best = top
            if search_over:
                return best
            order = (-scores).argsort()[: self.beam_width]
            beam = [results[i].attacked_text for i in order]
        return best


class LocalWordEmbedding(WordEmbedding):
    """Word vectors from a local text file (``word v1 v2 …`` per line; a word2vec header line is skipped)."""

    def __init__(self, path: str | Path, max_words: int | None = None):
        words, rows = [], []
        dim = None
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f):
                parts = line.rstrip().split(" ")
                if n == 0 and len(parts) == 2 and all(p.isdigit() for p in parts):
                    continue  # word2vec text header: "<count> <dim>"
                if len(parts) < 2:
                    continue
                try:
                    vec = np.asarray(parts[1:], dtype=np.float32)
                except ValueError:
                    raise ValueError(f"{path}:{n + 1}: not a 'word v1 v2 ...' embedding line") from None
                if dim is None:
                    dim = len(vec)
                elif len(vec) != dim:
                    raise ValueError(f"{path}:{n + 1}: vector has {len(vec)} values, expected {dim}")
                words.append(parts[0])
                rows.append(vec)
                if max_words is not None and len(words) >= max_words:
                    break
        if not words:
            raise ValueError(f"{path}: no word vectors found")
        matrix = np.vstack(rows)
        word2index = {w: i for i, w in enumerate(words)}
        super().__init__(matrix, word2index, dict(enumerate(words)))
        self._unit = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)

    def nearest_neighbours(self, index, topn):
        if isinstance(index, str):
            index = self._word2index[index]
        cached = self._nn_cache.get(index)
        if cached is None or len(cached) < topn:
            sims = self._unit @ self._unit[index]
            sims[index] = -np.inf
            cached = np.argsort(-sims, kind="stable")[: max(topn, 50)].tolist()
            self._nn_cache[index] = cached
        return cached[:topn]
