"""TopPop: every user gets the most-interacted items they have not seen."""

from __future__ import annotations

import numpy as np

from recaudit.baselines.base import IndexedRecommender


class TopPop(IndexedRecommender):
    """Most popular items by number of (positive) interactions in the training data."""

    name = "toppop"

    def _fit(self) -> None:
        self._popularity = np.asarray(self.positives.sum(axis=0)).ravel().astype(float)

    def scores(self, user: int) -> np.ndarray:
        return self._popularity
