"""The one grounding step: map generated titles to catalogue item ids (or say they are not there).

Cascade, first hit wins (BIGRec-style grounding with cheap exact/fuzzy stages in front):

1. ``exact`` — ``normalize_title(query)`` equals the normalised title of one or more items
   (case, accents, articles incl. MovieLens' "…, The", parenthesised years and punctuation
   ignored), or a foreign/alternative title MovieLens gives in parentheses ("The City of Lost
   Children (La Cité des enfants perdus)" is found as either). When the query comes from a
   ``ParsedList``, its uncut text is tried first: "North by Northwest", which the parser cut
   to "North", grounds as written when the catalogue holds it. Score 1.0.
2. ``fuzzy`` — rapidfuzz ``fuzzy_scorer`` (default ``token_sort_ratio``, 0–100) between the
   normalised query and every distinct normalised title; the best title is accepted when its
   score is ``>= fuzzy_threshold`` (default 85). Ties → most popular, then lowest id.
   Score = ratio / 100.
   Number guard (``match_numbers=True``): fuzzy and embedding matches must carry the same
   numbers (digits and roman numerals II–XX) as the query, so "Toy Story 3" never lands on
   "Toy Story" and "Rocky II" never on "Rocky"; exact matches are unaffected.
3. ``embedding`` — cosine similarity of all-MiniLM-L6-v2 embeddings (L2-normalised, so cosine =
   dot product; BIGRec uses L2 distance, which ranks identically for unit vectors) between the
   raw query and every catalogue title; the nearest item is accepted when cosine ``>=
   embedding_threshold`` (default 0.85). Catalogue embeddings are computed once per Grounder
   (optionally cached on disk keyed by the catalogue's content hash); queries are embedded in
   one batch per ``ground`` call. Score = cosine. With the number guard, the nearest of the
   ten most similar items whose numbers agree is taken.
4. otherwise ``ungrounded`` with ``item_id=None``; score = the best similarity seen by the last
   stage tried (0 for an empty query), so reports can show how close misses were.

Years and films that share a title. Every stage lands on a normalised title; when several
films carry it ("Sabrina" 1954 and 1995, "Hamlet" ×3), the year written in the answer picks one
(``ParsedList.years``, the ``years`` argument, or a year at the end of the query string; the
same year, else one year off). Without a year, or when no film of that year exists, the most
popular film (then the lowest id) is returned, or the nearest year when one was written, and
the grounding is marked ``ambiguous`` with the films' ids in ``candidates``, so callers can
count answers they cannot attribute to one item (``grounding_summary``'s ``ambiguous``).

Duplicate catalogue entries — the same normalised title and the same year under several ids
(MovieLens 100K lists 18 films twice) — are merged, not flagged: grounding always returns the
group's canonical id (the most popular, then the lowest id), ``canonical_id(item_id)`` maps any
id to it (use it on histories and candidate sets before comparing with grounded ids) and
``duplicate_groups`` lists the groups, canonical id first. Items without a year are never
merged (two songs called "Hello" are two songs): they are ambiguous instead.

Thresholds trade precision for recall: raise them to accept fewer, surer matches. Defaults
measured in benchmarks/grounding.py (benchmarks/results/grounding.json; 200 MovieLens 100K
titles × 7 perturbations, 130 real post-1998 films as out-of-catalogue negatives):
fuzzy 85 + embedding 0.85 → precision 0.994, recall 0.879, out-of-catalogue false positives
1.5%; the earlier 90 / 0.75 gave 0.994 / 0.843 / 6.2% (MiniLM links "Batman Begins" to
"Batman" at cosine 0.79); fuzzy 85 alone gives 0.993 / 0.861 / 0%.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal, Sequence

import numpy as np

from recaudit.data.catalog import Catalog, Item
from recaudit.text.clean import split_year
from recaudit.text.parse import ParsedList, normalize_title

GroundMethod = Literal["exact", "fuzzy", "embedding", "ungrounded"]
METHODS: tuple[GroundMethod, ...] = ("exact", "fuzzy", "embedding", "ungrounded")
FUZZY_SCORERS = ("token_sort_ratio", "token_set_ratio", "ratio", "WRatio", "QRatio", "partial_ratio")
_FUZZY_CHUNK = 256  # queries per cdist call: bounds memory at chunk × distinct titles floats
_EMBEDDING_CANDIDATES = 10  # nearest items searched for one whose numbers agree
_YEAR_TOLERANCE = 1  # a year one off still picks a film (release years differ by country and source)
_ALT_TITLE = re.compile(r"\(([^()]+)\)")
_ROMAN = {"ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10, "xi": 11, "xii": 12,
          "xiii": 13, "xiv": 14, "xv": 15, "xvi": 16, "xvii": 17, "xviii": 18, "xix": 19, "xx": 20}

__all__ = ["Grounding", "Grounder", "grounding_summary", "METHODS"]


@dataclass(frozen=True)
class Grounding:
    """One query's grounding: the matched item id (None when ungrounded), how, and the score in [0, 1].

    ``ambiguous``: several catalogue films share the matched title and the answer's year (``year``,
    None when it gave none) did not single one out; ``candidates`` then holds their ids, the
    returned one first (module docstring).
    """

    query: str
    item_id: str | None
    method: GroundMethod
    score: float
    ambiguous: bool = False
    candidates: tuple[str, ...] = ()
    year: int | None = None

    @property
    def grounded(self) -> bool:
        return self.item_id is not None


# measured on perturbed MovieLens titles (module docstring, benchmarks/results/grounding.json):
# every probe grounds with these unless its config says otherwise
DEFAULT_FUZZY_THRESHOLD = 85.0
DEFAULT_EMBEDDING_THRESHOLD = 0.85


class Grounder:
    """Grounds titles to one catalogue: exact → fuzzy → embedding → ungrounded (module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        use_embeddings: bool = True,
        fuzzy_threshold: float = DEFAULT_FUZZY_THRESHOLD,
        embedding_threshold: float = DEFAULT_EMBEDDING_THRESHOLD,
        fuzzy_scorer: str = "token_sort_ratio",
        embed_fn: Callable[[Sequence[str]], np.ndarray] | None = None,
        embedding_cache_dir: str | Path | None = None,
        match_numbers: bool = True,
    ) -> None:
        if len(catalog) == 0:
            raise ValueError("catalog is empty: nothing to ground to")
        if not 0.0 <= fuzzy_threshold <= 100.0:
            raise ValueError(f"fuzzy_threshold must be in [0, 100] (rapidfuzz scale), got {fuzzy_threshold}")
        if not -1.0 <= embedding_threshold <= 1.0:
            raise ValueError(f"embedding_threshold must be a cosine in [-1, 1], got {embedding_threshold}")
        if fuzzy_scorer not in FUZZY_SCORERS:
            raise ValueError(f"fuzzy_scorer must be one of {FUZZY_SCORERS}, got {fuzzy_scorer!r}")
        from rapidfuzz import fuzz

        self.catalog = catalog
        self.use_embeddings = use_embeddings
        self.fuzzy_threshold = float(fuzzy_threshold)
        self.embedding_threshold = float(embedding_threshold)
        self.fuzzy_scorer = fuzzy_scorer
        self._scorer = getattr(fuzz, fuzzy_scorer)
        self._embed_fn = embed_fn
        self._cache_dir = Path(embedding_cache_dir) if embedding_cache_dir is not None else None
        self._catalog_vectors: np.ndarray | None = None
        self.match_numbers = match_numbers

        # Preference order for ties: most popular first, then lowest id (numeric ids numerically).
        items = catalog.items
        ranked = sorted(range(len(items)), key=lambda r: _preference(items[r]))
        item_keys = [normalize_title(it.title) for it in items]
        self._years = [it.year for it in items]
        self._canonical_row = list(range(len(items)))
        by_title_year: dict[tuple[str, int], int] = {}
        groups: dict[int, list[str]] = {}
        films: dict[str, list[int]] = {}  # title key → distinct films (canonical rows), preferred first
        alt_films: dict[str, list[int]] = {}  # foreign / alternative title key → films
        for r in ranked:
            key, year = item_keys[r], self._years[r]
            if not key:
                continue
            if year is not None:
                first = by_title_year.setdefault((key, year), r)
                if first != r:  # a duplicate entry: merged into the first (preferred) one
                    self._canonical_row[r] = first
                    groups.setdefault(first, [items[first].item_id]).append(items[r].item_id)
                    continue
            films.setdefault(key, []).append(r)
            for alt in _alt_keys(items[r].title, key):
                alt_films.setdefault(alt, []).append(r)
        self._films = films
        self._alt_films = {k: v for k, v in alt_films.items() if k not in films}
        self.duplicate_groups: tuple[tuple[str, ...], ...] = tuple(tuple(g) for g in groups.values())
        self._canonical = {items[r].item_id: items[c].item_id for r, c in enumerate(self._canonical_row) if r != c}
        self._item_keys = item_keys
        # distinct keys in preference order (titles, then alternative titles): argmax picks the preferred
        self._keys = list(films) + list(self._alt_films)
        self._key_rows = [films[k] for k in films] + [self._alt_films[k] for k in self._alt_films]
        self._key_numbers = [_numbers(k) for k in self._keys]
        self._item_numbers = [_numbers(k) for k in item_keys]
        # best fuzzy match per normalised title: LLM lists repeat titles across thousands of answers,
        # and a probe grounds answer by answer as they arrive
        self._fuzzy_seen: dict[str, tuple[int, float]] = {}
        # token_sort_ratio is ratio on word-sorted strings: sorting the catalogue once instead of in every
        # cdist call makes grounding one answer at a time ~4x cheaper (the same scores)
        self._presorted = fuzzy_scorer == "token_sort_ratio"
        if self._presorted:
            self._scorer = fuzz.ratio
        self._match_keys = [_sorted_tokens(k) for k in self._keys] if self._presorted else self._keys
        self._number_masks: dict[frozenset, np.ndarray] = {}  # catalogue keys whose numbers differ

    @property
    def params(self) -> dict:
        """Settings for the reproducibility block of a report."""
        return {
            "use_embeddings": self.use_embeddings,
            "fuzzy_threshold": self.fuzzy_threshold,
            "fuzzy_scorer": self.fuzzy_scorer,
            "embedding_threshold": self.embedding_threshold,
            "match_numbers": self.match_numbers,
            "catalog": self.catalog.name,
            "catalog_hash": self.catalog.content_hash(),
        }

    def canonical_id(self, item_id: str) -> str:
        """The id grounding returns for ``item_id``: itself, or its duplicate group's canonical id."""
        return self._canonical.get(item_id, item_id)

    def ground(self, titles: Sequence[str] | ParsedList, years: Sequence[int | None] | None = None) -> list[Grounding]:
        """Ground each title; the result is aligned with ``titles``.

        ``titles`` may be a ``ParsedList``: its years and uncut titles are used. ``years`` (aligned)
        overrides the years otherwise read from the parse or from the end of each query string.
        """
        uncut: Sequence[str] = ()
        if isinstance(titles, ParsedList):
            parsed = titles
            titles = parsed.items
            uncut = [parsed.uncut_of(i) for i in range(len(titles))]
            if years is None:
                years = [parsed.year_of(i) for i in range(len(titles))]
        if isinstance(titles, str):
            raise ValueError("titles must be a sequence of strings, not one string")
        queries = [str(t) if t is not None else "" for t in titles]
        split = [split_year(q) for q in queries]  # "Sabrina, 1954": the year is not part of the title
        if years is None:
            years = [y for _, y in split]
        elif len(years) != len(queries):
            raise ValueError(f"years must be aligned with titles: {len(years)} years for {len(queries)} titles")
        keys = [normalize_title(t) for t, _ in split]
        out: list[Grounding | None] = [None] * len(queries)
        pending: list[int] = []
        for i, (q, key) in enumerate(zip(queries, keys)):
            if not key:
                out[i] = Grounding(q, None, "ungrounded", 0.0, year=years[i])
                continue
            rows = None
            if i < len(uncut) and uncut[i] and uncut[i] != q:  # the whole text, when it is a title itself
                whole = normalize_title(uncut[i])
                rows = self._films.get(whole) or self._alt_films.get(whole)
            rows = rows or self._films.get(key) or self._alt_films.get(key)
            if rows:
                out[i] = self._pick(q, rows, years[i], "exact", 1.0)
            else:
                pending.append(i)
        best_miss = dict.fromkeys(pending, 0.0)
        if pending:
            still = []
            unique = [key for key in dict.fromkeys(keys[i] for i in pending) if key not in self._fuzzy_seen]
            self._fuzzy_seen.update(zip(unique, self._fuzzy(unique)))
            best = self._fuzzy_seen
            for i, (j, score) in zip(pending, (best[keys[i]] for i in pending)):
                if score >= self.fuzzy_threshold:
                    out[i] = self._pick(queries[i], self._key_rows[j], years[i], "fuzzy", score / 100.0)
                else:
                    best_miss[i] = score / 100.0
                    still.append(i)
            pending = still
        if pending and self.use_embeddings:
            sims = self._embed([queries[i] for i in pending]) @ self._catalog_embeddings().T
            for row, i in enumerate(pending):
                j, cos = self._nearest(sims[row], _numbers(keys[i]))
                if j is not None and cos >= self.embedding_threshold:
                    c = self._canonical_row[j]
                    rows = self._films.get(self._item_keys[c]) or [c]
                    out[i] = self._pick(queries[i], rows, years[i], "embedding", cos)
                else:
                    best_miss[i] = max(cos, 0.0)
        for i in pending:
            if out[i] is None:
                out[i] = Grounding(queries[i], None, "ungrounded", round(best_miss[i], 6), year=years[i])
        return out  # type: ignore[return-value]

    def ground_ids(self, titles: Sequence[str] | ParsedList, years: Sequence[int | None] | None = None) -> list[str | None]:
        """Item id per title (None where ungrounded)."""
        return [g.item_id for g in self.ground(titles, years)]

    def _pick(self, query: str, rows: list[int], year: int | None, method: GroundMethod, score: float) -> Grounding:
        """One of the films sharing a title: by the written year, else the preferred one, flagged (module docstring)."""
        items = self.catalog.items
        if len(rows) == 1:
            return Grounding(query, items[rows[0]].item_id, method, score, year=year)
        if year is not None:
            known = [r for r in rows if self._years[r] is not None]
            for tol in range(_YEAR_TOLERANCE + 1):
                near = [r for r in known if abs(self._years[r] - year) <= tol]  # type: ignore[operator]
                if len(near) == 1:
                    return Grounding(query, items[near[0]].item_id, method, score, year=year)
                if near:
                    rows = near + [r for r in rows if r not in near]
                    break
            else:  # no film of that year: the nearest one
                rows = sorted(rows, key=lambda r: abs(self._years[r] - year) if self._years[r] is not None else 1 << 30)
        ids = tuple(items[r].item_id for r in rows)
        return Grounding(query, ids[0], method, score, ambiguous=True, candidates=ids, year=year)

    def _fuzzy(self, keys: list[str]) -> list[tuple[int, float]]:
        from rapidfuzz import process

        results: list[tuple[int, float]] = []
        masks = self._number_masks
        for a in range(0, len(keys), _FUZZY_CHUNK):
            chunk = keys[a : a + _FUZZY_CHUNK]
            queries = [_sorted_tokens(k) for k in chunk] if self._presorted else chunk
            scores = process.cdist(queries, self._match_keys, scorer=self._scorer, dtype=np.float32, workers=1)
            if self.match_numbers:
                for r, key in enumerate(chunk):
                    nums = _numbers(key)
                    if nums not in masks:
                        masks[nums] = np.array([n != nums for n in self._key_numbers])
                    scores[r, masks[nums]] = 0.0
            best = scores.argmax(axis=1)
            results += [(int(j), float(scores[r, j])) for r, j in enumerate(best)]
        return results

    def _nearest(self, sims: np.ndarray, numbers: frozenset) -> tuple[int | None, float]:
        """Most similar catalogue row (whose numbers agree under the guard) and its cosine."""
        if not self.match_numbers:
            j = int(sims.argmax())
            return j, float(sims[j])
        top = np.argsort(-sims)[:_EMBEDDING_CANDIDATES]
        for j in top:
            if self._item_numbers[j] == numbers:
                return int(j), float(sims[j])
        return None, float(sims[top[0]])

    def _embed(self, texts: Sequence[str]) -> np.ndarray:
        if self._embed_fn is not None:
            vecs = np.asarray(self._embed_fn(list(texts)), dtype=np.float32)
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            return vecs / np.maximum(norms, 1e-12)
        from recaudit.text.embed import embed

        return embed(list(texts))

    def _catalog_embeddings(self) -> np.ndarray:
        if self._catalog_vectors is None:
            cache = self._cache_file()
            if cache is not None and cache.exists():
                vecs = np.load(cache, allow_pickle=False)
                if vecs.shape[0] == len(self.catalog):
                    self._catalog_vectors = vecs
                    return vecs
            self._catalog_vectors = self._embed(self.catalog.titles)
            if cache is not None:
                cache.parent.mkdir(parents=True, exist_ok=True)
                np.save(cache, self._catalog_vectors, allow_pickle=False)
        return self._catalog_vectors

    def _cache_file(self) -> Path | None:
        if self._cache_dir is None or self._embed_fn is not None:
            return None
        titles_hash = hashlib.sha256("\n".join(self.catalog.titles).encode()).hexdigest()[:16]
        return self._cache_dir / f"minilm-{titles_hash}.npy"


