"""TALLRec trainer package: prompts, splits, LoRA state files, deterministic training, P(Yes), metrics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.tallrec import (
    TallRecSample,
    TrainConfig,
    attach_lora,
    build_samples,
    evaluate_scores,
    file_sha256,
    load_base_model,
    load_lora,
    lora_state_dict,
    reset_lora,
    save_lora,
    score_samples,
    split_samples,
    states_equal,
    train_lora,
)
from recaudit.tallrec.encoding import continuation_ids, encode_samples, option_token_ids


def toy_data(n_users: int = 4, n_items: int = 20, per_user: int = 8, seed: int = 0) -> tuple[Catalog, Interactions]:
    rng = np.random.default_rng(seed)
    catalog = Catalog([Item(str(i), f"Film {i}", ("Drama",)) for i in range(n_items)])
    rows = []
    for u in range(n_users):
        for t, i in enumerate(rng.choice(n_items, per_user, replace=False)):
            rows.append((str(u + 1), str(i), int(rng.integers(1, 6)), 1000 * u + t))
    return catalog, Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]))


@pytest.fixture(scope="module")
def tiny(tiny_lm_path):
    import torch

    torch.set_num_threads(1)
    model, tok = load_base_model(tiny_lm_path)
    return attach_lora(model, TrainConfig(seed=0)), tok


def test_build_samples_history_split_and_labels():
    catalog = Catalog([Item(str(i), f"F{i}") for i in range(5)])
    frame = pd.DataFrame(
        {"user_id": ["u"] * 5, "item_id": ["0", "1", "2", "3", "4"], "rating": [5, 2, 4, 3, 4], "timestamp": [1, 2, 3, 4, 5]}
    )
    samples = build_samples(Interactions(frame), catalog, history_len=3)
    assert [s.item_id for s in samples] == ["3", "4"]  # need 3 earlier ratings
    first = samples[0].prompt_messages[-1][1]
    assert 'User Preference: "F0", "F2"' in first and 'User Unpreference: "F1"' in first
    assert 'target movie "F3"?' in first
    assert [s.label for s in samples] == [0, 1]  # rating 3 is not a like, 4 is
    second = samples[1].prompt_messages[-1][1]
    assert 'User Preference: "F2"' in second and '"F0"' not in second  # only the last 3 items


def test_build_samples_is_deterministic_and_subsamples_per_user():
    catalog, inter = toy_data(per_user=12)
    a = build_samples(inter, catalog, history_len=2, max_per_user=3, seed=5)
    b = build_samples(inter, catalog, history_len=2, max_per_user=3, seed=5)
    c = build_samples(inter, catalog, history_len=2, max_per_user=3, seed=6)
    assert a == b and a != c
    assert pd.Series([s.user_id for s in a]).value_counts().max() == 3


def test_split_by_time_puts_newest_in_test_and_keeps_order():
    samples = [TallRecSample("u", str(i), (("user", "x"),), i % 2, timestamp=100 - i) for i in range(10)]
    train, valid, test = split_samples(samples, 0.2, 0.2, by="time")
    assert {s.item_id for s in test} == {"0", "1"}  # largest timestamps
    assert [s.item_id for s in train] == ["4", "5", "6", "7", "8", "9"]
    r1 = split_samples(samples, 0.2, 0.2, by="random", seed=1)
    assert r1 == split_samples(samples, 0.2, 0.2, by="random", seed=1)
    with pytest.raises(ValueError, match="valid_frac"):
        split_samples(samples, 0.6, 0.5)


def test_option_tokens_are_first_answer_tokens(tiny):
    _, tok = tiny
    yes, no = option_token_ids(tok)
    assert tok.convert_ids_to_tokens([yes, no]) == ["Y", "N"]  # byte tokenizer
    assert continuation_ids(tok, "prompt\n", "Yes.")[0] == yes


def test_save_load_roundtrip_is_byte_identical(tiny, tmp_path):
    model, _ = tiny
    state = lora_state_dict(model)
    p1 = save_lora(state, tmp_path / "a.safetensors")
    p2 = save_lora(load_lora(p1), tmp_path / "b.safetensors")
    assert file_sha256(p1) == file_sha256(p2)
    assert states_equal(state, load_lora(p1))
    assert p1.read_bytes()[:1] != b"\x80"  # not a pickle


def test_training_is_deterministic_and_learns(tiny):
    model, tok = tiny
    catalog, inter = toy_data()
    samples = build_samples(inter, catalog, history_len=3)
    cfg = TrainConfig(seed=3, batch_size=4, lr=5e-3, epochs=3, max_length=256)
    reset_lora(model, 3)
    before = lora_state_dict(model)
    out1 = train_lora(model, tok, samples, cfg)
    s1 = lora_state_dict(model)
    reset_lora(model, 3)
    assert states_equal(before, lora_state_dict(model))
    out2 = train_lora(model, tok, samples, cfg)
    assert states_equal(s1, lora_state_dict(model))  # bitwise
    assert out1.losses == out2.losses and out1.n_steps == 3 * int(np.ceil(len(samples) / 4))
    assert not states_equal(before, s1)
    assert np.mean(out1.losses[-3:]) < np.mean(out1.losses[:3])
    reset_lora(model, 4)
    assert not states_equal(before, lora_state_dict(model))


def test_lr_scale_and_callback(tiny):
    model, tok = tiny
    catalog, inter = toy_data()
    samples = build_samples(inter, catalog, history_len=3)[:8]
    cfg = TrainConfig(seed=0, batch_size=4)
    seen = []
    reset_lora(model, 0)
    train_lora(model, tok, samples, cfg, lr_scale=1.0, step_callback=seen.append)
    a = lora_state_dict(model)
    reset_lora(model, 0)
    train_lora(model, tok, samples, cfg, lr_scale=0.5)
    assert not states_equal(a, lora_state_dict(model))
    assert [s.step for s in seen] == [0, 1] and seen[0].n_steps == 2
    with pytest.raises(ValueError, match="lr_scale"):
        train_lora(model, tok, samples, cfg, lr_scale=0.0)


def test_scores_are_probabilities_and_batch_independent(tiny):
    model, tok = tiny
    catalog, inter = toy_data()
    samples = build_samples(inter, catalog, history_len=3)
    s8 = score_samples(model, tok, samples, batch_size=8)
    s1 = score_samples(model, tok, samples, batch_size=1)
    assert s8.shape == (len(samples),) and np.all((s8 > 0) & (s8 < 1))
    np.testing.assert_allclose(s8, s1, atol=1e-5)


def test_scoring_matches_a_manual_forward(tiny):
    import torch

    model, tok = tiny
    catalog, inter = toy_data()
    sample = build_samples(inter, catalog, history_len=3)[0]
    text = tok.apply_chat_template([{"role": r, "content": c} for r, c in sample.prompt_messages], add_generation_prompt=True, tokenize=False)
    ids = tok(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1]
    yes, no = option_token_ids(tok)
    expected = torch.softmax(logits[[yes, no]], dim=-1)[0].item()
    assert score_samples(model, tok, [sample])[0] == pytest.approx(expected, abs=1e-6)


def test_encode_truncates_prompt_from_the_left(tiny):
    _, tok = tiny
    s = TallRecSample("u", "i", (("user", "x" * 300),), 1)
    e = encode_samples(tok, [s], max_length=64)[0]
    assert len(e.prompt_ids) + len(e.answer_ids) == 64
    assert tok.decode(list(e.answer_ids)) == "Yes."


def test_evaluate_scores_hand_computed():
    m = evaluate_scores([0, 0, 1, 1], [0.1, 0.6, 0.4, 0.9])
    assert m["auc"] == pytest.approx(0.75)  # 3 of 4 pos/neg pairs ordered
    assert m["acc"] == pytest.approx(0.5)
    expected = -np.mean(np.log([0.9, 0.4, 0.4, 0.9]))
    assert m["logloss"] == pytest.approx(expected)
    assert np.isnan(evaluate_scores([1, 1], [0.2, 0.3])["auc"])
    with pytest.raises(ValueError, match="probabilities"):
        evaluate_scores([0, 1], [0.5, 1.5])


def test_train_config_validation():
    with pytest.raises(ValueError, match="lora_r"):
        TrainConfig(lora_r=0)
    with pytest.raises(ValueError, match="answer_loss"):
        TrainConfig(answer_loss="some")
    assert TrainConfig().replace(lr=0.1).lr == 0.1


def test_load_base_model_rejects_bad_spec(tmp_path):
    with pytest.raises(ValueError, match="model_path_or_spec"):
        load_base_model(tmp_path / "missing")
    (tmp_path / "w.bin").write_bytes(b"x")
    with pytest.raises(ValueError, match="gguf"):
        load_base_model(tmp_path / "w.bin")


def test_frozen_prefix_cache_matches_full_forward(tiny_lm_path):
    from recaudit.tallrec.prefix import prefix_of

    catalog, inter = toy_data()
    samples = build_samples(inter, catalog, history_len=3)[:10]
    cfg = TrainConfig(seed=1, batch_size=4, lr=5e-3, lora_layers=1)
    cached, tok = load_base_model(tiny_lm_path)
    cached = attach_lora(cached, cfg)
    plain, _ = load_base_model(tiny_lm_path)
    plain = attach_lora(plain, cfg.replace(cache_prefix=False))
    assert prefix_of(cached) is not None and prefix_of(plain) is None
    names = [n for n, p in cached.named_parameters() if p.requires_grad]
    assert names and all(".layers.1." in n for n in names)  # LoRA on the top block only
    out_c = train_lora(cached, tok, samples, cfg)
    out_p = train_lora(plain, tok, samples, cfg)
    np.testing.assert_allclose(out_c.losses, out_p.losses, rtol=1e-5)
    assert states_equal(lora_state_dict(cached), lora_state_dict(plain), atol=1e-6)
    np.testing.assert_allclose(score_samples(cached, tok, samples), score_samples(plain, tok, samples), atol=1e-6)
    assert len(prefix_of(cached)) == len(samples)  # one bottom pass per sample, reused by scoring


def test_trainer_scoring_equals_the_hf_adapter(tiny):
    """One scoring definition: the batched trainer path gives HFCausalLM.score's P(Yes)."""
    from recaudit.adapters.hf import HFCausalLM
    from recaudit.tallrec import score_with_adapter

    model, tok = tiny
    catalog, inter = toy_data()
    samples = build_samples(inter, catalog, history_len=3)[:6]
    reset_lora(model, 9)
    train_lora(model, tok, samples, TrainConfig(seed=9, batch_size=3, lr=1e-2))
    ours = score_samples(model, tok, samples, batch_size=4)
    theirs = score_with_adapter(HFCausalLM.from_model(model, tok, name="tallrec"), samples)
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.slow
def test_smollm2_bpe_option_tokens_and_answers():
    from recaudit.tallrec.model import default_model_path

    from transformers import AutoTokenizer

    path = default_model_path()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    yes, no = option_token_ids(tok)
    assert tok.decode([yes]) == "Yes" and tok.decode([no]) == "No"
    s = TallRecSample("u", "i", (("system", "Answer."), ("user", 'Like "Heat (1995)"?')), 0)
    e = encode_samples(tok, [s], max_length=512)[0]
    assert e.answer_ids[0] == no and tok.decode(list(e.answer_ids)) == "No."


