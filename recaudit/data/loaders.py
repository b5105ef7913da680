"""Loaders for MovieLens, for plain catalogue/interaction files, and for the shipped demo data.

Every loader returns recaudit's two data types (``Catalog``, ``Interactions``) with item
popularity set from the interactions, and raises ``DataFormatError`` ("file:line: problem") for
malformed input. Ids are strings.

Plain-file schema (``load_catalog_file`` / ``load_interactions_file``), CSV with a header row
(UTF-8, comma-separated, standard quoting) or JSON Lines (one object per line, blank lines
skipped), chosen by the file suffix (.csv / .jsonl):

catalogue                                   interactions
  item_id  required, unique                   user_id    required
  title    required, non-empty                item_id    required, must be in the catalogue
  genres   optional; CSV: pipe-separated        rating     required, a number
           ("Action|Comedy"); JSONL: a list     timestamp  optional integer (seconds); when
           of strings or a pipe string                     absent, the row order (0, 1, …)
  year     optional integer (blank/null ok)
Other columns/keys are ignored.

MovieLens titles are stored as display titles by default: "Usual Suspects, The (1995)" →
title "The Usual Suspects", year 1995 (``title_style="raw"`` keeps the file's title).
"""

from __future__ import annotations

import csv
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.data.errors import DataFormatError
from recaudit.data.rows import (
    build_catalog,
    build_interactions,
    csv_records,
    delimited,
    fast_interactions,
    float_field,
    genres_field,
    id_field,
    int_field,
    records,
)

TitleStyle = Literal["display", "raw"]

__all__ = [
    "DataFormatError",
    "display_title",
    "load_movielens_100k",
    "load_movielens_latest_small",
    "load_catalog_file",
    "load_interactions_file",
    "demo_catalog",
    "demo_interactions",
    "generate_demo_interactions",
]

# Articles MovieLens moves behind the title ("Usual Suspects, The", "Postino, Il", "Cité des enfants perdus, La").
_TRAILING_ARTICLE = re.compile(
    r"^(?P<main>.+), (?P<art>The|A|An|La|Le|Les|L'|Il|El|Lo|Los|Las|Der|Die|Das|Det|Den|Un|Une|Gli)$"
)
_TITLE_YEAR = re.compile(r"\s*\((?P<year>\d{4})(?:\s*[–-]\s*(?:\d{4})?)?\)\s*$")
_ALT_TITLE = re.compile(r"^(?P<main>.+?)\s+\((?P<alt>[^()]+)\)$")
_ML100K_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)


def display_title(raw: str) -> tuple[str, int | None]:
    """MovieLens title → (display title, year): "City of Lost Children, The (Cité des enfants perdus, La) (1995)"
    → ("The City of Lost Children (La Cité des enfants perdus)", 1995)."""
    s = raw.strip()
    year = None
    m = _TITLE_YEAR.search(s)
    if m and m.start() > 0:
        year = int(m.group("year"))
        s = s[: m.start()].rstrip()
    alt = None
    m = _ALT_TITLE.match(s)
    if m:
        s, alt = m.group("main"), m.group("alt")
    s = _front_article(s)
    if alt is not None:
        s = f"{s} ({alt if alt.startswith('a.k.a.') else _front_article(alt)})"
    return s, year


def _front_article(s: str) -> str:
    m = _TRAILING_ARTICLE.match(s.strip())
    if not m:
        return s.strip()
    art = m.group("art")
    return f"{art}{m.group('main')}" if art.endswith("'") else f"{art} {m.group('main')}"


# ---------------------------------------------------------------------------------------------
# MovieLens


