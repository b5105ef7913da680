"""ItemKNN (Sarwar et al. 2001; Deshpande & Karypis 2004): cosine item–item neighbourhoods.

sim(i, j) = |U_i ∩ U_j| / sqrt(|U_i| |U_j|) over binary interactions; each item keeps its
``n_neighbors`` most similar items; a user's score for item j is the sum of sim(i, j) over the
items i they interacted with that are among j's neighbours.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from recaudit.baselines.base import IndexedRecommender


class ItemKNN(IndexedRecommender):
    """Item-based k-nearest-neighbour recommender with cosine similarity."""

    name = "itemknn"

    def __init__(self, n_neighbors: int = 100, min_rating: float | None = None, block_size: int = 1024):
        super().__init__(min_rating)
        if n_neighbors < 1:
            raise ValueError(f"n_neighbors must be >= 1, got {n_neighbors}")
        self.n_neighbors = n_neighbors
        self.block_size = block_size

    def _fit(self) -> None:
        x = self.positives.tocsc().astype(np.float32)
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
        n_items = x.shape[1]
        keep = min(self.n_neighbors, max(n_items - 1, 1))
        rows, cols, vals_all = [], [], []
        xt = x.T.tocsr()
        # blocks of target items bound memory to n_items × block_size floats
        for start in range(0, n_items, self.block_size):
            stop = min(start + self.block_size, n_items)
            sim = (xt @ x[:, start:stop]).toarray() * inv[:, None] * inv[None, start:stop]
            sim[np.arange(start, stop), np.arange(stop - start)] = 0.0  # an item is not its own neighbour
            if keep < n_items:
                top = np.argpartition(-sim, keep - 1, axis=0)[:keep]
            else:
                top = np.broadcast_to(np.arange(n_items)[:, None], sim.shape)
            vals = np.take_along_axis(sim, top, axis=0)
            nz = vals > 0
            rows.append(top[nz])
            cols.append(np.broadcast_to(np.arange(start, stop)[None, :], top.shape)[nz])
            vals_all.append(vals[nz])
        self.similarity = sparse.csr_matrix(
            (np.concatenate(vals_all), (np.concatenate(rows), np.concatenate(cols))), shape=(n_items, n_items)
        )

    def scores(self, user: int) -> np.ndarray:
        return np.asarray((self.positives[user] @ self.similarity).todense()).ravel()