def test_split_user_time_keeps_each_users_newest_for_test():
    samples = [TallRecSample(u, f"{u}{t}", (("user", "x"),), 1, timestamp=t) for u in "ab" for t in range(5)]
    train, _, test = split_samples(samples, 0.0, 0.2, by="user_time")
    assert [s.item_id for s in test] == ["a4", "b4"]
    assert len(train) == 8


def test_option_ids_come_from_the_adapters_one_definition(tiny_lm_path):
    """tallrec reads P(Yes) at exactly the token HFCausalLM.score uses."""
    from recaudit.adapters.hf import OPTION_CONTEXT_CHARS, option_token_id
    from recaudit.tallrec.encoding import prompt_text
    from recaudit.tallrec.model import load_base_model

    _, tok = load_base_model(str(tiny_lm_path))
    tail = prompt_text(tok, [("user", "?")])[-OPTION_CONTEXT_CHARS:]
    assert option_token_ids(tok) == (option_token_id(tok, tail, "Yes"), option_token_id(tok, tail, "No"))
    with pytest.raises(ValueError, match="share their first token"):
        option_token_ids(tok, ("Yes", "Yes"))


def test_sequence_loss_is_hf_causal_lm_loss_per_sample(tiny):
    """loss_on="sequence" (TALLRec's train_on_inputs) is the causal-LM loss over prompt + answer, padding-proof."""
    import torch

    from recaudit.tallrec.encoding import collate, sequence_nll

    model, tok = tiny
    catalog, inter = toy_data()
    samples = build_samples(inter, catalog, history_len=3)[:2]
    enc = encode_samples(tok, samples, 256)
    with torch.no_grad():
        both = sequence_nll(model, collate(enc, tok.pad_token_id))
        for i, e in enumerate(enc):
            ids = torch.tensor([list(e.prompt_ids) + list(e.answer_ids)])
            want = model(input_ids=ids, labels=ids).loss
            torch.testing.assert_close(both[i], want, atol=1e-5, rtol=1e-5)
    cfg = TrainConfig(seed=0, batch_size=2, lr=1e-2, max_length=256)
    out = {}
    for loss_on in ("answer", "sequence"):
        reset_lora(model, 0)
        train_lora(model, tok, samples, cfg.replace(loss_on=loss_on))
        out[loss_on] = lora_state_dict(model)
    assert not states_equal(out["answer"], out["sequence"])
    assert TrainConfig.tallrec().loss_on == "sequence" and TrainConfig().loss_on == "answer"
    with pytest.raises(ValueError, match="loss_on"):
        TrainConfig(loss_on="prompt")


