"""The shilling check with the real SmolLM2 on MovieLens 100K (slow; tiny sizes: plumbing, budgets, counts).

The measured exposures with sizes that support a conclusion are in benchmarks/attacks.py
(benchmarks/results/attacks_movielens.json).
"""

from __future__ import annotations

import pytest

from recaudit.attacks.stealth import char_edits, word_edits

pytestmark = pytest.mark.slow


def test_shilling_check_runs_on_movielens_with_smollm2(shared_data, smollm2_adapter):
    from recaudit.attacks.check import ShillingCheck
    from recaudit.checks import CheckContext
    from recaudit.data.loaders import load_movielens_100k

    catalog, interactions = load_movielens_100k(shared_data / "ml-100k")
    check = ShillingCheck(
        dict(
            targets=["542"], attacks=["trivial", "deepwordbug"], defenses=["spell"], victims=["pyes"],
            n_attacker_users=4, n_eval_users=8, n_candidates=5, k=2, history_len=3, max_evaluations=8,
            max_char_edits=2, max_words=1, n_bootstrap=200, detector_fpr_titles=0, use_wordnet=False,
        )
    )
    result = check.run(CheckContext(adapter=smollm2_adapter, catalog=catalog, interactions=interactions, batch_size=16))
    rows = {r["attack"]: r for r in next(t for t in result.tables if t.name == "attacks").as_records()}
    dwb = rows["deepwordbug"]
    assert char_edits(dwb["clean_title"], dwb["adversarial_title"]) <= 2
    assert word_edits(dwb["clean_title"], dwb["adversarial_title"]) <= 1
    assert dwb["victim_queries"] == 4 * dwb["title_evaluations"]  # competitors counted once, as setup
    assert rows["trivial"]["setup_queries"] == 4 * 4 + 4  # 4 users × (4 competitors + the clean title)
    for name in ("exposure.clean.pyes", "exposure.attacked.deepwordbug.pyes", "exposure.defended.deepwordbug.spell.pyes"):
        m = result.metric(name)
        assert 0.0 <= m.ci_low <= m.value <= m.ci_high <= 1.0 and m.n == 8
