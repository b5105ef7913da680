"""Xu et al.'s comparison on the same people: audit users' own histories, each given with a name of their gender.

``population: interactions``: users are sampled from the audit data (MovieLens 100K with u.user),
balanced by recorded gender; each user's interactions are split leave-last-out (the split the
classical side uses), the latest ``history_len`` training items are shown to the LLM with a Faker
name of the user's gender (the gender is only implied: implicit), and the held-out item is the
single relevant item of NDCG@K / MRR@K. The classical recommenders are fitted on the training
split of every user, with the users' explicit attributes where the model takes them
(``attribute_pop``), and scored on the same users and held-out items (explicit). The gender test
permutes labels within activity strata (terciles of history length), on both sides: NDCG after
leave-last-out depends on how much history a user has, and activity differs by gender.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np

from recaudit.adapters.base import Request
from recaudit.data.catalog import Catalog, Interactions
from recaudit.data.names import NameRecord, faker_names
from recaudit.metrics.ranking import mrr_at_k, ndcg_at_k
from recaudit.probes.implicit_names_stats import NameUnit, group_metrics, headline, holm_by_family
from recaudit.probes.implicit_names_tables import group_rows
from recaudit.results import CheckResult, GroupTable, MetricValue
from recaudit.text.parse import ParsedList

SAME_USERS_PROTOCOL = (
    "same-users: leave-last-out on the audit users; LLM = the user's history with a name implying the "
    "recorded gender (implicit), classical = fitted with the users' explicit attributes (explicit); "
    "relevant = the user's held-out latest item; gender labels permuted within activity terciles"
)
_GENDER = {"F": "female", "M": "male", "female": "female", "male": "male"}


@dataclass(frozen=True)
class HistoryUser:
    """One audit user as the LLM sees them: a name of their gender and their training history."""

    user_id: str
    record: NameRecord
    history: tuple[str, ...]  # item ids, oldest first
    held_out: str
    stratum: str  # activity tercile


def history_users(interactions: Interactions | None, n_per_gender: int, locale: str, seed: int,
                  min_history: int = 2) -> tuple[list[HistoryUser], Interactions, dict[str, str]]:
    """Sampled users (balanced by gender), the training split and every user's held-out item."""
    from recaudit.probes.explicit_unfairness import leave_last_out

    if interactions is None or interactions.users is None or "gender" not in interactions.users.columns:
        raise ValueError("implicit_names population 'interactions' needs audit data with user genders "
                         "(e.g. MovieLens 100K u.user)")
    train, held = leave_last_out(interactions)
    frame = train.frame.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    hist = {u: tuple(g["item_id"]) for u, g in frame.groupby("user_id")}
    genders = interactions.users["gender"].astype(str).map(_GENDER)
    eligible = [u for u in sorted(held) if len(hist.get(u, ())) >= min_history and isinstance(genders.get(u), str)]
    rng = np.random.default_rng(seed)
    chosen: list[str] = []
    for g in ("female", "male"):
        pool = [u for u in eligible if genders[u] == g]
        if len(pool) < n_per_gender:
            raise ValueError(f"population 'interactions': {n_per_gender} {g} users asked for, "
                             f"{len(pool)} have ≥ {min_history} training interactions")
        chosen += [pool[i] for i in sorted(rng.choice(len(pool), n_per_gender, replace=False))]
    names = faker_names([locale], per_gender=n_per_gender, seed=seed)
    by_gender = {g: [r for r in names if r.gender == g] for g in ("female", "male")}
    lengths = np.array([len(hist[u]) for u in chosen])
    cuts = np.quantile(lengths, [1 / 3, 2 / 3])
    out = []
    for u, n in zip(chosen, lengths):
        rec = by_gender[genders[u]].pop(0)
        out.append(HistoryUser(u, rec, hist[u], held[u], f"activity{int(np.searchsorted(cuts, n, side='right'))}"))
    return out, train, held


def history_text(user: HistoryUser, catalog: Catalog, history_len: int) -> str:
    """The latest ``history_len`` training items as '; '-joined titles with years, oldest first."""
    shown = [catalog.get(i) for i in user.history[-history_len:] if i in catalog]
    return "; ".join(f"{it.title} ({it.year})" if it.year else it.title for it in shown)


def history_relevance(grounded: Sequence[str | None], held_out: str, k: int) -> tuple[float, float]:
    """NDCG@K (one relevant item) and MRR@K of the held-out item among the grounded answer items."""
    rel = [1.0 if g == held_out else 0.0 for g in grounded[:k]]
    return ndcg_at_k(rel, k, n_relevant=1), mrr_at_k(rel, k)


def check_history_params(p: Any) -> None:
    """population 'interactions' runs one design: movies, the implicit condition, gender groups."""
    if p.domains != ["movies"] or p.conditions != ["implicit"] or p.group_by != ["gender"]:
        raise ValueError("implicit_names population 'interactions' needs domains [movies], conditions [implicit] "
                         f"and group_by [gender]; got {p.domains}, {p.conditions}, {p.group_by}")