def test_few_shot_draws_a_seeded_subset():
    from recaudit.tallrec import few_shot

    catalog, inter = toy_data(n_users=4, per_user=10)
    samples = build_samples(inter, catalog, history_len=2)
    for n in (16, 4):
        a, b = few_shot(samples, n, seed=1), few_shot(samples, n, seed=1)
        assert len(a) == n and a == b and len({id(s) for s in a}) == n and all(s in samples for s in a)
    assert few_shot(samples, 16, seed=1) != few_shot(samples, 16, seed=2)
    with pytest.raises(ValueError, match="exceeds"):
        few_shot(samples, len(samples) + 1)
    with pytest.raises(ValueError, match=">= 1"):
        few_shot(samples, 0)


def test_early_stopping_keeps_the_best_validation_auc(tiny):
    from recaudit.tallrec import train_early_stopping

    model, tok = tiny
    catalog, inter = toy_data(n_users=6, per_user=8)
    samples = build_samples(inter, catalog, history_len=3)
    train, valid, _ = split_samples(samples, 0.3, 0.0, by="user_time")
    reset_lora(model, 0)
    cfg = TrainConfig(seed=0, batch_size=4, lr=3e-2, epochs=6, max_length=256)
    out = train_early_stopping(model, tok, train, valid, cfg, eval_every=1, patience=2)
    aucs = [a for _, a in out.history]
    assert out.best_auc == max(aucs) and (out.best_step, out.best_auc) in out.history
    best_at = aucs.index(max(aucs))
    assert len(aucs) <= best_at + 1 + 2  # at most `patience` evaluations after the best one
    if out.stopped_early:
        assert out.train.n_steps < 6 * int(np.ceil(len(train) / 4))
    again = evaluate_scores([s.label for s in valid], score_samples(model, tok, valid, 4, 256))["auc"]
    assert again == pytest.approx(out.best_auc, abs=1e-9)  # the best adapter is the one loaded
    with pytest.raises(ValueError, match="both labels"):
        train_early_stopping(model, tok, train, [s for s in valid if s.label == 1], cfg)


def test_alpaca_template_is_tallrecs_prompt():
    from recaudit.tallrec import alpaca_template

    tpl = alpaca_template()
    (role, text), = tpl.messages(["A {b}"], ["C"], "X")
    assert role == "user" and text.startswith("Below is an instruction that describes a task")
    assert "### Instruction:\nGiven the user's preference" in text and text.endswith("### Response:")
    assert 'User Preference: "A {b}"' in text and 'User Unpreference: "C"' in text and '"X"?' in text
    assert tpl.answer(1) == "Yes." and tpl.answer(0) == "No."
