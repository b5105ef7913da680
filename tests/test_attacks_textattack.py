"""TextAttack strategies offline: NLTK data set-up, each transformation on fixed inputs (seeded),
planted triggers found end to end, defenses that undo them, budgets, and unavailable recipes."""

from __future__ import annotations

import random

import numpy as np
import pytest

from recaudit.adapters.callable import CallableAdapter
from recaudit.attacks import textattack_bridge as bridge
from recaudit.attacks.defenses import SpellCorrectionDefense, Vocabulary
from recaudit.attacks.exposure import exposure
from recaudit.attacks.objective import TargetObjective
from recaudit.attacks.stealth import Budget, char_edits, word_edits
from recaudit.attacks.strategies import TextAttackOptions, TextAttackStrategy, build_strategy
from recaudit.attacks.users import build_cases
from recaudit.attacks.victim import PYesVictim
from test_attacks_world import CLEAN, TARGET, corrupted_tablet, planted_score, toy_catalog, toy_interactions

pytestmark = pytest.mark.skipif(not bridge.textattack_available()[0], reason="textattack is not installed")
HAS_WORDNET = (bridge.DEBIAN_WORDNET / "data.noun").exists()
needs_wordnet = pytest.mark.skipif(not HAS_WORDNET, reason=f"WordNet missing: {bridge.WORDNET_INSTALL_HINT}")
NO_FLOOR = TextAttackOptions(min_similarity=None, max_evaluations=40)  # keep MiniLM out of the fast tests


@pytest.fixture(scope="module")
def ta():
    return bridge.load_textattack()


# ------------------------------------------------------------------------------ offline set-up


def test_lexnames_is_the_wordnet_30_list():
    lines = bridge.lexnames_text().splitlines()
    assert len(lines) == 45
    assert lines[0] == "00\tadj.all\t3" and lines[3] == "03\tnoun.Tops\t1" and lines[44] == "44\tadj.ppl\t3"
    assert lines[29] == "29\tverb.body\t2" and lines[2] == "02\tadv.all\t4"


def test_nltk_data_without_wordnet_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setenv("NLTK_DATA", "")
    data = bridge.prepare_nltk_data(tmp_path / "nltk", wordnet_source=tmp_path / "none")
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = (tmp_path / "nltk/corpora/stopwords/english").read_text().split()
    assert words == sorted(ENGLISH_STOP_WORDS) and data.stopwords
    assert not data.wordnet and "apt-get install wordnet-base wordnet-sense-index" in data.wordnet_reason
    import os

    assert str(tmp_path / "nltk") in os.environ["NLTK_DATA"].split(os.pathsep)


@needs_wordnet
def test_wordnet_copy_is_readable_by_nltk(ta):
    ok, _ = bridge.wordnet_status()
    root = bridge.nltk_data_dir() / "corpora" / "wordnet"
    assert ok and not (root / "lexnames").is_symlink() and not (root / "data.noun").is_symlink()
    from nltk.corpus import wordnet

    assert wordnet.root.path == str(root)  # recaudit's copy, not a global NLTK folder
    assert "pad" in {name for s in wordnet.synsets("tablet") for name in s.lemma_names()}


def test_textfooler_and_bertattack_without_resources_are_reported_not_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv("RECAUDIT_NLTK_DATA", str(tmp_path / "nltk"))
    monkeypatch.setattr(bridge, "DEBIAN_WORDNET", tmp_path / "no-wordnet")
    tf = TextAttackStrategy("textfooler", Budget(max_words=2))
    ok, reason = tf.availability()
    assert not ok and "counter-fitted embeddings are unavailable offline" in reason and "apt-get install" in reason
    bert = build_strategy("bertattack")
    ok, reason = bert.availability()
    assert not ok and "mlm_path" in reason
    cat, inter = toy_catalog(), toy_interactions()
    adapter = CallableAdapter(score_fn=planted_score(corrupted_tablet))
    objective = TargetObjective(PYesVictim(adapter, cat), build_cases(inter, cat, inter.user_ids[:3], TARGET), TARGET, 3)
    out = bert.run(CLEAN, objective)
    assert not out.available and out.adversarial_title == CLEAN and adapter.calls == 0


# ------------------------------------------------------------------- transformations, fixed inputs


def _texts(transformation, text, seed=None):
    from textattack.constraints.pre_transformation import RepeatModification
    from textattack.shared import AttackedText

    if seed is not None:
        np.random.seed(seed)
        random.seed(seed)
    return sorted(t.text for t in transformation(AttackedText(text), pre_transformation_constraints=[RepeatModification()]))


