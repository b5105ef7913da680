"""What the item-side probes (item_fairness, exposure) share: users' splits, prompts, grounding, baselines.

Users and splits: a user's *liked* items are those rated above ``liked_threshold`` (default 3,
"rating > 3"), in time order. The last ``n_heldout`` liked items are held out (the targets of
candidate sets and of the hit rate); the ``history_len`` liked items before them are the history
shown in the prompt. Training data for popularity and for the classical baselines is every
interaction except, for sampled users, everything from their first held-out item on (a
temporal split, so nothing after the held-out time leaks into training).
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np
from pydantic import Field, field_validator

from recaudit.baselines import BASELINES, make_baseline
from recaudit.checks import CheckContext, CheckParams
from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.text.ground import DEFAULT_EMBEDDING_THRESHOLD, DEFAULT_FUZZY_THRESHOLD, Grounder, Grounding
from recaudit.text.parse import ParsedList
from recaudit.text.prompts import load_prompt_file, merge_overrides

PROMPT_FILE = "item_prompts.yaml"
BaselineName = Literal["toppop", "itemknn", "bpr"]
_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")


class ItemProbeParams(CheckParams):
    """Settings shared by the item-side probes."""

    n_users: int = Field(30, ge=1, description="users sampled (seeded) among those with enough liked items")
    history_len: int = Field(10, ge=1, description="liked items shown as the user's history (the most recent)")
    min_history: int = Field(3, ge=1, description="users need at least this many liked items before the held-out ones")
    n_heldout: int = Field(1, ge=1, description="most recent liked items held out (candidate positives, hit rate)")
    liked_threshold: float = Field(3.0, description="an interaction is 'liked' when rating > liked_threshold")
    k: int = Field(10, ge=1, le=100, description="list length asked for")
    baselines: list[BaselineName] = Field(
        default_factory=lambda: ["toppop", "itemknn", "bpr"], description="classical baselines on the same users ([] = off)"
    )
    baseline_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="constructor options per baseline, e.g. {bpr: {factors: 64}}"
    )
    n_bootstrap: int = Field(1000, ge=0, description="bootstrap resamples over users (0 = no CIs)")
    n_permutations: int = Field(
        2000, ge=0, description="sign flips / label swaps over users per test (all 2^n when fewer; 0 = no tests)"
    )
    alpha: float = Field(0.05, gt=0, lt=1, description="level of the tests (power disclosure, flags)")
    ci_level: float = Field(0.95, gt=0, lt=1)
    max_new_tokens: int = Field(200, ge=1)
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    repetition_penalty: float = Field(1.3, gt=0, description="1.3 keeps SmolLM2-135M from repeating one title")
    item_noun: str = Field("movies", min_length=1, description="what the catalogue holds, as used in the prompts")
    use_embeddings: bool = Field(True, description="ground with MiniLM embeddings after exact/fuzzy matching")
    fuzzy_threshold: float = Field(DEFAULT_FUZZY_THRESHOLD, ge=0, le=100, description="rapidfuzz score to accept")
    embedding_threshold: float = Field(DEFAULT_EMBEDDING_THRESHOLD, ge=-1, le=1, description="MiniLM cosine to accept")
    prompts: dict[str, Any] | None = Field(None, description="overrides of item_prompts.yaml (same keys)")
    n_examples: int = Field(4, ge=0)

    @field_validator("baselines")
    @classmethod
    def _unique_baselines(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"baselines must not repeat, got {v}")
        return v

    @field_validator("baseline_options")
    @classmethod
    def _known_baselines(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        unknown = set(v) - set(BASELINES)
        if unknown:
            raise ValueError(f"baseline_options: unknown baselines {sorted(unknown)}; known {sorted(BASELINES)}")
        return v

    def generation_settings(self) -> dict[str, Any]:
        """Request settings for every prompt of the probe."""
        return dict(
            max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
            repetition_penalty=self.repetition_penalty, seed=self.seed,
        )


# --- users ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSplit:
    """One sampled user: history shown in the prompt, held-out liked items, items interacted with."""

    user_id: str
    history: tuple[str, ...]
    heldout: tuple[str, ...]
    seen: frozenset[str]
    split_time: float


def split_users(interactions: Interactions, p: ItemProbeParams, check: str) -> list[UserSplit]:
    """The sampled users' splits (deterministic for ``p.seed``); ValueError when too few users qualify."""
    frame = interactions.frame
    liked = frame[frame["rating"] > p.liked_threshold].sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    per_user = liked.groupby("user_id", sort=False)
    need = p.min_history + p.n_heldout
    counts = per_user.size()
    eligible = sorted(counts[counts >= need].index.tolist(), key=_natural)
    if not eligible:
        raise ValueError(
            f"check {check!r}: no user has {need} liked items (rating > {p.liked_threshold}); "
            "lower min_history/n_heldout or liked_threshold"
        )
    rng = np.random.default_rng(p.seed)
    chosen = eligible if p.n_users >= len(eligible) else [eligible[i] for i in sorted(rng.choice(len(eligible), p.n_users, replace=False))]
    seen_by_user = frame.groupby("user_id")["item_id"].agg(frozenset)
    out = []
    for user in chosen:
        rows = per_user.get_group(user)
        items, times = rows["item_id"].tolist(), rows["timestamp"].tolist()
        cut = len(items) - p.n_heldout
        out.append(UserSplit(
            user_id=str(user), history=tuple(items[max(0, cut - p.history_len) : cut]),
            heldout=tuple(items[cut:]), seen=seen_by_user[user], split_time=float(times[cut]),
        ))
    return out


