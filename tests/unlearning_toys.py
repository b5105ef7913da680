"""Shared toy data of the unlearning tests: a MovieLens-like catalogue and ratings, its ml-100k files,
tiny params and the ``recaudit unlearn`` parser (one copy, imported by the test modules)."""

from __future__ import annotations

import argparse
from typing import Callable

import numpy as np
import pandas as pd

from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.unlearning.params import UnlearningParams

GENRES = ["Space", "Love", "War", "Farm"]


def toy_movielens(n_users: int = 14, n_items: int = 30, per_user: int = 9, seed: int = 0,
                  user_id: Callable[[int], str] = lambda u: str(u + 1)):  # fmt: skip
    """(Catalog, Interactions): ``per_user`` random items per user, ratings 1–5, distinct timestamps."""
    rng = np.random.default_rng(seed)
    catalog = Catalog([Item(str(i + 1), f"{GENRES[i % 4]} tale {i + 1}", (GENRES[i % 4],)) for i in range(n_items)])
    rows = [(user_id(u), str(i + 1), int(rng.integers(1, 6)), 880000000 + 100 * t + u)
            for u in range(n_users) for t, i in enumerate(rng.choice(n_items, per_user, replace=False))]  # fmt: skip
    return catalog, Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]))


def write_ml100k(folder, catalog, inter) -> None:
    """The toy data as an ml-100k folder (u.item, u.user, u.data)."""
    folder.mkdir()
    with open(folder / "u.item", "w", encoding="latin-1") as f:
        for it in catalog:
            flags = ["1" if g == it.genres[0] else "0" for g in ["unknown"] + GENRES + ["x"] * 14]
            f.write("|".join([it.item_id, f"{it.title} (1995)", "01-Jan-1995", "", "http://x"] + flags) + "\n")
    (folder / "u.user").write_text("".join(f"{u}|30|F|other|00000\n" for u in inter.user_ids))
    inter.frame[["user_id", "item_id", "rating", "timestamp"]].to_csv(folder / "u.data", sep="\t", header=False, index=False)


def tiny_params(tiny_lm_path, train: dict | None = None, **kw) -> UnlearningParams:
    """Params sized for the tiny model: 10 users, 2 forgotten, 2 shards; ``train`` changes the TrainConfig."""
    base = dict(model=str(tiny_lm_path), n_users=10, n_never_seen_users=3, forget_users=2, history_len=3,
                max_per_user=4, n_shards=2, top_k=2, temperature=0.5, embedding="hashing", e2urec_epochs=2,
                e2urec_aug_epochs=1, torch_threads=1,
                train={"batch_size": 4, "lr": 5e-3, "max_length": 256} | (train or {}))  # fmt: skip
    base.update(kw)
    return UnlearningParams(**base)


def unlearn_parser() -> argparse.ArgumentParser:
    """A parser with only the ``unlearn`` command registered."""
    from recaudit.cli.unlearn import add_parser

    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    return p
