"""Explicit unfairness of classical recommenders on MovieLens 100K (Xu et al.'s comparison side).

TopPop, ItemKNN, BPR-MF and attribute-group popularity (gender, age group, occupation), leave-last-out,
full ranking; U-NDCG@10 / U-MRR@10 over gender, age group and occupation with permutation p (Holm per
recommender). Run: ``PYTHONPATH=. python benchmarks/explicit_unfairness_ml100k.py [ml-100k dir]``
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


def main(directory: str) -> dict:
    t0 = time.time()
    _, inter = load_movielens_100k(directory)
    recs = {"toppop": make_baseline("toppop"), "itemknn": make_baseline("itemknn"), "bpr": make_baseline("bpr", seed=0)}
    for attr in ("gender", "age", "occupation"):
        recs[f"attribute_pop.{attr}"] = AttributeGroupPop(user_groups(inter.users, attr))
    res = explicit_unfairness(inter, recs, k=10, n_permutations=1000, seed=0)
    return dict(
        protocol=PROTOCOL, data="MovieLens 100K (943 users, u.user attributes)", k=10,
        metrics={m.name: dict(value=round(m.value, 4), p=m.p_value, p_adj=m.p_adj, p_floor=m.p_floor,
                              mde=None if m.mde is None else round(m.mde, 4)) for m in res.metrics},
        groups=res.table.as_records(), seconds=round(time.time() - t0, 1),
    )


if __name__ == "__main__":
    d = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/ml-100k"
    out = main(d)
    Path(__file__).parent.joinpath("results", "explicit_unfairness_ml100k.json").write_text(json.dumps(out, indent=1) + "\n")
    print(json.dumps({k: v for k, v in out.items() if k != "groups"}, indent=1))
