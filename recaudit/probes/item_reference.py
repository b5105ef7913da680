"""Reference recommenders with known item-side behaviour, and a synthetic catalogue to run them on.

They answer prompts like a model would (a numbered list of titles) and are wrapped in a
``CallableAdapter``; the validity tests and benchmarks/item_fairness.py use them to show the
probes separate a popularity-biased recommender from neutral ones:

- ``most_popular``: the same k most popular items for everyone (GU > 0 on the top bucket, Gini ≈ 1);
- ``uniform_random``: k catalogue items uniformly at random (seeded per user);
- ``history_proportional``: for k of the user's history items drawn without replacement, an unseen
  item with the same popularity bucket and genre set — in expectation the recommended group
  shares equal the history shares, so every GU is 0 up to sampling noise.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from recaudit.adapters.base import Request
from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.probes.item_common import UserSplit, user_rng

GenerateFn = Callable[[Request], str]


def numbered(titles: Sequence[str]) -> str:
    """A numbered list, as an instruction-following model writes it."""
    return "\n".join(f"{i}. {t}" for i, t in enumerate(titles, start=1))


def most_popular(catalog: Catalog, k: int) -> GenerateFn:
    """Everyone gets the k most popular catalogue items."""
    top = [it.title for it in sorted(catalog.items, key=lambda it: (-it.popularity, it.item_id))[:k]]
    return lambda request: numbered(top)


def uniform_random(catalog: Catalog, k: int, seed: int = 0) -> GenerateFn:
    """k distinct catalogue items uniformly at random, seeded by the request's user id."""
    titles = catalog.titles

    def generate(request: Request) -> str:
        rng = user_rng(seed, request.meta().get("user_id", ""), salt=2)
        return numbered([titles[j] for j in rng.choice(len(titles), size=min(k, len(titles)), replace=False)])

    return generate


def history_proportional(
    catalog: Catalog, splits: Sequence[UserSplit], bucket_of: Mapping[str, str], k: int, seed: int = 0
) -> GenerateFn:
    """For k random history items, an unseen item of the same (bucket, genres); ValueError if k > history."""
    pools: dict[tuple, list[str]] = defaultdict(list)
    for it in catalog.items:
        pools[(bucket_of[it.item_id], it.genres)].append(it.item_id)
    split_of = {s.user_id: s for s in splits}

    def generate(request: Request) -> str:
        s = split_of[request.meta()["user_id"]]
        if k > len(s.history):
            raise ValueError(f"history_proportional needs k <= history length ({len(s.history)}), got {k}")
        rng = user_rng(seed, s.user_id, salt=3)
        used: set[str] = set()
        out = []
        for h in rng.choice(len(s.history), size=k, replace=False):
            item = catalog.get(s.history[h])
            options = [i for i in pools[(bucket_of[item.item_id], item.genres)] if i not in s.seen and i not in used]
            if options:
                pick = options[int(rng.integers(len(options)))]
                used.add(pick)
                out.append(catalog.get(pick).title)
        return numbered(out)

    return generate


def synthetic_world(
    n_items: int = 600,
    n_users: int = 200,
    per_user: int = 25,
    skew: float = 0.6,
    genre_sets: Sequence[tuple[str, ...]] = (("Action",), ("Comedy",), ("Drama",), ("Action", "Comedy")),
    seed: int = 0,
) -> tuple[Catalog, Interactions]:
    """A catalogue whose genres are independent of popularity, and users drawing items ∝ 1/rank^skew.

    80% of ratings are 4–5 (liked); years spread over 1950–2019; titles are unique.
    """
    rng = np.random.default_rng(seed)
    appeal = 1.0 / (1.0 + rng.permutation(n_items)) ** skew
    items = [
        Item(f"i{j:04d}", f"Synthetic Film {j:04d}", genre_sets[int(rng.integers(len(genre_sets)))], int(rng.integers(1950, 2020)))
        for j in range(n_items)
    ]
    rows = []
    for u in range(n_users):
        chosen = rng.choice(n_items, size=per_user, replace=False, p=appeal / appeal.sum())
        for t, j in enumerate(chosen):
            rating = int(rng.choice([2, 3, 4, 5], p=[0.1, 0.1, 0.4, 0.4]))
            rows.append((str(u), items[j].item_id, rating, 1_000_000 + u * 1000 + t))
    inter = Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]), name="synthetic")
    return Catalog(items, name="synthetic").with_popularity(inter), inter