def grounding_summary(groundings: Sequence[Grounding]) -> dict:
    """Counts and shares per method, the grounded rate and the ambiguous groundings (for report tables)."""
    n = len(groundings)
    counts = Counter(g.method for g in groundings)
    grounded = sum(1 for g in groundings if g.item_id is not None)
    ambiguous = sum(1 for g in groundings if g.ambiguous)
    return {
        "n": n,
        "grounded": grounded,
        "grounded_rate": grounded / n if n else float("nan"),
        "ambiguous": ambiguous,
        "ambiguous_rate": ambiguous / n if n else float("nan"),
        "count": {m: counts.get(m, 0) for m in METHODS},
        "share": {m: (counts.get(m, 0) / n if n else float("nan")) for m in METHODS},
    }


def _alt_keys(title: str, key: str) -> list[str]:
    """Keys of the alternative titles in parentheses ("… (La Cité des enfants perdus)", "(a.k.a. Se7en)")."""
    out = []
    for inner in _ALT_TITLE.findall(title):
        inner = re.sub(r"^\s*a\.?k\.?a\.?\s+", "", inner, flags=re.IGNORECASE)
        alt = normalize_title(inner)
        if alt and alt != key and not alt.isdigit():
            out.append(alt)
    return out


def _preference(it: Item) -> tuple:
    ident = (0, int(it.item_id), "") if it.item_id.isdigit() else (1, 0, it.item_id)
    return (-it.popularity, ident)


def _sorted_tokens(key: str) -> str:
    return " ".join(sorted(key.split()))


def _numbers(key: str) -> frozenset:
    """Numbers in a normalised title: digits and roman numerals II–XX ("rocky ii" → {2}; "i" is a word)."""
    found = set()
    for tok in key.split():
        if tok.isdigit():
            found.add(int(tok))
        elif tok in _ROMAN:
            found.add(_ROMAN[tok])
        else:
            found.update(int(d) for d in re.findall(r"\d+", tok))
    return frozenset(found)