def test_deepwordbug_transformation_is_seeded_and_edits_one_word_slightly(ta):
    t = TextAttackStrategy("deepwordbug", Budget(max_char_edits=3, max_words=2)).transformation()
    a, b = _texts(t, "Smart Tablet", seed=0), _texts(t, "Smart Tablet", seed=0)
    assert a == b and 4 <= len(a) <= 8
    assert _texts(t, "Smart Tablet", seed=1) != a
    for text in a:
        assert word_edits("Smart Tablet", text) == 1 and 1 <= char_edits("Smart Tablet", text) <= 2
    exhaustive = TextAttackStrategy("deepwordbug", Budget(), TextAttackOptions(exhaustive=True)).transformation()
    del_swap = [x for x in _texts(exhaustive, "Tab", seed=0) if len(x) == 2 or sorted(x) == sorted("Tab")]
    assert {"ab", "Tb", "Ta", "aTb", "Tba"} <= set(del_swap)


def test_punctuation_insertion_enumerates_inner_positions(ta):
    from recaudit.attacks import _ta_components as C

    out = _texts(C.WordSwapPunctuationInsertion(punctuation="'-", random_one=False), "Smart")
    assert out == sorted(["S'mart", "Sm'art", "Sma'rt", "Smar't", "S-mart", "Sm-art", "Sma-rt", "Smar-t"])
    seeded = TextAttackStrategy("puncattack", Budget()).transformation()
    first = _texts(seeded, "Smart Tablet", seed=3)
    assert first == _texts(seeded, "Smart Tablet", seed=3) and len(first) == 8
    assert all(char_edits("Smart Tablet", x) == 1 and x.replace("'", "").replace("-", "").replace(".", "").replace(",", "") == "Smart Tablet" for x in first)


@needs_wordnet
def test_offline_wordnet_swap_gives_single_word_synonyms_without_downloading(ta, monkeypatch):
    import nltk

    monkeypatch.setattr(nltk, "download", lambda *a, **k: pytest.fail("nltk.download called"))
    from recaudit.attacks import _ta_components as C

    out = _texts(C.OfflineWordSwapWordNet(), "Tablet")
    assert {"Pad", "Lozenge", "Pill", "Tab"} <= set(out) and all(" " not in x and "_" not in x for x in out)
    assert _texts(C.OfflineWordSwapWordNet(), "tablet")[:2] == ["lozenge", "pad"]  # case follows the word
    assert "Delicatessen" not in _texts(C.OfflineWordSwapWordNet(), "delicatessen")  # a case change is no swap


def test_counter_fitted_embedding_swap_from_a_local_file(ta, tmp_path):
    path = tmp_path / "vectors.txt"
    path.write_text(
        "5 3\ntablet 1 0 0\npad 0.9 0.1 0\nslate 0.7 0.3 0\nsmart 0 1 0\nclever 0 0.95 0.05\n", encoding="utf-8"
    )
    strat = TextAttackStrategy("textfooler", Budget(max_words=1), TextAttackOptions(embeddings_path=str(path), max_candidates=2))
    assert strat.variant == "textfooler" and strat.availability() == (True, "")
    t = strat.transformation()
    assert _texts(t, "Tablet") == ["Pad", "Slate"]
    assert t.embedding.nearest_neighbours("smart", 1) == [4]
    bad = tmp_path / "bad.txt"
    bad.write_text("tablet 1 0 0\npad 1 x 0\n", encoding="utf-8")
    from recaudit.attacks import _ta_components as C

    with pytest.raises(ValueError, match="bad.txt:2"):
        C.LocalWordEmbedding(bad)