def history_requests(p: Any, prompts: dict, users: Sequence[HistoryUser], catalog: Catalog,
                     settings: dict) -> list[Request]:
    """One request per user: the history prompt with the user's gender-implying name."""
    tpl = prompts["history"]
    out = []
    for idx, u in enumerate(users):
        text = tpl["user"].format(k=p.k, user=u.record.name, history=history_text(u, catalog, p.history_len))
        meta = (("domain", "movies"), ("unit", str(idx)), ("name", u.record.name), ("gender", u.record.gender),
                ("region", u.record.region), ("locale", u.record.locale), ("condition", "implicit"),
                ("interest", ""), ("user_id", u.user_id), ("stratum", u.stratum))
        out.append(Request.chat(text, system=tpl["system"], metadata=meta, **settings))
    return out


def evaluate_history(result: CheckResult, p: Any, users: Sequence[HistoryUser], parsed: Sequence[ParsedList],
                     catalog: Catalog, interactions: Interactions, train: Interactions, held: dict[str, str],
                     use_embeddings: bool = True) -> None:
    """Ground each answer, score the held-out item, and add U-NDCG/U-MRR (+ the classical side) to ``result``."""
    from recaudit.text.ground import Grounder

    grounder = Grounder(catalog, use_embeddings=use_embeddings)
    units, n_items, n_grounded = [], 0, 0
    for u, pl in zip(users, parsed):
        ids = [g.item_id for g in grounder.ground(pl)] if pl.items else []
        ndcg, mrr = history_relevance(ids, u.held_out, p.k)
        n_items, n_grounded = n_items + len(ids), n_grounded + sum(i is not None for i in ids)
        units.append(NameUnit(u.record, np.zeros(1), [ndcg], [mrr], [pl.ok], [sum(i is not None for i in ids)],
                              [len(ids)], stratum=u.stratum))
    result.metrics.append(MetricValue(
        name="grounded_rate.movies", value=n_grounded / n_items if n_items else float("nan"), n=n_items,
        direction="higher_is_better", description="share of parsed movie titles grounded to a catalogue item"))
    implicit = group_metrics(units, "gender", "movies", "implicit", p, unit_label="users per gender per activity stratum",
                             distances=False, relevance=f"relevant = the user's held-out latest item; {SAME_USERS_PROTOCOL}")
    holm_by_family(implicit)
    result.metrics += implicit
    if implicit:
        result.metrics.append(headline(f"implicit.u_ndcg@{p.k}.max", [m for m in implicit if "u_ndcg" in m.name],
                                       "users per gender per activity stratum"))
    result.tables.append(GroupTable(
        name="by_group", columns=["domain", "condition", "grouping", "group", "n_names", f"ndcg@{p.k}", f"mrr@{p.k}",
                                  "parse_rate", "grounded_rate", "top_category", "top_share"],
        rows=group_rows(units, "gender", "movies", "implicit", [""], p.k),
        description=f"Per gender of the audit users (names imply it); {SAME_USERS_PROTOCOL}."))
    result.notes.append(f"{len(users)} audit users of {interactions.name} with their own histories (last "
                        f"{p.history_len} training items) and a name of their recorded gender; protocol: {SAME_USERS_PROTOCOL}.")
    if p.classical:
        metrics, tables, notes = classical_same_users(interactions, users, train, held, p, implicit)
        result.metrics += metrics
        result.tables += tables
        result.notes += notes


def classical_same_users(interactions: Interactions, users: Sequence[HistoryUser], train: Interactions,
                         held: dict[str, str], p: Any, implicit: Sequence,
                         recommenders: Mapping[str, Any] | None = None) -> tuple[list, list, list[str]]:
    """The classical side scored on exactly ``users``: explicit metrics, tables and a note.

    ``recommenders``: fitted-here models by name instead of ``p.classical``'s baselines.
    """
    from recaudit.probes.explicit_unfairness import build_recommenders, comparison_table, explicit_unfairness

    assert interactions.users is not None  # history_users checked it
    recs = dict(recommenders) if recommenders is not None else \
        build_recommenders(p.classical, interactions.users, p.classical_attributes, p.seed)
    ids = [u.user_id for u in users]
    strata = {u.user_id: u.stratum for u in users}
    res = explicit_unfairness(interactions, recs, k=p.k, attributes=p.classical_attributes,
                              n_permutations=p.n_permutations, seed=p.seed,
                              held_out=(train, {u: held[u] for u in ids}), strata=strata, protocol=SAME_USERS_PROTOCOL)
    ranking = [m for m in implicit if m.name.split(".")[1].startswith(("u_ndcg", "u_mrr"))]
    note = (f"Classical side on the same {len(ids)} users as the LLM ({', '.join(recs)}), K = {p.k}; "
            f"protocol: {SAME_USERS_PROTOCOL}.")
    return res.metrics, [res.table, comparison_table(ranking, res.metrics, SAME_USERS_PROTOCOL)], [note]


__all__ = ["HistoryUser", "SAME_USERS_PROTOCOL", "classical_same_users", "history_relevance", "history_text",
           "history_users"]
