"""What every classical baseline shares: the user–item index built from ``Interactions``.

Baselines are not LLMs and sit behind no ``Adapter``: a probe fits them on the same training
interactions the LLM's prompts were built from and calls ``recommend`` directly, so a report can
show the LLM's exposure numbers beside what a classical model does on the same users.
"""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np
from scipy import sparse

from recaudit.data.catalog import Interactions


@runtime_checkable
class Recommender(Protocol):
    """A fitted-in-process top-k recommender."""

    name: str

    def fit(self, interactions: Interactions) -> "Recommender":
        """Learn from interactions; returns self."""
        ...

    def recommend(self, user_id: str, k: int, exclude_seen: bool = True) -> list[str]:
        """The top-``k`` item ids for ``user_id`` (best first)."""
        ...


class IndexedRecommender:
    """Base class: a binary user × item matrix and the score → top-k step.

    ``min_rating``: only interactions with rating >= min_rating count as positives (None: every
    interaction is an implicit positive, the usual top-k setup). Items seen by a user (any rating)
    are what ``exclude_seen`` removes. Ties are broken by item id so results are deterministic.
    """

    name = "base"

    def __init__(self, min_rating: float | None = None):
        self.min_rating = min_rating
        self._fitted = False

    def fit(self, interactions: Interactions) -> "IndexedRecommender":
        """Build the index, then learn (subclasses implement ``_fit``)."""
        frame = interactions.frame
        if frame.empty:
            raise ValueError(f"{self.name}: cannot fit on empty interactions")
        self.item_ids = np.array(sorted(frame["item_id"].unique()), dtype=object)
        self.user_ids = np.array(sorted(frame["user_id"].unique()), dtype=object)
        self._item_index = {item: j for j, item in enumerate(self.item_ids)}
        self._user_index = {user: u for u, user in enumerate(self.user_ids)}
        rows = frame["user_id"].map(self._user_index).to_numpy()
        cols = frame["item_id"].map(self._item_index).to_numpy()
        shape = (len(self.user_ids), len(self.item_ids))
        self.seen = _binary(rows, cols, shape)
        positive = np.ones(len(frame), dtype=bool) if self.min_rating is None else (frame["rating"] >= self.min_rating).to_numpy()
        self.positives = _binary(rows[positive], cols[positive], shape)
        self._fit()
        self._fitted = True
        return self

    def _fit(self) -> None:
        raise NotImplementedError

    def scores(self, user: int) -> np.ndarray:
        """Scores of every item for user row ``user``."""
        raise NotImplementedError

    def recommend(
        self, user_id: str, k: int, exclude_seen: bool = True, candidates: Sequence[str] | None = None
    ) -> list[str]:
        """Top-``k`` item ids for a user (unknown users get the cold-start ranking).

        With ``candidates`` only those items are ranked (candidate-set evaluation); candidates
        the model never saw in training rank last, in the order given.
        """
        if not self._fitted:
            raise RuntimeError(f"{self.name}: call fit(interactions) before recommend")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        u = self._user_index.get(str(user_id))
        s = self.cold_start_scores() if u is None else np.asarray(self.scores(u), dtype=float).copy()
        if exclude_seen and u is not None:
            s[self.seen.indices[self.seen.indptr[u] : self.seen.indptr[u + 1]]] = -np.inf
        if candidates is not None:
            return self._rank_candidates(s, candidates, k)
        order = np.argsort(-s, kind="stable")  # item ids are sorted, so ties break by id
        order = order[np.isfinite(s[order])][:k]
        return [str(self.item_ids[j]) for j in order]

    def _rank_candidates(self, s: np.ndarray, candidates: Sequence[str], k: int) -> list[str]:
        known = [(c, self._item_index[c]) for c in dict.fromkeys(map(str, candidates)) if c in self._item_index]
        unknown = [c for c in dict.fromkeys(map(str, candidates)) if c not in self._item_index]
        known = [(c, j) for c, j in known if np.isfinite(s[j])]
        ranked = [c for c, _ in sorted(known, key=lambda cj: (-s[cj[1]], cj[1]))]
        return (ranked + unknown)[:k]

    def cold_start_scores(self) -> np.ndarray:
        """Scores for a user absent from training: item popularity."""
        return np.asarray(self.positives.sum(axis=0)).ravel().astype(float)


def _binary(rows: np.ndarray, cols: np.ndarray, shape: tuple[int, int]) -> sparse.csr_matrix:
    m = sparse.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=shape)
    m.sum_duplicates()
    m.data[:] = 1.0  # a repeated interaction is still one positive
    m.sort_indices()
    return m