def _tiny_mlm(path):
    """A random 1-layer BERT masked LM with a word-level vocabulary (no download)."""
    import torch
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    words = ["smart", "tablet", "pad", "slate", "clever", "phone", "book", "story", "great", "new"]
    path.mkdir()
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    tok = BertTokenizerFast(vocab_file=str(path / "vocab.txt"))
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertForMaskedLM(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


def test_bert_attack_runs_with_a_local_masked_lm(ta, tmp_path):
    mlm = _tiny_mlm(tmp_path / "mlm")
    strat = TextAttackStrategy("bertattack", Budget(max_words=1), TextAttackOptions(mlm_path=str(mlm), min_similarity=None, max_candidates=5))
    assert strat.availability() == (True, "")
    out = _texts(strat.transformation(), "smart tablet")
    assert out and all(len(x.split()) == 2 and word_edits("smart tablet", x) == 1 for x in out)
    vocab = {"smart", "tablet", "pad", "slate", "clever", "phone", "book", "story", "great", "new"}
    assert all(set(x.split()) <= vocab for x in out)


# ------------------------------------------------------------------ planted triggers, end to end


def _attack(name, trigger, seed=0, budget_kw=None, options=NO_FLOOR):
    cat, inter = toy_catalog(), toy_interactions()
    adapter = CallableAdapter(score_fn=planted_score(trigger))
    victim = PYesVictim(adapter, cat)
    attacker = build_cases(inter, cat, inter.user_ids[:8], TARGET, n_candidates=10, history_len=5)
    strat = build_strategy(name, textattack=options, **(budget_kw or {}))
    out = strat.run(CLEAN, TargetObjective(victim, attacker, TARGET, 3), seed=seed)
    held_out = build_cases(inter, cat, inter.user_ids[20:50], TARGET, n_candidates=10, history_len=5)
    return out, victim, held_out


SPELL = SpellCorrectionDefense(Vocabulary.from_titles(["Tablet World", "Smart People"], use_wordnet=False))


@pytest.mark.parametrize("name", ["deepwordbug", "puncattack"])
def test_character_attack_finds_the_planted_trigger_and_spell_correction_undoes_it(ta, name):
    out, victim, held_out = _attack(name, corrupted_tablet)
    adv = out.adversarial_title
    assert out.available and corrupted_tablet(adv) and out.attacked_value.hit_rate == 1.0
    assert out.details["textattack_result"] == "SuccessfulAttackResult"
    hits = victim.evaluate(held_out, TARGET, [CLEAN, adv, SPELL.correct(adv)], k=3).hits(3)
    assert exposure(hits[1]).value == 1.0 and exposure(hits[0]).value < 0.5
    assert SPELL.correct(adv) == CLEAN and np.array_equal(hits[2], hits[0])
    assert out.victim_queries == out.evaluations * 8 + 8 * 9  # 8 attacker users; competitors once


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name, budget", [("deepwordbug", {"max_char_edits": 1, "max_words": 1}), ("puncattack", {"max_char_edits": 2, "max_words": 2})])
def test_character_attacks_respect_their_budget(ta, name, budget, seed):
    # a victim that rewards any change drives the search as far as the budget lets it
    out, _, _ = _attack(name, lambda t: False, seed=seed, budget_kw=budget)
    trace = planted_score(lambda t: t != CLEAN)  # noqa: F841 - documents the intent below
    assert char_edits(CLEAN, out.adversarial_title) <= budget["max_char_edits"]
    assert word_edits(CLEAN, out.adversarial_title) <= budget["max_words"]


def test_search_is_reproducible_for_a_seed(ta):
    a, _, _ = _attack("deepwordbug", lambda t: "Smart" in t and t.endswith("t") is False, seed=5)
    b, _, _ = _attack("deepwordbug", lambda t: "Smart" in t and t.endswith("t") is False, seed=5)
    assert a.adversarial_title == b.adversarial_title and a.evaluations == b.evaluations


def test_beam_search_keeps_the_best_level_and_stops_without_improvement(ta):
    opts = TextAttackOptions(search="beam", beam_width=2, min_similarity=None, max_evaluations=200)
    out, _, _ = _attack("puncattack", corrupted_tablet, options=opts)
    assert corrupted_tablet(out.adversarial_title) and out.attacked_value.hit_rate == 1.0
    none, _, _ = _attack("puncattack", lambda t: False, options=opts)
    assert none.attacked_value.value >= none.clean_value.value  # never worse than clean


@needs_wordnet
def test_textfooler_wordnet_finds_a_synonym_trigger_and_says_what_it_is(ta):
    out, victim, held_out = _attack("textfooler", lambda t: t.split()[-1].lower() == "pad")
    assert out.variant == "textfooler-wordnet" and "counter-fitted embeddings are unavailable offline" in out.reason
    # greedy WIR may first take a small gain on "Smart"; the trigger must be found within 2 words
    assert out.adversarial_title.split()[-1].lower() == "pad" and out.attacked_value.hit_rate == 1.0
    assert word_edits(CLEAN, out.adversarial_title) <= 2
    hits = victim.evaluate(held_out, TARGET, [out.adversarial_title], k=3).hits(3)
    assert exposure(hits[0]).value == 1.0
