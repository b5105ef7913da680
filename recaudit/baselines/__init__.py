"""Classical recommenders fitted in-process (TopPop, ItemKNN, BPR-MF): the baseline rows of item-side probes."""

from __future__ import annotations

from typing import Any

from recaudit.baselines.base import IndexedRecommender, Recommender
from recaudit.baselines.bpr import BPRMF
from recaudit.baselines.itemknn import ItemKNN
from recaudit.baselines.toppop import TopPop

BASELINES: dict[str, type[IndexedRecommender]] = {"toppop": TopPop, "itemknn": ItemKNN, "bpr": BPRMF}


def make_baseline(name: str, **options: Any) -> IndexedRecommender:
    """A baseline by name (toppop, itemknn, bpr); ValueError lists the known names."""
    try:
        cls = BASELINES[name]
    except KeyError:
        raise ValueError(f"unknown baseline {name!r}; known: {', '.join(sorted(BASELINES))}") from None
    return cls(**options)


__all__ = ["BASELINES", "BPRMF", "IndexedRecommender", "ItemKNN", "Recommender", "TopPop", "make_baseline"]
