"""The data of one unlearning experiment: who is trained on, forgotten, tested and never seen (all seeded)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from recaudit.data.catalog import Catalog, Interactions
from recaudit.tallrec.prompts import TallRecSample, build_samples, split_samples
from recaudit.tallrec.trainer import few_shot
from recaudit.unlearning.params import UnlearningParams
from recaudit.unlearning.verify import EvalSets


@dataclass
class UnlearningData:
    """Train / forget / retain / test / never-seen (/ validation) samples and who was forgotten.

    ``valid`` is filled only when early stopping is on; it never holds a forgotten user's sample,
    so model selection on it does not depend on the data being erased.
    """

    train: list[TallRecSample]
    forget: list[TallRecSample]
    retain: list[TallRecSample]
    test: list[TallRecSample]
    never_seen: list[TallRecSample]
    forget_users: list[str]
    valid: list[TallRecSample] = field(default_factory=list)

    def sets(self) -> EvalSets:
        """The labels every method is verified on."""
        lab = lambda xs: np.array([s.label for s in xs], dtype=int)  # noqa: E731
        return EvalSets(lab(self.test), lab(self.forget), lab(self.never_seen))

    def summary(self) -> dict[str, int]:
        """Sample counts per part (and the number of forgotten users)."""
        parts = ("train", "forget", "retain", "test", "never_seen") + (("valid",) if self.valid else ())
        return {k: len(getattr(self, k)) for k in parts} | {"forget_users": len(self.forget_users)}


def prepare_data(catalog: Catalog, interactions: Interactions, p: UnlearningParams) -> UnlearningData:
    """Sample users, build TALLRec samples, split, and choose the users to forget (all seeded).

    With ``p.train_samples`` (few-shot) the training split is cut to that many samples and the
    randomly drawn forget users come from the users left in it; with early stopping on
    (``p.train.early_stop_patience``) ``p.valid_frac`` of each user's samples become validation.
    """
    if p.n_users == 1:
        raise ValueError("n_users must be >= 2 (or 0 for every user)")
    wanted = 10**9 if p.n_users == 0 else p.n_users + p.n_never_seen_users
    users = interactions.sample_users(wanted, p.seed, min_interactions=p.history_len + 2)
    if len(users) < (2 if p.n_users == 0 else p.n_users) + max(1, p.n_never_seen_users):
        raise ValueError(f"only {len(users)} users have > {p.history_len + 1} interactions; lower n_users or history_len")
    rng = np.random.default_rng(p.seed)
    unseen = set(rng.choice(users, size=p.n_never_seen_users, replace=False).tolist()) if p.n_never_seen_users else set()
    train_users = [u for u in users if u not in unseen]
    if not isinstance(p.forget_users, int):
        forget_users = sorted(set(map(str, p.forget_users)))
        known = set(interactions.user_ids)
        missing = [u for u in forget_users if u not in known]
        if missing:
            raise ValueError(f"forget_users not in the interactions: {missing[:5]}")
        train_users = sorted(set(train_users) | set(forget_users) - unseen)

    def samples_of(uids: Sequence[str]) -> list[TallRecSample]:
        return build_samples(interactions.filter_users(uids), catalog, p.history_len, p.seed,
                             max_per_user=p.max_per_user, like_threshold=p.like_threshold)  # fmt: skip

    valid_frac = p.valid_frac if p.train.early_stop_patience else 0.0
    train, valid, test = split_samples(samples_of(train_users), valid_frac, p.test_frac, by=p.split, seed=p.seed)
    if p.train_samples is not None:
        if p.train_samples > len(train):
            raise ValueError(f"train_samples {p.train_samples} exceeds the {len(train)} training samples")
        train = few_shot(train, p.train_samples, p.seed)
    if isinstance(p.forget_users, int):
        # drawn after the samples (the generator is not used in between, so the default draw is unchanged)
        pool = train_users if p.train_samples is None else sorted({s.user_id for s in train}, key=train_users.index)
        if not 1 <= p.forget_users < len(pool):
            raise ValueError(f"forget_users must be in [1, {len(pool) - 1}], got {p.forget_users}")
        forget_users = sorted(rng.choice(pool, size=p.forget_users, replace=False).tolist())
    never_seen = split_samples(samples_of(sorted(unseen)), 0.0, p.test_frac, by=p.split, seed=p.seed)[0] if unseen else []
    gone = set(forget_users)
    forget = [s for s in train if s.user_id in gone]
    if not forget:
        raise ValueError("the chosen forget users have no training samples")
    valid = [s for s in valid if s.user_id not in gone]
    if valid_frac and len({s.label for s in valid}) < 2:
        raise ValueError("early stopping needs validation samples with both labels; raise valid_frac or n_users")
    return UnlearningData(
        train=train,
        forget=forget,
        retain=[s for s in train if s.user_id not in gone],
        test=[s for s in test if s.user_id not in gone],
        never_seen=never_seen,
        forget_users=forget_users,
        valid=valid,
    )
