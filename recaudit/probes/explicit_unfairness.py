"""Explicit user unfairness of classical recommenders: the other side of Xu et al.'s comparison.

Xu et al. (arXiv 2311.07054) hold the LLM's *implicit* unfairness (attributes only implied by a
name) against the *explicit* unfairness of classical recommenders trained with the users'
attributes, on U-NDCG@K / U-MRR@K (max − min over groups of the mean per-user NDCG / MRR). This
module computes the classical side on data with user attributes (MovieLens 100K ``u.user``:
gender, age, occupation), with recaudit's own baselines (TopPop, ItemKNN, BPR-MF, attribute-blind)
and ``AttributeGroupPop`` (popularity within the user's own attribute group: the attributes are
an explicit input). The protocol is named in every result (``PROTOCOL``): the paper trained DCN,
STAMP and GRU4Rec on its own news/job data, so the figures are of the same measure, not the
same models.

Uncertainty: the unit is the user; p-values permute group labels over users, within strata when
given (exact floor and MDE through ``implicit_names_stats.gap_test``); p_adj = Holm over the
attributes × measures of one recommender. ``protocol`` names the evaluation in every metric; the
same-users comparison (``implicit_names_history``) scores the LLM's users only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from recaudit.baselines import make_baseline
from recaudit.baselines.base import IndexedRecommender
from recaudit.data.catalog import Interactions
from recaudit.probes.implicit_names_stats import gap_test, holm_family
from recaudit.results import GroupTable, MetricValue

PROTOCOL = "leave-last-out (each user's latest interaction held out), full ranking of unseen items"
AGE_BUCKETS = ((0, 18, "<18"), (18, 25, "18-24"), (25, 35, "25-34"), (35, 45, "35-44"), (45, 50, "45-49"),
               (50, 56, "50-55"), (56, 200, "56+"))  # MovieLens 1M's age groups
ATTRIBUTES = ("gender", "age", "occupation")


def age_bucket(age: float) -> str:
    """MovieLens 1M's age group of an age in years."""
    for lo, hi, label in AGE_BUCKETS:
        if lo <= age < hi:
            return label
    return "unknown"


def user_groups(users: pd.DataFrame, attribute: str) -> dict[str, str]:
    """user id -> group label of ``attribute`` (ages bucketed) from an Interactions.users frame."""
    if attribute not in users.columns:
        raise ValueError(f"user attribute {attribute!r} missing; the users table has {sorted(users.columns)}")
    col = users[attribute]
    labels = col.map(age_bucket) if attribute == "age" else col.astype(str)
    return {str(u): str(g) for u, g in labels.items()}


class AttributeGroupPop(IndexedRecommender):
    """Most popular items among users of the same attribute group (the explicit attribute is an input)."""

    name = "attribute_pop"

    def __init__(self, groups: Mapping[str, str], min_rating: float | None = None):
        super().__init__(min_rating)
        self.groups = dict(groups)

    def _fit(self) -> None:
        labels = np.array([self.groups.get(str(u), "") for u in self.user_ids], dtype=object)
        self._group_of = labels
        self._by_group = {
            g: np.asarray(self.positives[labels == g].sum(axis=0)).ravel().astype(float) for g in np.unique(labels)
        }

    def scores(self, user: int) -> np.ndarray:
        return self._by_group[self._group_of[user]]


def leave_last_out(interactions: Interactions) -> tuple[Interactions, dict[str, str]]:
    """Training interactions and each user's held-out latest item (users with one interaction are skipped)."""
    frame = interactions.frame.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    last = frame.groupby("user_id").tail(1)
    counts = frame.groupby("user_id")["item_id"].transform("size")
    keep = counts.loc[last.index] > 1
    last = last[keep.to_numpy()]
    train = frame.drop(index=last.index)
    return Interactions(train.reset_index(drop=True), users=interactions.users, name=f"{interactions.name}-train"), \
        dict(zip(last["user_id"], last["item_id"]))


