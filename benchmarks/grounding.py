"""Grounding precision/recall per method and speed on perturbed MovieLens titles.

    python benchmarks/grounding.py [--data ../shared/data] [--n 200] [--seed 0]

Samples ``--n`` MovieLens 100K items, perturbs each title in every way of
recaudit.text.perturb (case, year added, article moved, 1–2 typos, a dropped word, combo), plus
display titles grounded against the raw MovieLens titles ("Usual Suspects, The (1995)"), and
grounds them with several settings. Negatives, which must stay ungrounded: random letter
strings and unrelated English sentences, and real films released after MovieLens 100K (1999+,
from the shipped demo catalogue, e.g. "Toy Story 3", "The Dark Knight"). A grounding is correct when it returns the target item
or an item with the same normalised title (MovieLens lists a few films twice).
Writes benchmarks/results/grounding.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recaudit.data.loaders import demo_catalog, load_movielens_100k, load_movielens_latest_small  # noqa: E402
from recaudit.text.ground import METHODS, Grounder, grounding_summary  # noqa: E402
from recaudit.text.parse import normalize_title, parse_list  # noqa: E402
from recaudit.text.perturb import PERTURBATIONS, perturb_title, random_string  # noqa: E402

UNRELATED = [
    "I'm sorry, but I cannot provide recommendations.",
    "The weather is lovely today",
    "Please provide more information about your preferences",
    "quarterly earnings report",
    "How to bake sourdough bread",
    "Python programming tutorial",
    "my favourite colour is blue",
    "Thank you for your patience",
    "An introduction to linear algebra",
    "The best hiking trails in Colorado",
]


def _out_of_catalogue_titles(catalog) -> list[str]:
    """Real films MovieLens 100K cannot hold (1999 or later, from the shipped demo catalogue), minus title collisions."""
    keys = {normalize_title(it.title) for it in catalog}
    return [it.title for it in demo_catalog() if (it.year or 0) >= 1999 and normalize_title(it.title) not in keys]


def smollm2_parse_and_ground(catalog, cache: Path) -> dict:
    """Parse rate of the real SmolLM2 fixtures in both modes; grounding of the movie titles to MovieLens 100K."""
    out: dict = {"by_penalty": {}}
    titles: list[str] = []
    for path in sorted((REPO / "tests" / "fixtures" / "llm_outputs").glob("smollm2_*.txt")):
        k = 10 if any(s in path.name for s in ("taylor", "spielberg", "fryman")) else 20
        penalty = path.stem.rsplit("_rp", 1)[1]
        text = path.read_text(encoding="utf-8")
        row = out["by_penalty"].setdefault(penalty, {"files": 0, "robust_items": 0, "robust_nonempty": 0,
                                                     "robust_ok": 0, "notebook_items": 0, "notebook_nonempty": 0,
                                                     "duplicates_removed": 0})
        robust, notebook = parse_list(text, k), parse_list(text, k, mode="fairllm-notebook")
        row["files"] += 1
        row["robust_items"] += len(robust.items)
        row["robust_nonempty"] += robust.status != "empty"
        row["robust_ok"] += robust.status == "ok"
        row["duplicates_removed"] += robust.duplicates_removed
        row["notebook_items"] += len(notebook.items)
        row["notebook_nonempty"] += notebook.status != "empty"
        if "_movie_" in path.name:
            titles += robust.items
    groundings = Grounder(catalog, embedding_cache_dir=cache).ground(titles)
    out["movie_titles_grounded_to_ml100k"] = grounding_summary(groundings)
    out["movie_grounding_examples"] = [(g.query, catalog.get(g.item_id).title if g.item_id else None, g.method,
                                        round(g.score, 3)) for g in groundings]
    return out


def score(catalog, groundings, targets) -> dict:
    """Precision/recall overall and per method against target item ids (None = must stay ungrounded)."""
    key = {it.item_id: normalize_title(it.title) for it in catalog}
    correct = [g.item_id is not None and t is not None and (g.item_id == t or key[g.item_id] == key[t])
               for g, t in zip(groundings, targets)]
    positives = sum(t is not None for t in targets)
    grounded = sum(g.item_id is not None for g in groundings)
    out = {
        "n": len(targets),
        "precision": sum(correct) / grounded if grounded else float("nan"),
        "recall": sum(correct) / positives if positives else float("nan"),
        "by_method": {},
    }
    for m in METHODS[:-1]:
        idx = [i for i, g in enumerate(groundings) if g.method == m]
        out["by_method"][m] = {
            "n": len(idx),
            "precision": (sum(correct[i] for i in idx) / len(idx)) if idx else None,
        }
    out["summary"] = grounding_summary(groundings)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "grounding.json"))
    args = ap.parse_args()
    data = Path(args.data)
    catalog, _ = load_movielens_100k(data / "ml-100k")
    raw_catalog, _ = load_movielens_100k(data / "ml-100k", title_style="raw")
    rng = np.random.default_rng(args.seed)
    sample = [catalog.items[i] for i in rng.choice(len(catalog), size=args.n, replace=False) if catalog.items[i].title != "unknown"]

    queries: dict[str, list[str]] = {}
    for kind in PERTURBATIONS:
        queries[kind] = [perturb_title(it.title, kind, rng, it.year) for it in sample]
    negatives = [random_string(rng, int(rng.integers(1, 4))) for _ in range(90)] + UNRELATED
    targets = [it.item_id for it in sample]

    out_of_catalogue = _out_of_catalogue_titles(catalog)
    settings = {
        "fuzzy-80": dict(use_embeddings=False, fuzzy_threshold=80.0),
        "fuzzy-85 (default, no embeddings)": dict(use_embeddings=False, fuzzy_threshold=85.0),
        "fuzzy-90": dict(use_embeddings=False, fuzzy_threshold=90.0),
        "fuzzy-95": dict(use_embeddings=False, fuzzy_threshold=95.0),
        "fuzzy-90 WRatio": dict(use_embeddings=False, fuzzy_threshold=90.0, fuzzy_scorer="WRatio"),
        "fuzzy-90 + emb-0.65": dict(fuzzy_threshold=90.0, embedding_threshold=0.65),
        "fuzzy-90 + emb-0.75": dict(fuzzy_threshold=90.0, embedding_threshold=0.75),
        "fuzzy-85 + emb-0.85, no number guard": dict(fuzzy_threshold=85.0, embedding_threshold=0.85, match_numbers=False),
        "fuzzy-90 + emb-0.85": dict(fuzzy_threshold=90.0, embedding_threshold=0.85),
        "fuzzy-85 + emb-0.75": dict(fuzzy_threshold=85.0, embedding_threshold=0.75),
        "fuzzy-85 + emb-0.85 (default)": dict(fuzzy_threshold=85.0, embedding_threshold=0.85),
    }
    results: dict = {"settings": {}, "speed": {}}
    cache = Path(tempfile.mkdtemp(prefix="recaudit-grounding-"))
    t = time.perf_counter()
    Grounder(catalog, embedding_cache_dir=cache).ground(["qzxv wplk"])  # embeds (and caches) the catalogue
    results["speed"]["catalog_embedding_s (ml-100k, 1682 titles, incl. model load)"] = round(time.perf_counter() - t, 2)
    for name, kw in settings.items():
        grounder = Grounder(catalog, embedding_cache_dir=cache, **kw)
        row = {kind: score(catalog, grounder.ground(q), targets) for kind, q in queries.items()}
        all_q = [q for qs in queries.values() for q in qs]
        row["all_perturbations"] = score(catalog, grounder.ground(all_q), targets * len(queries))
        neg = grounder.ground(negatives)
        row["random_strings_false_positive_rate"] = sum(g.item_id is not None for g in neg) / len(neg)
        ooc = grounder.ground(out_of_catalogue)
        row["out_of_catalogue_false_positive_rate"] = sum(g.item_id is not None for g in ooc) / len(ooc)
        row["out_of_catalogue_grounded_examples"] = [
            (g.query, catalog.get(g.item_id).title, g.method, round(g.score, 3)) for g in ooc if g.item_id is not None][:12]
        results["settings"][name] = {"params": dict(kw), **row}
        print(f"{name:38s} P={row['all_perturbations']['precision']:.3f} R={row['all_perturbations']['recall']:.3f} "
              f"FP(random)={row['random_strings_false_positive_rate']:.3f} "
              f"FP(out-of-catalogue)={row['out_of_catalogue_false_positive_rate']:.3f}", flush=True)

    # display titles → raw MovieLens titles (years stripped, article moved to the front)
    g = Grounder(raw_catalog, use_embeddings=False)
    results["display_to_raw_titles"] = score(raw_catalog, g.ground([it.title for it in sample]), targets)

    # speed: queries with two typos each, so nearly all go past the exact stage
    typo_q = [perturb_title(it.title, "typo2", rng, it.year) for it in catalog.items]
    latest, _ = load_movielens_latest_small(data / "ml-latest-small")
    for cat_name, cat in (("ml-100k (1682 items)", catalog), ("ml-latest-small (9742 items)", latest)):
        g = Grounder(cat, use_embeddings=False)
        t = time.perf_counter()
        g.ground(typo_q)
        results["speed"][f"exact+fuzzy titles/s vs {cat_name}"] = round(len(typo_q) / (time.perf_counter() - t), 1)
    g = Grounder(catalog, fuzzy_threshold=100.0, embedding_cache_dir=cache)  # nearly every query reaches embeddings
    t = time.perf_counter()
    g.ground(typo_q[:1000])
    results["speed"]["exact+fuzzy+embedding titles/s vs ml-100k (1000 typo queries)"] = round(1000 / (time.perf_counter() - t), 1)
    results["smollm2_fixtures"] = smollm2_parse_and_ground(catalog, cache)
    shutil.rmtree(cache, ignore_errors=True)
    results["machine"] = {"python": platform.python_version(), "cpu_count": os.cpu_count(),
                          "torch_threads": __import__("torch").get_num_threads(), "note": "shared 2-core CPU"}
    results["n_sampled_items"] = len(sample)
    results["seed"] = args.seed
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(json.dumps(results["speed"], indent=2))
    print(json.dumps(results["display_to_raw_titles"], indent=2)[:400])


if __name__ == "__main__":
    main()
