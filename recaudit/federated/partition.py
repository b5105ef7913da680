"""Partition users into federated clients: IID, or non-IID by genre preference.

* ``iid``: users shuffled with a seeded generator and dealt round-robin (sizes differ by ≤ 1).
* ``genre``: each user's *dominant genre* is the genre most frequent among the items they liked
  (rating > ``like_threshold``; all their items when they liked none; ties by name). Users of
  each dominant genre are spread over clients with proportions drawn from Dirichlet(α) — the
  label-skew scheme of Hsu et al. 2019 with genre as the label — so a small α gives clients with
  markedly different tastes. Every client gets at least ``min_users`` users.

``genre_skew`` measures the result: the mean Jensen–Shannon divergence between each client's
liked-genre distribution and the population's (0 = identical tastes).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np

from recaudit.data.catalog import Catalog, Interactions

Scheme = Literal["iid", "genre"]


@dataclass(frozen=True)
class ClientPartition:
    """The users of one client and the genre profile they were grouped by."""

    client_id: int
    user_ids: tuple[str, ...]
    top_genres: tuple[str, ...] = ()


def dominant_genres(interactions: Interactions, catalog: Catalog, like_threshold: float = 3.0) -> dict[str, str]:
    """User id → the genre most frequent among the user's liked items (``""`` when none has a genre)."""
    frame = interactions.frame
    genres = {it.item_id: it.genres for it in catalog}
    out: dict[str, str] = {}
    for user_id, rows in frame.groupby("user_id", sort=False):
        liked = rows[rows["rating"] > like_threshold]["item_id"].tolist() or rows["item_id"].tolist()
        counts = Counter(g for item in liked for g in genres.get(str(item), ()))
        out[str(user_id)] = min(counts, key=lambda g: (-counts[g], g)) if counts else ""
    return out


def _deal(users: Sequence[str], n_clients: int, rng: np.random.Generator) -> list[list[str]]:
    order = rng.permutation(len(users))
    buckets: list[list[str]] = [[] for _ in range(n_clients)]
    for rank, i in enumerate(order):
        buckets[rank % n_clients].append(users[i])
    return buckets


def _dirichlet_by_group(
    groups: dict[str, list[str]], n_clients: int, alpha: float, rng: np.random.Generator
) -> list[list[str]]:
    buckets: list[list[str]] = [[] for _ in range(n_clients)]
    for genre in sorted(groups):
        members = [groups[genre][i] for i in rng.permutation(len(groups[genre]))]
        shares = rng.dirichlet(np.full(n_clients, alpha))
        cuts = (np.cumsum(shares)[:-1] * len(members)).round().astype(int)
        for c, part in enumerate(np.split(np.asarray(members, dtype=object), cuts)):
            buckets[c].extend(str(u) for u in part)
    return buckets


def _fill_small(buckets: list[list[str]], min_users: int) -> None:
    # move users from the largest client to any client below the minimum (keeps the skew elsewhere)
    for b in buckets:
        while len(b) < min_users:
            donor = max(buckets, key=len)
            if len(donor) <= min_users:
                raise ValueError("not enough users to give every client min_users users")
            b.append(donor.pop())


def partition_users(
    interactions: Interactions,
    catalog: Catalog,
    n_clients: int,
    scheme: Scheme = "iid",
    seed: int = 0,
    alpha: float = 0.5,
    min_users: int = 1,
    like_threshold: float = 3.0,
) -> list[ClientPartition]:
    """Split the users of ``interactions`` into ``n_clients`` disjoint clients (see module docstring)."""
    users = interactions.user_ids
    if n_clients < 1:
        raise ValueError(f"n_clients must be >= 1, got {n_clients}")
    if min_users < 1:
        raise ValueError(f"min_users must be >= 1, got {min_users}")
    if len(users) < n_clients * min_users:
        raise ValueError(f"n_clients={n_clients} × min_users={min_users} exceeds the {len(users)} users available")
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    rng = np.random.default_rng(seed)
    dominant = dominant_genres(interactions, catalog, like_threshold)
    if scheme == "iid":
        buckets = _deal(users, n_clients, rng)
    elif scheme == "genre":
        groups: dict[str, list[str]] = {}
        for u in users:
            groups.setdefault(dominant.get(u, ""), []).append(u)
        buckets = _dirichlet_by_group(groups, n_clients, alpha, rng)
        _fill_small(buckets, min_users)
    else:
        raise ValueError(f"scheme must be 'iid' or 'genre', got {scheme!r}")
    rank = {u: i for i, u in enumerate(users)}
    out = []
    for c, members in enumerate(buckets):
        counts = Counter(dominant.get(u, "") for u in members)
        top = tuple(g for g, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3] if g)
        out.append(ClientPartition(client_id=c, user_ids=tuple(sorted(members, key=rank.__getitem__)), top_genres=top))
    return out


def genre_distribution(user_ids: Sequence[str], interactions: Interactions, catalog: Catalog, genres: Sequence[str],
                       like_threshold: float = 3.0) -> np.ndarray:
    """Share of each genre among the liked items of ``user_ids`` (uniform when nothing is liked)."""
    frame = interactions.frame
    liked = frame[frame["user_id"].isin(set(user_ids)) & (frame["rating"] > like_threshold)]["item_id"]
    item_genres = {it.item_id: it.genres for it in catalog}
    counts = Counter(g for item in liked for g in item_genres.get(str(item), ()))
    v = np.array([counts.get(g, 0) for g in genres], dtype=float)
    return v / v.sum() if v.sum() > 0 else np.full(len(genres), 1.0 / max(len(genres), 1))


def js_divergence(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen–Shannon divergence in bits (0 … 1)."""
    p = np.asarray(p, float)
    q = np.asarray(q, float)
    m = 0.5 * (p + q)

    def kl(a: np.ndarray, b: np.ndarray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log2(a[mask] / b[mask])))

    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def genre_skew(partitions: Sequence[ClientPartition], interactions: Interactions, catalog: Catalog) -> float:
    """Mean JS divergence between each client's liked-genre distribution and the population's."""
    genres = catalog.genres()
    everyone = [u for p in partitions for u in p.user_ids]
    pop = genre_distribution(everyone, interactions, catalog, genres)
    return float(np.mean([js_divergence(genre_distribution(p.user_ids, interactions, catalog, genres), pop)
                          for p in partitions]))