def rank_metrics(rec: IndexedRecommender, held_out: Mapping[str, str], k: int) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Users, NDCG@K and MRR@K of each user's held-out item in the recommender's top K."""
    users = sorted(held_out)
    ndcg, mrr = np.zeros(len(users)), np.zeros(len(users))
    for i, u in enumerate(users):
        top = rec.recommend(u, k)
        if held_out[u] in top:
            r = top.index(held_out[u]) + 1
            ndcg[i], mrr[i] = 1.0 / math.log2(r + 1), 1.0 / r
    return users, ndcg, mrr


@dataclass
class ExplicitUnfairness:
    """The classical side: metrics per recommender × attribute × measure, and a per-group table."""

    metrics: list[MetricValue]
    table: GroupTable
    protocol: str = PROTOCOL


def default_recommenders(users: pd.DataFrame, attribute: str = "gender", seed: int = 0) -> dict[str, IndexedRecommender]:
    """TopPop, ItemKNN, BPR-MF (attribute-blind) and AttributeGroupPop over ``attribute``."""
    return {
        "toppop": make_baseline("toppop"), "itemknn": make_baseline("itemknn"),
        "bpr": make_baseline("bpr", seed=seed), f"attribute_pop.{attribute}": AttributeGroupPop(user_groups(users, attribute)),
    }


def explicit_unfairness(
    interactions: Interactions,
    recommenders: Mapping[str, IndexedRecommender],
    k: int = 10,
    attributes: Sequence[str] = ATTRIBUTES,
    n_permutations: int = 1000,
    seed: int = 0,
    held_out: tuple[Interactions, dict[str, str]] | None = None,
    strata: Mapping[str, str] | None = None,
    protocol: str = PROTOCOL,
) -> ExplicitUnfairness:
    """U-NDCG@K and U-MRR@K of each fitted-here recommender over each user attribute, with tests.

    ``held_out``: (training interactions, user -> held-out item); only those users are scored.
    ``strata``: user -> stratum; group labels are permuted within strata (default: one stratum).
    """
    if interactions.users is None:
        raise ValueError("explicit unfairness needs user attributes (Interactions.users), e.g. MovieLens 100K u.user")
    train, test = held_out or leave_last_out(interactions)
    groups = {a: user_groups(interactions.users, a) for a in attributes}
    metrics: list[MetricValue] = []
    rows: list[list] = []
    for r_idx, (name, rec) in enumerate(recommenders.items()):
        rec.fit(train)
        users, ndcg, mrr = rank_metrics(rec, test, k)
        stratum = np.unique([(strata or {}).get(u, "") for u in users], return_inverse=True)[1]
        family: list[MetricValue] = []
        for a_idx, attr in enumerate(attributes):
            lab = np.array([groups[attr].get(u, "unknown") for u in users])
            codes = np.unique(lab, return_inverse=True)[1]
            n_groups = int(codes.max()) + 1
            for measure, vals in ((f"u_ndcg@{k}", ndcg), (f"u_mrr@{k}", mrr)):
                # the same permutations for both measures of one attribute (same seed)
                test_ = gap_test(vals, codes, stratum, n_permutations, np.random.default_rng([seed, r_idx, a_idx]),
                                 "users")
                extra = dict(p_value=test_.p_value, **test_.fields) if test_ else {}
                mv = MetricValue(
                    name=f"classical.{name}.{measure}.{attr}", value=float(np.ptp(_group_means(vals, codes))),
                    n=len(users), direction="lower_is_better", variant=f"classical:{name}",
                    description=f"max − min over {attr} groups of mean {measure.split('@')[0][2:].upper()}@{k} "
                    f"of {name} ({protocol})", **extra,
                )
                metrics.append(mv)
                family.append(mv)
            for g in range(n_groups):
                members = codes == g
                rows.append([name, attr, str(np.unique(lab)[g]), int(members.sum()), float(ndcg[members].mean()),
                             float(mrr[members].mean())])
        if any(m.p_value is not None for m in family):
            holm_family(family, f"classical.{name}.*")
    table = GroupTable(
        name="explicit_by_group", columns=["recommender", "attribute", "group", "n_users", f"ndcg@{k}", f"mrr@{k}"],
        rows=rows, description=f"Classical recommenders per user group; protocol: {protocol}.",
    )
    return ExplicitUnfairness(metrics, table, protocol)


def _group_means(values: np.ndarray, codes: np.ndarray) -> np.ndarray:
    return np.array([values[codes == g].mean() for g in np.unique(codes)])


def comparison_table(implicit: Sequence[MetricValue], explicit: Sequence[MetricValue],
                     protocol: str = PROTOCOL) -> GroupTable:
    """The paper's comparison: the LLM's implicit U-NDCG/U-MRR beside each classical recommender's explicit one."""
    rows = []
    for im in implicit:
        cond, measure, grouping = im.name.split(".")[:3]
        for ex in explicit:
            parts = ex.name.split(".")  # classical.<recommender (may hold dots)>.<measure>.<attribute>
            at = next(i for i, part in enumerate(parts) if part.startswith("u_"))
            rec, ex_measure, attr = ".".join(parts[1:at]), parts[at], parts[-1]
            if ex_measure.split("@")[0] == measure.split("@")[0] and attr == grouping:
                rows.append([grouping, measure.split("@")[0], im.value, im.p_value, rec, ex.value, ex.p_value,
                             im.value - ex.value])
    return GroupTable(
        name="implicit_vs_classical",
        columns=["grouping", "measure", "llm_implicit", "llm_p", "classical", "classical_explicit", "classical_p",
                 "implicit_minus_explicit"],
        rows=rows, description=f"Xu et al.'s comparison: the LLM's gap from names alone vs classical recommenders' gap "
        f"with attributes as inputs ({protocol}; K may differ: read the measure names).",
    )