def training_interactions(interactions: Interactions, splits: Sequence[UserSplit]) -> Interactions:
    """Interactions without the sampled users' rows from their first held-out item's time on."""
    frame = interactions.frame
    cut = frame["user_id"].map({s.user_id: s.split_time for s in splits})
    keep = cut.isna() | (frame["timestamp"] < cut)
    return Interactions(frame[keep].reset_index(drop=True), interactions.users, f"{interactions.name}:train")


def user_rng(seed: int, user_id: str, salt: int = 0) -> np.random.Generator:
    """A generator private to (seed, user, salt): a user's draws do not depend on who else was sampled."""
    return np.random.default_rng([seed, zlib.crc32(user_id.encode("utf-8")), salt])


def candidate_set(
    split: UserSplit, catalog: Catalog, n_candidates: int, seed: int, negative_sampling: str = "uniform"
) -> list[str]:
    """The user's held-out positives plus sampled unseen items, shuffled (deterministic per user)."""
    rng = user_rng(seed, split.user_id, salt=1)
    positives = [i for i in split.heldout if i in catalog]
    pool = [it for it in catalog.items if it.item_id not in split.seen]
    n_neg = min(max(n_candidates - len(positives), 0), len(pool))
    if negative_sampling == "popularity":
        w = np.array([it.popularity for it in pool], dtype=float) + 1.0
        negatives = rng.choice(len(pool), size=n_neg, replace=False, p=w / w.sum()) if n_neg else []
    else:
        negatives = rng.choice(len(pool), size=n_neg, replace=False) if n_neg else []
    items = positives + [pool[j].item_id for j in negatives]
    return [items[j] for j in rng.permutation(len(items))]


# --- catalogue views -------------------------------------------------------------------------


def popularity_membership(catalog: Catalog, train: Interactions, n_buckets: int) -> tuple[dict[str, list[str]], list[str]]:
    """Item -> [bucket label] with equal-size buckets by training popularity; labels b0 (least popular) first."""
    buckets = catalog.with_popularity(train).popularity_buckets(n_buckets)
    labels = [f"b{b}" for b in range(n_buckets)]
    return {item: [labels[b]] for item, b in buckets.items()}, labels


def genre_membership(catalog: Catalog) -> tuple[dict[str, list[str]], list[str]]:
    """Item -> its genres, and all genres (sorted)."""
    return {it.item_id: list(it.genres) for it in catalog.items}, catalog.genres()


def safe_title(item: Item) -> str:
    """The item's title on one line, with its year when known (untrusted text: no line breaks)."""
    title = _CONTROL.sub(" ", item.title).strip()
    return f"{title} ({item.year})" if item.year and f"({item.year})" not in title else title


def bullet_list(catalog: Catalog, item_ids: Sequence[str]) -> str:
    """One '- Title (Year)' line per item."""
    return "\n".join(f"- {safe_title(catalog.get(i))}" for i in item_ids)


def top_genres(catalog: Catalog, item_ids: Sequence[str], n: int = 3) -> str:
    """The user's ``n`` most frequent history genres, joined with commas (ties by name)."""
    counts = Counter(g for i in item_ids for g in catalog.get(i).genres)
    best = sorted(counts, key=lambda g: (-counts[g], g))[:n]
    return ", ".join(best) if best else "any"