def load_movielens_100k(directory: str | Path, title_style: TitleStyle = "display") -> tuple[Catalog, Interactions]:
    """MovieLens 100K: u.item (latin-1, 19 genre flags named by u.genre), u.data ratings, u.user attributes."""
    d = Path(directory)
    genre_names = _ml100k_genres(d / "u.genre")
    items = []
    for n, f in delimited(d / "u.item", "|", 5 + len(genre_names), encoding="latin-1"):
        flags = f[5:]
        if any(x not in ("0", "1") for x in flags):
            raise DataFormatError(d / "u.item", n, f"genre flags must be 0 or 1, got {flags}")
        title, year = display_title(f[1]) if title_style == "display" else (f[1].strip(), display_title(f[1])[1])
        if year is None and re.fullmatch(r"\d{2}-\w{3}-\d{4}", f[2].strip()):
            year = int(f[2].strip()[-4:])
        genres = tuple(g for g, x in zip(genre_names, flags) if x == "1")
        items.append((n, Item(id_field(d / "u.item", n, "movie id", f[0]), title or f[1].strip(), genres, year)))
    catalog = build_catalog(d / "u.item", items, "ml-100k")

    users = []
    for n, f in delimited(d / "u.user", "|", 5, encoding="latin-1"):
        users.append({"user_id": id_field(d / "u.user", n, "user id", f[0]), "age": int_field(d / "u.user", n, "age", f[1]),
                      "gender": f[2].strip(), "occupation": f[3].strip(), "zip": f[4].strip()})
    users_frame = pd.DataFrame(users).set_index("user_id")

    path = d / "u.data"

    def rows():
        for n, f in delimited(path, "\t", 4):
            yield (n, id_field(path, n, "user id", f[0]), id_field(path, n, "item id", f[1]),
                   float_field(path, n, "rating", f[2]), int_field(path, n, "timestamp", f[3]))

    columns = {"user_id": 0, "item_id": 1, "rating": 2, "timestamp": 3}
    interactions = fast_interactions(path, columns, catalog, "ml-100k", users_frame, sep="\t", header=False)
    interactions = interactions or build_interactions(path, rows(), catalog, "ml-100k", users_frame)
    return catalog.with_popularity(interactions), interactions


def _ml100k_genres(path: Path) -> tuple[str, ...]:
    if not path.exists():
        return _ML100K_GENRES
    pairs = []
    for n, f in delimited(path, "|", 2, encoding="latin-1"):
        pairs.append((int_field(path, n, "genre index", f[1]), f[0].strip()))
    idx = [i for i, _ in pairs]
    if sorted(idx) != list(range(len(pairs))):
        raise DataFormatError(path, None, f"genre indices must be 0..{len(pairs) - 1}, got {idx}")
    return tuple(name for _, name in sorted(pairs))


def load_movielens_latest_small(directory: str | Path, title_style: TitleStyle = "display") -> tuple[Catalog, Interactions]:
    """MovieLens latest-small: movies.csv (title with year, pipe genres) and ratings.csv."""
    d = Path(directory)
    path = d / "movies.csv"
    items = []
    for n, r in csv_records(path, ("movieId", "title", "genres")):
        title, year = display_title(r["title"])
        if title_style == "raw":
            title = r["title"].strip()
        if not title:
            raise DataFormatError(path, n, "empty title")
        items.append((n, Item(id_field(path, n, "movieId", r["movieId"]), title, genres_field(path, n, r["genres"]), year)))
    catalog = build_catalog(path, items, "ml-latest-small")
    rpath = d / "ratings.csv"

    def rows():
        for n, r in csv_records(rpath, ("userId", "movieId", "rating", "timestamp")):
            yield (n, id_field(rpath, n, "userId", r["userId"]), id_field(rpath, n, "movieId", r["movieId"]),
                   float_field(rpath, n, "rating", r["rating"]), int_field(rpath, n, "timestamp", r["timestamp"]))

    columns = {"user_id": "userId", "item_id": "movieId", "rating": "rating", "timestamp": "timestamp"}
    interactions = fast_interactions(rpath, columns, catalog, "ml-latest-small")
    interactions = interactions or build_interactions(rpath, rows(), catalog, "ml-latest-small")
    return catalog.with_popularity(interactions), interactions


# ---------------------------------------------------------------------------------------------
# Plain files


def load_catalog_file(path: str | Path, name: str | None = None) -> Catalog:
    """A catalogue from a CSV or JSONL file (schema in the module docstring); popularity 0."""
    p = Path(path)
    items = []
    for n, r in records(p, ("item_id", "title")):
        title = r["title"]
        if not isinstance(title, str) or not title.strip():
            raise DataFormatError(p, n, f"title must be a non-empty string, got {title!r}")
        year = int_field(p, n, "year", r.get("year"), optional=True)
        items.append((n, Item(id_field(p, n, "item_id", r["item_id"]), title.strip(), genres_field(p, n, r.get("genres")), year)))
    return build_catalog(p, items, name or p.stem)


