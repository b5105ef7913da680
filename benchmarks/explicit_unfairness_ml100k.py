"""Explicit unfairness of classical recommenders on MovieLens 100K (Xu et al.'s comparison side).

TopPop, ItemKNN, BPR-MF and attribute-group popularity (gender, age group, occupation), leave-last-out,
full ranking; U-NDCG@10 / U-MRR@10 over gender, age group and occupation with permutation p (Holm per
recommender). ``same_users``: the same recommenders scored only on the users the implicit_names
probe's same-users design (``population: interactions``) samples — 50 women and 50 men, seed 0 —
at the same K, gender labels permuted within activity terciles: the classical rows of Xu et al.'s
comparison on the LLM's own people (the LLM rows need a model run:
``implicit_names`` with ``population: interactions, domains: [movies], conditions: [implicit],
group_by: [gender], locales: [en_US], classical: [toppop, itemknn, bpr, attribute_pop]`` on ml-100k).
Run: ``PYTHONPATH=. python benchmarks/explicit_unfairness_ml100k.py [ml-100k dir]``
→ benchmarks/results/explicit_unfairness_ml100k.json.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from recaudit.baselines import make_baseline
from recaudit.data.loaders import load_movielens_100k
from recaudit.probes.explicit_unfairness import PROTOCOL, AttributeGroupPop, explicit_unfairness, user_groups
from recaudit.probes.implicit_names import ImplicitNamesParams
from recaudit.probes.implicit_names_history import SAME_USERS_PROTOCOL, classical_same_users, history_users


def _recommenders(inter) -> dict:
    recs = {"toppop": make_baseline("toppop"), "itemknn": make_baseline("itemknn"), "bpr": make_baseline("bpr", seed=0)}
    for attr in ("gender", "age", "occupation"):
        recs[f"attribute_pop.{attr}"] = AttributeGroupPop(user_groups(inter.users, attr))
    return recs


def _rows(metrics) -> dict:
    return {m.name: dict(value=round(m.value, 4), p=m.p_value, p_adj=m.p_adj, p_floor=m.p_floor,
                         mde=None if m.mde is None else round(m.mde, 4), n=m.n) for m in metrics}


def same_users(inter, n_per_gender: int = 50, seed: int = 0) -> dict:
    """The classical side on exactly the users of the probe's same-users design."""
    params = ImplicitNamesParams(population="interactions", domains=["movies"], conditions=["implicit"],
                                 group_by=["gender"], locales=["en_US"], n_users=n_per_gender, k=10,
                                 n_permutations=1000, seed=seed, classical=["toppop"])
    users, train, held = history_users(inter, n_per_gender, "en_US", seed)
    metrics, tables, _ = classical_same_users(inter, users, train, held, params, implicit=[],
                                              recommenders=_recommenders(inter))
    return dict(protocol=SAME_USERS_PROTOCOL, n_users=len(users), metrics=_rows(metrics),
                groups=tables[0].as_records())


def main(directory: str) -> dict:
    t0 = time.time()
    _, inter = load_movielens_100k(directory)
    res = explicit_unfairness(inter, _recommenders(inter), k=10, n_permutations=1000, seed=0)
    return dict(
        protocol=PROTOCOL, data="MovieLens 100K (943 users, u.user attributes)", k=10,
        metrics=_rows(res.metrics), groups=res.table.as_records(), same_users=same_users(inter),
        seconds=round(time.time() - t0, 1),
    )


if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/ml-100k"
    out = main(d)
    Path(__file__).parent.joinpath("results", "explicit_unfairness_ml100k.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k not in ("groups", "metrics")}, indent=1, default=str)[:4000])
