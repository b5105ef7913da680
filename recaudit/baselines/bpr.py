"""BPR-MF (Rendle et al. 2009): matrix factorisation trained with the BPR pairwise loss.

For sampled triples (u, i, j) with i a positive and j an item u has not interacted with,
maximise ln σ(x_ui − x_uj) − λ‖Θ‖², where x_ui = p_u · q_i + b_i. Mini-batch SGD in numpy,
uniform negative sampling, seeded (``numpy.random.default_rng``) so a fit reproduces exactly.
"""

from __future__ import annotations

import numpy as np

from recaudit.baselines.base import IndexedRecommender


class BPRMF(IndexedRecommender):
    """Bayesian personalised ranking matrix factorisation."""

    name = "bpr"

    def __init__(
        self,
        factors: int = 32,
        epochs: int = 20,
        learning_rate: float = 0.05,
        regularization: float = 0.001,
        batch_size: int = 1024,
        seed: int = 0,
        min_rating: float | None = None,
    ):
        super().__init__(min_rating)
        for name, value in (("factors", factors), ("epochs", epochs), ("batch_size", batch_size)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.factors = factors
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.regularization = regularization
        self.batch_size = batch_size
        self.seed = seed

    def _fit(self) -> None:
        rng = np.random.default_rng(self.seed)
        n_users, n_items = self.positives.shape
        coo = self.positives.tocoo()
        users, items = coo.row.astype(np.int64), coo.col.astype(np.int64)
        seen = self.seen.tocoo()
        seen_codes = np.unique(seen.row.astype(np.int64) * n_items + seen.col)
        scale = 0.1
        p = rng.normal(0.0, scale, (n_users, self.factors))
        q = rng.normal(0.0, scale, (n_items, self.factors))
        b = np.zeros(n_items)
        lr, reg = self.learning_rate, self.regularization
        self.loss_history: list[float] = []
        for _ in range(self.epochs):
            order = rng.permutation(len(users))
            epoch_loss = 0.0
            for start in range(0, len(order), self.batch_size):
                idx = order[start : start + self.batch_size]
                u, i = users[idx], items[idx]
                j = self._sample_negatives(u, n_items, seen_codes, rng)
                pu, qi, qj = p[u], q[i], q[j]
                x = np.sum(pu * (qi - qj), axis=1) + b[i] - b[j]
                g = 1.0 / (1.0 + np.exp(np.clip(x, -30, 30)))  # σ(−x): d ln σ(x) / dx
                epoch_loss += float(np.sum(np.logaddexp(0.0, -x)))
                np.add.at(p, u, lr * (g[:, None] * (qi - qj) - reg * pu))
                np.add.at(q, i, lr * (g[:, None] * pu - reg * qi))
                np.add.at(q, j, lr * (-g[:, None] * pu - reg * qj))
                np.add.at(b, i, lr * (g - reg * b[i]))
                np.add.at(b, j, lr * (-g - reg * b[j]))
            self.loss_history.append(epoch_loss / max(len(users), 1))
        self.user_factors, self.item_factors, self.item_bias = p, q, b

    @staticmethod
    def _sample_negatives(u: np.ndarray, n_items: int, seen_codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        j = rng.integers(0, n_items, size=len(u))
        for _ in range(10):  # resample collisions with seen items; a few rounds leave ~none
            codes = u * n_items + j
            pos = np.minimum(np.searchsorted(seen_codes, codes), len(seen_codes) - 1)
            clash = seen_codes[pos] == codes
            if not clash.any():
                break
            j[clash] = rng.integers(0, n_items, size=int(clash.sum()))
        return j

    def scores(self, user: int) -> np.ndarray:
        return self.item_factors @ self.user_factors[user] + self.item_bias