def popularity_swap(
    base: GenerateFn, catalog: Catalog, bucket_of: Mapping[str, str], top_bucket: str, share: float = 0.2, seed: int = 0,
    when: Callable[[Request], bool] | None = None,
) -> GenerateFn:
    """``base``'s lists with each title replaced, with probability ``share``, by a random ``top_bucket`` item.

    A planted popularity bias of known size (``when`` limits it to some requests, e.g. one system role)."""
    top = [it.title for it in catalog.items if bucket_of.get(it.item_id) == top_bucket]
    by_title = {it.title: it for it in catalog.items}

    def generate(request: Request) -> str:
        lines = [line.split(". ", 1)[-1] for line in base(request).splitlines() if line.strip()]
        if when is not None and not when(request):
            return numbered(lines)
        m = request.meta()
        rng = user_rng(seed, f"{m.get('user_id', '')}|{m.get('strategy', '')}|{m.get('system', '')}", salt=4)
        out, used = [], set(lines)
        for t in lines:
            if rng.random() < share and top:
                pick = top[int(rng.integers(len(top)))]
                if pick not in used and pick in by_title:
                    used.add(pick)
                    t = pick
            out.append(t)
        return numbered(out)

    return generate


def popularity_sampler(catalog: Catalog, k: int, seed: int = 0, power: float = 1.0) -> GenerateFn:
    """k distinct items drawn ∝ (popularity + 1)^power, independently per (user, strategy, role, seed):
    a recommender that ignores the role and strategy (the null of the exposure change tests)."""
    titles = catalog.titles
    w = (np.array([it.popularity for it in catalog.items], dtype=float) + 1.0) ** power
    w = w / w.sum()

    def generate(request: Request) -> str:
        m = request.meta()
        rng = user_rng(seed, f"{m.get('user_id', '')}|{m.get('strategy', '')}|{m.get('system', '')}", salt=5)
        return numbered([titles[j] for j in rng.choice(len(titles), size=min(k, len(titles)), replace=False, p=w)])

    return generate


def exposure_population(
    n_items: int = 1682, k: int = 10, zipf: float = 0.9, n_clusters: int = 8, cluster_size: int = 120, seed: int = 123
) -> Callable[[int, np.random.Generator, float], np.ndarray]:
    """A population of users for interval-coverage simulations: ``draw(n, rng, shift)`` gives an (n, n_items)
    0/1 matrix of n users' top-k lists, each drawn ∝ a Zipf popularity plus a taste cluster, sharpened
    by ``(1 + shift)`` (shift > 0: more concentrated, a planted change)."""
    rng0 = np.random.default_rng(seed)
    pop = 1.0 / (1.0 + np.arange(n_items)) ** zipf
    pop = pop / pop.sum()
    clusters = [rng0.choice(n_items, cluster_size, replace=False) for _ in range(n_clusters)]

    def draw(n: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
        out = np.zeros((n, n_items))
        for u in range(n):
            w = pop.copy()
            c = clusters[int(rng.integers(n_clusters))]
            w[c] += 0.5 / len(c)
            w = w ** (1.0 + shift)
            out[u, rng.choice(n_items, k, replace=False, p=w / w.sum())] = 1.0
        return out

    return draw


def group_population(n_groups: int = 5, history: int = 10, k: int = 5, concentration: float = 2.0):
    """Users for GU-test simulations: ``draw(n, rng, swap)`` gives (rec, ref) incidence counts, (n, n_groups)
    each; history groups ~ the user's Dirichlet taste, recommendations a subsample of the history, each
    moved to the last group (the most popular bucket) with probability ``swap`` (a planted bias)."""

    def draw(n: int, rng: np.random.Generator, swap: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        rec, ref = np.zeros((n, n_groups)), np.zeros((n, n_groups))
        for u in range(n):
            pi = rng.dirichlet(np.full(n_groups, concentration))
            h = rng.choice(n_groups, history, p=pi)
            r = rng.choice(h, k, replace=False)
            r = np.where(rng.random(k) < swap, n_groups - 1, r)
            ref[u], rec[u] = np.bincount(h, minlength=n_groups), np.bincount(r, minlength=n_groups)
        return rec, ref

    return draw