def build_recommenders(names: Sequence[str], users: pd.DataFrame, attributes: Sequence[str],
                       seed: int = 0) -> dict[str, IndexedRecommender]:
    """Baselines by name; ``attribute_pop`` expands to one attribute-group popularity per attribute."""
    out: dict[str, IndexedRecommender] = {}
    for name in names:
        if name == "attribute_pop":
            for attr in attributes:
                out[f"attribute_pop.{attr}"] = AttributeGroupPop(user_groups(users, attr))
        else:
            out[name] = make_baseline(name, **({"seed": seed} if name == "bpr" else {}))
    return out


def classical_side(interactions: Interactions | None, names: Sequence[str], attributes: Sequence[str], k: int,
                   n_permutations: int, seed: int, implicit: Sequence[MetricValue]) -> tuple[list[MetricValue], list[GroupTable], list[str]]:
    """What the implicit-name probe adds for Xu et al.'s comparison: explicit metrics, tables, notes."""
    if interactions is None or interactions.users is None:
        raise ValueError("implicit_names.classical needs audit data with user attributes (e.g. MovieLens 100K u.user)")
    recs = build_recommenders(names, interactions.users, attributes, seed)
    res = explicit_unfairness(interactions, recs, k=k, attributes=attributes, n_permutations=n_permutations, seed=seed)
    ranking = [m for m in implicit if m.name.split(".")[1].startswith(("u_ndcg", "u_mrr"))]
    notes = [
        f"Classical side (Xu et al.'s comparison): {', '.join(recs)} on {interactions.name}, {PROTOCOL}, K = {k}; "
        "the LLM side's users are name-only users of the implicit prompts, so the two sides share the measure and "
        "the attribute, not the people or the relevance labels.",
    ]
    return res.metrics, [res.table, comparison_table(ranking, res.metrics)], notes
