"""Who the attack is tuned on and who it is measured on: seeded user split, histories, candidate lists.

The attacker samples some users to tune its title on (``attacker``); exposure is measured on
other users it never queried (``held_out``), so a lift is not an artefact of overfitting the
search to its own users. Users who ever rated a target item are left out of both groups (the
target must be a new candidate for them).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from recaudit.data.catalog import Catalog, Interactions


@dataclass(frozen=True)
class UserCase:
    """One user facing one candidate list: recent liked/disliked titles and candidate item ids."""

    user_id: str
    liked: tuple[str, ...]
    disliked: tuple[str, ...]
    candidates: tuple[str, ...]  # item ids in presentation order; the target is one of them


@dataclass(frozen=True)
class UserSplit:
    """Disjoint attacker and held-out user ids (natural id order)."""

    attacker: tuple[str, ...]
    held_out: tuple[str, ...]


def split_users(
    interactions: Interactions,
    targets: Sequence[str],
    n_attacker: int,
    n_held_out: int,
    seed: int,
    min_interactions: int = 10,
) -> UserSplit:
    """Seeded disjoint split among users with >= ``min_interactions`` ratings who never rated a target."""
    if n_attacker < 1 or n_held_out < 1:
        raise ValueError(f"n_attacker and n_held_out must be >= 1, got {n_attacker}, {n_held_out}")
    frame = interactions.frame
    touched = set(frame.loc[frame["item_id"].isin(set(map(str, targets))), "user_id"])
    counts = frame["user_id"].value_counts()
    eligible = sorted((u for u, c in counts.items() if c >= min_interactions and u not in touched), key=_natural)
    need = n_attacker + n_held_out
    if len(eligible) < need:
        raise ValueError(
            f"only {len(eligible)} users have >= {min_interactions} ratings and never rated a target; "
            f"n_attacker + n_held_out = {need}"
        )
    rng = np.random.default_rng(seed)
    picked = [eligible[i] for i in rng.choice(len(eligible), size=need, replace=False)]
    return UserSplit(
        attacker=tuple(sorted(picked[:n_attacker], key=_natural)),
        held_out=tuple(sorted(picked[n_attacker:], key=_natural)),
    )


def build_cases(
    interactions: Interactions,
    catalog: Catalog,
    user_ids: Sequence[str],
    target: str,
    n_candidates: int | None = 10,
    history_len: int = 10,
    like_threshold: float = 3.0,
    seed: int = 0,
) -> list[UserCase]:
    """One case per user: last ``history_len`` ratings (rating > threshold = liked) and a seeded candidate list.

    Candidates are the target plus ``n_candidates - 1`` catalogue items the user never rated,
    drawn uniformly (``n_candidates=None``: every unseen item, the full-catalogue protocol), in a
    seeded random order; the draw depends only on (seed, user, target), so every condition
    (clean, attacked, defended) shows a user the same list.
    """
    if target not in catalog:
        raise ValueError(f"target item {target!r} is not in the catalogue")
    if n_candidates is not None and n_candidates < 2:
        raise ValueError(f"n_candidates must be >= 2, got {n_candidates}")
    if history_len < 1:
        raise ValueError(f"history_len must be >= 1, got {history_len}")
    ids = np.array(catalog.ids)
    known = set(catalog.ids)
    frame = interactions.frame
    cases = []
    for user in user_ids:
        rows = frame[frame["user_id"] == user].sort_values(["timestamp", "item_id"], kind="stable")
        rows = rows[rows["item_id"].isin(known)]
        seen = set(rows["item_id"]) | {target}
        recent = rows.tail(history_len)
        liked = tuple(catalog.get(i).title for i, r in zip(recent["item_id"], recent["rating"]) if r > like_threshold)
        disliked = tuple(catalog.get(i).title for i, r in zip(recent["item_id"], recent["rating"]) if r <= like_threshold)
        pool = ids[[i not in seen for i in ids]]
        size = len(pool) + 1 if n_candidates is None else n_candidates
        if len(pool) < size - 1 or size < 2:
            raise ValueError(f"user {user!r}: only {len(pool)} unseen items for {size - 1} negatives")
        rng = np.random.default_rng([seed, _stable_int(user), _stable_int(target)])
        negatives = rng.choice(pool, size=size - 1, replace=False).tolist()
        order = rng.permutation(size)
        candidates = [target, *negatives]
        cases.append(UserCase(str(user), liked, disliked, tuple(str(candidates[j]) for j in order)))
    return cases


def pick_targets(
    catalog: Catalog,
    interactions: Interactions,
    n: int,
    seed: int,
    min_ratings: int = 20,
) -> list[str]:
    """Seeded targets among less popular items: rated >= ``min_ratings`` times but below the median count.

    The threat model is a provider of a weakly exposed item; a well-known minimum of ratings
    keeps the title a real, recognisable one.
    """
    if n < 1:
        raise ValueError(f"n_targets must be >= 1, got {n}")
    counts = interactions.frame["item_id"].value_counts()
    rated = counts[(counts >= min_ratings) & counts.index.isin(catalog.ids)]
    if rated.empty:
        raise ValueError(f"no catalogue item has >= {min_ratings} ratings; lower target_min_ratings")
    median = float(rated.median())
    pool = sorted((i for i, c in rated.items() if c <= median), key=_natural)
    if len(pool) < n:
        raise ValueError(f"only {len(pool)} items qualify as targets, asked for {n}")
    rng = np.random.default_rng(seed)
    return sorted((pool[i] for i in rng.choice(len(pool), size=n, replace=False)), key=_natural)


def _stable_int(s: str) -> int:
    return zlib.crc32(str(s).encode("utf-8"))


def _natural(s: str) -> tuple:
    return (0, int(s), "") if str(s).isdigit() else (1, 0, str(s))
