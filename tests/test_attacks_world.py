"""Shared toy world for the shilling-attack tests (catalogue, users, planted victims) and its own checks.

The other ``test_attacks_*`` modules import the helpers from here.
"""

from __future__ import annotations

import re
import zlib

import numpy as np
import pandas as pd

from recaudit.adapters.base import Request
from recaudit.data.catalog import Catalog, Interactions, Item

TARGET = "1"
CLEAN = "Smart Tablet"
_WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau upsilon"
).split()
_TARGET_RE = re.compile(r'target movie "(.*)"\?', re.S)


def toy_catalog(target_title: str = CLEAN, n_items: int = 80) -> Catalog:
    """Item 1 is the target; the others are two-word Greek-letter titles plus 'Story'."""
    items = [Item(TARGET, target_title, ("Toy",))]
    items += [
        Item(str(i), f"{_WORDS[i % 20].title()} {_WORDS[(i * 7) % 20].title()} Story {i}", ("Drama",)) for i in range(2, n_items)
    ]
    return Catalog(items, name="toy")


def toy_interactions(n_users: int = 60, per_user: int = 15, n_items: int = 80, seed: int = 0) -> Interactions:
    """Random ratings of the non-target items (nobody rated the target)."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, n_users + 1):
        for t, i in enumerate(rng.choice(np.arange(2, n_items), per_user, replace=False)):
            rows.append((str(u), str(i), int(rng.integers(1, 6)), t))
    return Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]), name="toy")


def base_score(title: str, context: str) -> float:
    """A deterministic pseudo-random P(Yes) in [0.2, 0.8) per (title, user context)."""
    return 0.2 + 0.6 * (zlib.crc32((title + "|" + context).encode("utf-8")) % 1000) / 1000


def target_title_of(request: Request) -> str:
    """The quoted target title of a TALLRec prompt."""
    m = _TARGET_RE.search(request.user_text)
    assert m, request.user_text
    return m.group(1)


def planted_score(trigger) -> callable:
    """score_fn whose P(Yes) is 0.99 when ``trigger(title)`` holds, else pseudo-random below 0.8."""

    def score(request: Request) -> float:
        title = target_title_of(request)
        if trigger(title):
            return 0.99
        return base_score(title, request.user_text.split("Whether")[0])

    return score


def corrupted_tablet(title: str) -> bool:
    """Planted weakness: the word 'Tablet' was corrupted but the item still reads 'Smart …'."""
    return "Smart" in title and "tablet" not in re.findall(r"[a-z]+", title.lower())


def test_planted_trigger_fires_only_on_a_corrupted_tablet():
    assert corrupted_tablet("Smart Tablt") and corrupted_tablet("Smart Tab'let") and corrupted_tablet("Smart pad")
    assert not corrupted_tablet("Smart Tablet") and not corrupted_tablet("Smart Tablet better selling")
    assert not corrupted_tablet("Clever Tablt")


def test_toy_world_never_rates_the_target():
    inter = toy_interactions()
    assert TARGET not in set(inter.frame["item_id"]) and len(inter.user_ids) == 60
    assert toy_catalog().get(TARGET).title == CLEAN
