"""Catalogue round trip: every MovieLens title, written as an LLM would list it, back through
``parse_list`` + ``Grounder``.

    python benchmarks/grounding_roundtrip.py [--data ../shared/data] [--embeddings]

For MovieLens 100K (u.item) and ml-latest-small (movies.csv), every title is written into
numbered lists of ten ("Here are some movies you might like:\\n1. Title (Year)\\n2. …") in
two forms — ``display`` (the article in front, as an LLM writes it: "The Shawshank Redemption")
and ``movielens`` (the file's own text: "Shawshank Redemption, The", foreign titles in
parentheses) — each with and without the year. The lists are parsed and grounded against the
display-title catalogue (what probes load). Each title is then
``exact`` (its own id), ``duplicate`` (the canonical id of its duplicate group: same normalised
title and year under another id), ``wrong`` (another film; ``wrong_flagged`` when the
grounding said ``ambiguous``) or ``ungrounded``. Timings are parse + ground of all lists with a
fresh Grounder (construction included), best of three runs. Writes benchmarks/results/grounding_roundtrip.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from recaudit.data.catalog import Catalog  # noqa: E402
from recaudit.data.loaders import load_movielens_100k, load_movielens_latest_small  # noqa: E402
from recaudit.text.ground import Grounder  # noqa: E402
from recaudit.text.parse import normalize_title, parse_list  # noqa: E402

FORMS = ("display", "movielens")
LIST_SIZE = 10
_YEAR_SUFFIX = re.compile(r"\s*\(\d{4}(?:\s*[–-]\s*(?:\d{4})?)?\)\s*$")
_ALT = re.compile(r"\s+\([^()]*\)$")


@dataclass
class Entry:
    """One catalogue item as an LLM would write it in each form."""

    item_id: str
    year: int | None
    display: str  # "The City of Lost Children" (article in front, no foreign title)
    movielens: str  # "City of Lost Children, The (Cité des enfants perdus, La)"


@dataclass
class Outcome:
    """Counts of one round trip, plus a few examples of each failure."""

    n: int = 0
    exact: int = 0
    duplicate: int = 0
    wrong: int = 0
    wrong_flagged: int = 0
    ungrounded: int = 0
    ambiguous: int = 0
    seconds: float = 0.0
    examples: dict = field(default_factory=lambda: {"wrong": [], "wrong_flagged": [], "ungrounded": []})

    def as_dict(self) -> dict:
        """JSON-ready counts and shares (``exact_rate`` counts merged duplicates as their item)."""
        n = max(self.n, 1)
        return {
            "n": self.n, "exact": self.exact, "duplicate_merged": self.duplicate, "wrong": self.wrong,
            "wrong_flagged_ambiguous": self.wrong_flagged, "wrong_unflagged": self.wrong - self.wrong_flagged,
            "ungrounded": self.ungrounded, "ambiguous": self.ambiguous,
            "exact_rate": round((self.exact + self.duplicate) / n, 5),
            "exact_id_rate": round(self.exact / n, 5),
            "seconds": round(self.seconds, 3),
            "ms_per_title": round(1000 * self.seconds / n, 4),
            "examples": self.examples,
        }


def entries(display: Catalog, raw: Catalog) -> list[Entry]:
    """The two written forms of each item (the display catalogue and the raw-title one share ids)."""
    out = []
    for it in display:
        raw_title = raw.get(it.item_id).title
        if raw_title.strip().lower() == "unknown":
            continue  # ML-100K id 267: no film
        shown = _ALT.sub("", it.title) if _ALT.search(it.title) and not it.title.startswith("(") else it.title
        out.append(Entry(it.item_id, it.year, shown, _YEAR_SUFFIX.sub("", raw_title)))
    return out


def make_lists(items: list[Entry], seed: int) -> list[list[Entry]]:
    """Shuffled lists of ``LIST_SIZE`` whose titles differ once normalised (the parser would drop repeats)."""
    order = list(items)
    random.Random(seed).shuffle(order)
    lists: list[list[Entry]] = []
    keys: list[set[str]] = []
    open_: list[int] = []  # lists not yet full
    for e in order:
        key = normalize_title(e.display)
        j = next((j for j in open_ if key not in keys[j]), None)
        if j is None:
            j = len(lists)
            lists.append([])
            keys.append(set())
            open_.append(j)
        lists[j].append(e)
        keys[j].add(key)
        if len(lists[j]) == LIST_SIZE:
            open_.remove(j)
    return lists


def render(lst: list[Entry], form: str, with_year: bool) -> str:
    """The answer text an LLM would write for one list."""
    lines = ["Here are some movies you might enjoy:", ""]
    for n, e in enumerate(lst, 1):
        title = getattr(e, form)
        lines.append(f"{n}. {title} ({e.year})" if with_year and e.year else f"{n}. {title}")
    return "\n".join(lines + ["", "I hope you enjoy these recommendations!"])


def _canonical(grounder: Grounder, item_id: str) -> str:
    fn = getattr(grounder, "canonical_id", None)
    return fn(item_id) if fn is not None else item_id


def round_trip(catalog: Catalog, lists: list[list[Entry]], form: str, with_year: bool,
               use_embeddings: bool = False, n_examples: int = 8) -> Outcome:
    """Parse and ground every list; classify each title against the item it was written from."""
    out = Outcome()
    t0 = time.perf_counter()
    grounder = Grounder(catalog, use_embeddings=use_embeddings)
    results = []
    for lst in lists:
        parsed = parse_list(render(lst, form, with_year))
        results.append((lst, parsed, _ground(grounder, parsed)))
    out.seconds = time.perf_counter() - t0
    for lst, parsed, groundings in results:
        if len(groundings) != len(lst):  # a split or merged line: every title of the list counts as ungrounded
            out.n += len(lst)
            out.ungrounded += len(lst)
            _example(out, "ungrounded", n_examples, {"list": [getattr(e, form) for e in lst], "parsed": parsed.items})
            continue
        for e, q, g in zip(lst, parsed.items, groundings):
            out.n += 1
            ambiguous = bool(getattr(g, "ambiguous", False))
            out.ambiguous += ambiguous
            if g.item_id == e.item_id:
                out.exact += 1
            elif g.item_id is None:
                out.ungrounded += 1
                _example(out, "ungrounded", n_examples, {"title": getattr(e, form), "year": e.year, "parsed": q})
            elif g.item_id == _canonical(grounder, e.item_id):
                out.duplicate += 1
            else:
                out.wrong += 1
                got = catalog.get(g.item_id)
                info = {"title": getattr(e, form), "year": e.year, "id": e.item_id, "parsed": q,
                        "got": f"{got.title} ({got.year})", "got_id": got.item_id}
                if ambiguous:
                    out.wrong_flagged += 1
                    _example(out, "wrong_flagged", n_examples, info)
                else:
                    _example(out, "wrong", n_examples, info)
    return out


def _ground(grounder: Grounder, parsed):
    try:
        return grounder.ground(parsed)  # the parse carries years and uncut titles
    except (TypeError, ValueError, AttributeError):  # older Grounder: titles only
        return grounder.ground(parsed.items)


def _example(out: Outcome, kind: str, limit: int, info: dict) -> None:
    if len(out.examples[kind]) < limit:
        out.examples[kind].append(info)


def load(data: Path, name: str) -> tuple[Catalog, list[Entry]]:
    """The display catalogue and its written entries for 'ml-100k' or 'ml-latest-small'."""
    loader = load_movielens_100k if name == "ml-100k" else load_movielens_latest_small
    display, _ = loader(data / name)
    raw, _ = loader(data / name, title_style="raw")
    return display, entries(display, raw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("RECAUDIT_SHARED_DATA", REPO.parent / "shared" / "data")))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--embeddings", action="store_true", help="also run the MiniLM stage (loads the model)")
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "grounding_roundtrip.json")
    args = ap.parse_args()
    result: dict = {"seed": args.seed, "list_size": LIST_SIZE, "use_embeddings": args.embeddings,
                    "python": platform.python_version(), "machine": platform.machine(), "datasets": {}}
    for name in ("ml-100k", "ml-latest-small"):
        catalog, items = load(args.data, name)
        lists = make_lists(items, args.seed)
        ds: dict = {"items": len(catalog), "titles": len(items)}
        groups = getattr(Grounder(catalog, use_embeddings=False), "duplicate_groups", None)
        if groups is not None:
            ds["duplicate_groups"] = len(groups)
            ds["duplicate_ids_merged"] = sum(len(g) - 1 for g in groups)
        for form in FORMS:
            for with_year in (True, False):
                # best of three: the shared machine's load makes single timings noisy
                runs = [round_trip(catalog, lists, form, with_year, use_embeddings=args.embeddings) for _ in range(3)]
                o = runs[0]
                o.seconds = min(r.seconds for r in runs)
                ds[f"{form}{'' if with_year else '_no_year'}"] = o.as_dict()
                print(f"{name:16s} {form:9s} year={with_year!s:5s} exact {o.exact + o.duplicate}/{o.n} "
                      f"dup {o.duplicate} wrong {o.wrong} (flagged {o.wrong_flagged}) ungrounded {o.ungrounded} "
                      f"ambiguous {o.ambiguous}  {o.seconds:.2f}s", flush=True)
        result["datasets"][name] = ds
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