def load_interactions_file(path: str | Path, catalog: Catalog | None = None, name: str | None = None) -> Interactions:
    """Interactions from a CSV or JSONL file; item ids are checked against ``catalog`` when given."""
    p = Path(path)

    def rows():
        for i, (n, r) in enumerate(records(p, ("user_id", "item_id", "rating"))):
            ts = int_field(p, n, "timestamp", r.get("timestamp"), optional=True)
            yield (n, id_field(p, n, "user_id", r["user_id"]), id_field(p, n, "item_id", r["item_id"]),
                   float_field(p, n, "rating", r["rating"]), i if ts is None else ts)

    fast = None
    if p.suffix.lower() == ".csv":
        try:
            with p.open(encoding="utf-8") as f:
                header = [h.strip() for h in next(csv.reader([f.readline()]), [])]
        except (UnicodeDecodeError, OSError):
            header = []
        columns = {"user_id": "user_id", "item_id": "item_id", "rating": "rating",
                   "timestamp": "timestamp" if "timestamp" in header else None}
        fast = fast_interactions(p, columns, catalog, name or p.stem)
    return fast or build_interactions(p, rows(), catalog, name or p.stem)


# ---------------------------------------------------------------------------------------------
# Shipped demo data

DEMO_PACKAGE = "recaudit.data.demo"
DEMO_SEED = 20240501


def _demo_path(name: str) -> Path:
    return Path(str(resources.files(DEMO_PACKAGE).joinpath(name)))


@lru_cache(maxsize=1)
def _demo_items() -> tuple[Item, ...]:
    return tuple(load_catalog_file(_demo_path("movies.jsonl"), name="demo-movies").items)


def demo_interactions() -> Interactions:
    """The shipped synthetic interactions of the demo users (regenerate with generate_demo_interactions)."""
    users = pd.read_csv(_demo_path("users.csv"), dtype={"user_id": str}).set_index("user_id")
    inter = load_interactions_file(_demo_path("interactions.csv"), Catalog(list(_demo_items())), name="demo")
    return Interactions(inter.frame, users=users, name="demo")


def demo_catalog() -> Catalog:
    """The shipped demo catalogue (~200 well-known films), popularity from the demo interactions."""
    return Catalog(list(_demo_items()), name="demo-movies").with_popularity(demo_interactions())


def generate_demo_interactions(
    catalog: Catalog, n_users: int = 80, seed: int = DEMO_SEED
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Synthetic (interactions, users) with genre tastes and a long-tail item popularity, deterministic for a seed.

    Each item gets a Zipf(0.9) appeal from a seeded random rank, so popularity is long-tailed.
    Each user gets one or two favourite genres and 15–40 items drawn without replacement with
    probability ∝ appeal × (4 if the item has a favourite genre else 1); favourite-genre items
    are rated 4–5, others 2–4; timestamps increase per user from 2023-11-14.
    """
    if n_users < 1:
        raise ValueError(f"n_users must be >= 1, got {n_users}")
    rng = np.random.default_rng(seed)
    items = catalog.items
    appeal = 1.0 / (1.0 + rng.permutation(len(items))) ** 0.9
    genres = sorted({g for it in items for g in it.genres})
    rows, users = [], []
    for u in range(1, n_users + 1):
        favourite = sorted(rng.choice(genres, size=int(rng.integers(1, 3)), replace=False).tolist())
        liked = np.array([bool(set(it.genres) & set(favourite)) for it in items])
        weight = appeal * np.where(liked, 4.0, 1.0)
        n = int(rng.integers(15, 41))
        chosen = rng.choice(len(items), size=min(n, len(items)), replace=False, p=weight / weight.sum())
        ts = 1_700_000_000 + u * 1_000 + np.cumsum(rng.integers(600, 86_400, size=len(chosen)))
        for j, t in zip(chosen, ts):
            rating = int(rng.choice([4, 5], p=[0.4, 0.6])) if liked[j] else int(rng.choice([2, 3, 4], p=[0.3, 0.4, 0.3]))
            rows.append({"user_id": str(u), "item_id": items[j].item_id, "rating": rating, "timestamp": int(t)})
        users.append({"user_id": str(u), "favourite_genres": "|".join(favourite)})
    return pd.DataFrame(rows), pd.DataFrame(users)


def _write_demo_interactions() -> None:  # python -m recaudit.data.loaders
    frame, users = generate_demo_interactions(Catalog(list(_demo_items())))
    frame.to_csv(_demo_path("interactions.csv"), index=False)
    users.to_csv(_demo_path("users.csv"), index=False)


if __name__ == "__main__":
    _write_demo_interactions()
