"""Catalogue items and user–item interactions: the two data types every check reads."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Item:
    """One catalogue item. ``title`` is untrusted text (item providers control it)."""

    item_id: str
    title: str
    genres: tuple[str, ...] = ()
    year: int | None = None
    popularity: float = 0.0


@dataclass
class Catalog:
    """An ordered, id-indexed collection of items."""

    items: list[Item]
    name: str = "catalog"
    _index: dict[str, int] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._index = {}
        for i, it in enumerate(self.items):
            if it.item_id in self._index:
                raise ValueError(f"catalog {self.name!r}: duplicate item id {it.item_id!r}")
            self._index[it.item_id] = i

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Item]:
        return iter(self.items)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._index

    def get(self, item_id: str) -> Item:
        """The item with ``item_id``; KeyError if absent."""
        return self.items[self._index[item_id]]

    @property
    def ids(self) -> list[str]:
        return [it.item_id for it in self.items]

    @property
    def titles(self) -> list[str]:
        return [it.title for it in self.items]

    def genres(self) -> list[str]:
        """All genres, sorted."""
        return sorted({g for it in self.items for g in it.genres})

    def with_popularity(self, interactions: "Interactions") -> "Catalog":
        """A copy whose popularity is the interaction count of each item."""
        counts = interactions.frame["item_id"].value_counts()
        items = [
            Item(it.item_id, it.title, it.genres, it.year, float(counts.get(it.item_id, 0))) for it in self.items
        ]
        return Catalog(items, name=self.name)

    def replace_title(self, item_id: str, title: str) -> "Catalog":
        """A copy with one item's title changed (the attack surface)."""
        items = [
            Item(it.item_id, title, it.genres, it.year, it.popularity) if it.item_id == item_id else it
            for it in self.items
        ]
        return Catalog(items, name=self.name)

    def popularity_buckets(self, n_buckets: int = 5) -> dict[str, int]:
        """Item id → popularity bucket (0 = least popular), equal-size buckets by rank."""
        if n_buckets < 1:
            raise ValueError("n_buckets must be >= 1")
        order = sorted(self.items, key=lambda it: (it.popularity, it.item_id))
        n = len(order)
        return {it.item_id: min(n_buckets - 1, (rank * n_buckets) // max(n, 1)) for rank, it in enumerate(order)}

    def content_hash(self) -> str:
        """Hash of ids, titles, genres and years (goes into the reproducibility block)."""
        h = hashlib.sha256()
        for it in self.items:
            h.update(f"{it.item_id}\t{it.title}\t{'|'.join(it.genres)}\t{it.year}\n".encode())
        return h.hexdigest()[:16]


@dataclass
class Interactions:
    """User–item interactions: a DataFrame with columns user_id, item_id, rating, timestamp.

    ``users`` optionally holds user attributes (index user_id; e.g. age, gender, occupation).
    """

    frame: pd.DataFrame
    users: pd.DataFrame | None = None
    name: str = "interactions"

    REQUIRED = ("user_id", "item_id", "rating", "timestamp")

    def __post_init__(self) -> None:
        missing = [c for c in self.REQUIRED if c not in self.frame.columns]
        if missing:
            raise ValueError(f"interactions {self.name!r} lack columns {missing}")
        self.frame = self.frame.astype({"user_id": str, "item_id": str})

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def user_ids(self) -> list[str]:
        return sorted(self.frame["user_id"].unique().tolist(), key=_natural)

    def history(self, user_id: str, min_rating: float | None = None) -> pd.DataFrame:
        """One user's interactions in time order, optionally only ratings >= min_rating."""
        f = self.frame[self.frame["user_id"] == user_id]
        if min_rating is not None:
            f = f[f["rating"] >= min_rating]
        return f.sort_values(["timestamp", "item_id"], kind="stable")

    def sample_users(self, n: int, seed: int, min_interactions: int = 1) -> list[str]:
        """``n`` users drawn without replacement (deterministic for a seed)."""
        counts = self.frame["user_id"].value_counts()
        eligible = sorted(counts[counts >= min_interactions].index.tolist(), key=_natural)
        rng = np.random.default_rng(seed)
        if n >= len(eligible):
            return eligible
        return [eligible[i] for i in sorted(rng.choice(len(eligible), size=n, replace=False))]

    def filter_users(self, user_ids: Iterable[str], keep: bool = True) -> "Interactions":
        """Interactions of (or without) the given users."""
        ids = set(map(str, user_ids))
        mask = self.frame["user_id"].isin(ids)
        return Interactions(self.frame[mask if keep else ~mask].reset_index(drop=True), self.users, self.name)

    def content_hash(self) -> str:
        """Hash of the interaction table (reproducibility block)."""
        h = pd.util.hash_pandas_object(self.frame[list(self.REQUIRED)], index=False).values
        return hashlib.sha256(h.tobytes()).hexdigest()[:16]


def _natural(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)