def sub_catalog(catalog: Catalog, item_ids: Sequence[str], name: str) -> Catalog:
    """The items ``item_ids`` as their own catalogue (candidate-mode grounding)."""
    return Catalog([catalog.get(i) for i in item_ids], name=name)


# --- prompts ---------------------------------------------------------------------------------


def load_prompts(overrides: dict[str, Any] | None, where: str) -> dict[str, Any]:
    """item_prompts.yaml with the config's overrides merged in."""
    return merge_overrides(load_prompt_file(PROMPT_FILE, "recaudit.probes"), overrides, where)


# --- answers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class GroundedAnswer:
    """One response: the parsed titles, their groundings, and the grounded item ids (unique, in order)."""

    parsed: ParsedList
    groundings: list[Grounding]
    items: list[str]


def ground_answer(parsed: ParsedList, grounder: Grounder) -> GroundedAnswer:
    """Ground each title of a parsed answer (``check_parsing.parse_answer``: the one parser) with
    the one grounding step, de-duplicate ids."""
    groundings = grounder.ground(parsed) if parsed.items else []  # the parse carries years and uncut titles
    items = list(dict.fromkeys(g.item_id for g in groundings if g.item_id is not None))
    return GroundedAnswer(parsed, groundings, items)


def grounded_outcome(answer: GroundedAnswer) -> str:
    """An item answer is usable when it parsed to the full list and every title grounded to an item."""
    if answer.parsed.status != "ok":
        return "unparsed"
    return "usable" if all(g.item_id is not None for g in answer.groundings) else "ungrounded"


def make_grounder(catalog: Catalog, p: ItemProbeParams) -> Grounder:
    """A Grounder with the probe's thresholds."""
    return Grounder(
        catalog, use_embeddings=p.use_embeddings, fuzzy_threshold=p.fuzzy_threshold,
        embedding_threshold=p.embedding_threshold,
    )


def grounding_counts(answers: Sequence[GroundedAnswer]) -> dict[str, int]:
    """Titles per grounding method plus answers per parse status."""
    methods = Counter(g.method for a in answers for g in a.groundings)
    status = Counter(a.parsed.status for a in answers)
    return {
        "titles": sum(methods.values()),
        **{f"method.{m}": methods.get(m, 0) for m in ("exact", "fuzzy", "embedding", "ungrounded")},
        **{f"parse.{s}": status.get(s, 0) for s in ("ok", "short", "empty")},
    }


def grounded_rate(answers: Sequence[GroundedAnswer]) -> float:
    """Share of parsed titles that were grounded to a catalogue item (NaN when nothing parsed)."""
    titles = [g for a in answers for g in a.groundings]
    return float(np.mean([g.item_id is not None for g in titles])) if titles else float("nan")


def hit_rate(lists: Sequence[Sequence[str]], splits: Sequence[UserSplit]) -> float:
    """Share of users with at least one held-out liked item in their list."""
    hits = [bool(set(items) & set(s.heldout)) for items, s in zip(lists, splits)]
    return float(np.mean(hits)) if hits else float("nan")


# --- baselines -------------------------------------------------------------------------------


def baseline_lists(
    ctx: CheckContext,
    p: ItemProbeParams,
    train: Interactions,
    splits: Sequence[UserSplit],
    candidates: dict[str, list[str]] | None = None,
) -> dict[str, list[list[str]]]:
    """Each configured baseline fitted on ``train``: its top-k per sampled user (within candidates if given)."""
    out: dict[str, list[list[str]]] = {}
    for name in ctx.progress(p.baselines, "fit baselines", len(p.baselines)):
        options = dict(p.baseline_options.get(name, {}))
        if name == "bpr":
            options.setdefault("seed", p.seed)
        model = make_baseline(name, **options).fit(train)
        out[name] = [
            model.recommend(s.user_id, p.k, exclude_seen=True, candidates=None if candidates is None else candidates[s.user_id])
            for s in splits
        ]
    return out


def ci_or_none(x: float | None) -> float | None:
    """A CI bound for MetricValue: None when there is none (NaN from n_bootstrap = 0)."""
    return None if x is None or not np.isfinite(x) else float(x)


def _natural(s: str) -> tuple:
    return (0, int(s), "") if s.isdigit() else (1, 0, s)
