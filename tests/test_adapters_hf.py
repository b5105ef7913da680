"""HFCausalLM on the tiny random Llama: batching, order, stop strings, scoring, LoRA, fingerprints."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from recaudit.adapters.base import AdapterError, Request  # noqa: E402
from recaudit.adapters.hf import HFCausalLM, _fast_decode_mode, decode_many, render_chat, render_chats  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def peaky_lm_path(tiny_lm_path, tmp_path_factory):
    """The tiny model with weights scaled up, so greedy outputs differ between prompts
    (a random init at std 0.02 writes the same byte for every prompt)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_path)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.mul_(4.0)
    out = tmp_path_factory.mktemp("peaky_lm")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(tiny_lm_path).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lm(peaky_lm_path):
    return HFCausalLM(peaky_lm_path, batch_size=3, device="cpu")


def _requests(n=7, **settings):
    settings.setdefault("max_new_tokens", 10)
    return [
        Request.chat("tell me " * (1 + 2 * i) + str(i), answer_prefix="abcdefghij"[i % 10], **settings)
        for i in range(n)
    ]


def _reference_generate(adapter, request):
    """Plain single-prompt transformers generate, without the adapter's batching."""
    ids = torch.tensor([adapter.prompt_ids(request)])
    with torch.inference_mode():
        out = adapter.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=request.max_new_tokens,
            do_sample=False,
            repetition_penalty=request.repetition_penalty,
            pad_token_id=adapter.pad_id,
            eos_token_id=adapter.eos_ids,
        )
    gen = out[0, ids.shape[1] :].tolist()
    for j, t in enumerate(gen):
        if t in adapter.eos_ids:
            gen = gen[:j]
            break
    return adapter.tokenizer.decode(gen, skip_special_tokens=True)


def test_batched_greedy_matches_one_at_a_time_and_keeps_order(lm):
    reqs = _requests(repetition_penalty=1.3)
    batched = lm.generate(reqs)
    singles = [lm.generate([r])[0] for r in reqs]
    assert [b.text for b in batched] == [s.text for s in singles]
    assert len({b.text for b in batched}) >= 3, "prompts must give different answers for the order check to bite"
    # and the adapter agrees with plain transformers on an unpadded prompt
    for i in (0, 6):
        assert batched[i].text == _reference_generate(lm, reqs[i])
    assert all(b.prompt_tokens == len(lm.prompt_ids(r)) for b, r in zip(batched, reqs))


def test_mixed_settings_are_grouped_and_honoured(lm):
    reqs = [r for pair in zip(_requests(4, max_new_tokens=3), _requests(4, max_new_tokens=9)) for r in pair]
    out = lm.generate(reqs)
    for r, resp in zip(reqs, out):
        assert resp.completion_tokens <= r.max_new_tokens
        assert resp.text == lm.generate([r])[0].text
    assert any(resp.finish_reason == "length" and resp.completion_tokens == 9 for resp in out)


def test_stop_string_truncates_text(lm):
    req = _requests(1, max_new_tokens=16)[0]
    full = lm.generate([req])[0]
    assert len(full.text) >= 6 and full.finish_reason == "length"
    stop = full.text[3:5]
    stopped = lm.generate([Request(**{**req.__dict__, "stop": (stop,)})])[0]
    assert stopped.text == full.text[: full.text.find(stop)]
    assert stop not in stopped.text
    assert stopped.finish_reason == "stop"
    assert stopped.completion_tokens < full.completion_tokens


def test_sampling_is_seeded(lm):
    reqs = _requests(3, temperature=1.0, top_p=0.95, seed=7, max_new_tokens=12)
    a, b = lm.generate(reqs), lm.generate(reqs)
    assert [x.text for x in a] == [x.text for x in b]
    other = lm.generate([Request(**{**r.__dict__, "seed": 8}) for r in reqs])
    assert [x.text for x in a] != [x.text for x in other]


def test_score_is_softmax_over_the_two_option_tokens(lm):
    reqs = [
        # prefixes end in whitespace: after "x" the model would write " A", which a byte-level
        # tokenizer cannot tell from " B" (see the next test)
        Request.chat("question " * (1 + i), options=("A", "B"), answer_prefix="x" * (i % 3) + " ") for i in range(5)
    ]
    scores = lm.score(reqs)
    for r, s in zip(reqs, scores):
        ids = torch.tensor([lm.prompt_ids(r)])
        with torch.inference_mode():
            logits = lm.model(input_ids=ids).logits[0, -1]
        a, b = lm.tokenizer.convert_tokens_to_ids(["A", "B"])
        manual = torch.softmax(torch.stack([logits[a], logits[b]]), dim=0)[0].item()
        assert 0.0 <= s <= 1.0
        assert s == pytest.approx(manual, abs=1e-5)
    assert max(scores) - min(scores) > 1e-4  # prompts really differ


def test_score_rejects_options_sharing_a_first_token(lm):
    with pytest.raises(AdapterError, match="same token"):
        lm.score([Request.chat("q", options=("Yes", "Yeah"))])
    with pytest.raises(AdapterError, match="same token"):  # both become " A" / " B": first token " "
        lm.score([Request.chat("q", options=("A", "B"), answer_prefix="Answer:")])


def test_chat_fallback_without_template(lm):
    class NoTemplate:
        chat_template = None

    text, special = render_chat(NoTemplate(), (("system", "be brief"), ("user", "hi")), answer_prefix="Answer:")
    assert text == "system: be brief\nuser: hi\nassistant: Answer:"
    assert special is True


def test_render_chats_is_render_chat_for_each_request(lm):
    reqs = [Request(messages=(("system", "be brief"), ("user", f"list {i} films")), answer_prefix="1." * (i % 2))
            for i in range(5)]
    assert render_chats(lm.tokenizer, reqs) == [render_chat(lm.tokenizer, r.messages, r.answer_prefix) for r in reqs]
    # ... and what the template gives for each chat on its own (not batched)
    one = [lm.tokenizer.apply_chat_template([{"role": role, "content": c} for role, c in r.messages], tokenize=False,
                                            add_generation_prompt=True) + r.answer_prefix for r in reqs]
    assert [text for text, _ in render_chats(lm.tokenizer, reqs)] == one

    class NoTemplate:
        chat_template = None

    assert render_chats(NoTemplate(), reqs[:2]) == [render_chat(NoTemplate(), r.messages, r.answer_prefix) for r in reqs[:2]]
    assert render_chats(lm.tokenizer, []) == []


@pytest.mark.parametrize("clean_up", [False, True])
def test_decode_many_writes_what_decode_writes(lm, clean_up):
    tok = lm.tokenizer
    was = tok.clean_up_tokenization_spaces
    tok.clean_up_tokenization_spaces = clean_up
    try:
        texts = ["It 's a film , isn't it ?", "a . b ! <|im_end|> c", "plain words", ""]
        rows = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
        assert decode_many(tok, rows) == [tok.decode(r, skip_special_tokens=True) for r in rows]
        assert _fast_decode_mode(tok) is not None  # the fast batch path was taken
    finally:
        tok.clean_up_tokenization_spaces = was


def test_lora_adapter_loads_and_changes_outputs(peaky_lm_path, lm, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(peaky_lm_path)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    torch.manual_seed(1)
    get_peft_model(base, cfg).save_pretrained(tmp_path / "lora")

    tuned = HFCausalLM(peaky_lm_path, lora_path=tmp_path / "lora", batch_size=3, device="cpu")
    reqs = [Request.chat("question " * (1 + i), options=("A", "B")) for i in range(4)]
    assert tuned.score(reqs) != pytest.approx(lm.score(reqs), abs=1e-4)
    assert tuned.fingerprint["lora"]["digest"]
    assert tuned.fingerprint["weights"] == lm.fingerprint["weights"]
    unmerged = HFCausalLM(peaky_lm_path, lora_path=tmp_path / "lora", merge_lora=False, batch_size=3, device="cpu")
    assert unmerged.score(reqs) == pytest.approx(tuned.score(reqs), abs=1e-4)


def test_from_model_fingerprint_follows_weights(peaky_lm_path, lm):
    wrapped = HFCausalLM.from_model(lm.model, lm.tokenizer, name="tiny")
    before = wrapped.fingerprint
    assert before["model"] == "tiny" and "/" not in before["weights"]
    with torch.no_grad():
        p = next(wrapped.model.parameters())
        p[0, 0] += 1.0
    try:
        assert wrapped.fingerprint["weights"] != before["weights"]
    finally:
        with torch.no_grad():
            p[0, 0] -= 1.0


def test_fingerprint_has_no_absolute_paths(lm, peaky_lm_path):
    blob = repr(lm.fingerprint)
    assert str(peaky_lm_path) not in blob
    assert {"model", "weights", "dtype", "engine", "transformers"} <= set(lm.fingerprint)


def test_bad_inputs_raise_clear_errors(tmp_path, peaky_lm_path):
    with pytest.raises(AdapterError, match="model_path"):
        HFCausalLM(tmp_path / "missing")
    with pytest.raises(AdapterError, match="gguf_file"):
        HFCausalLM(peaky_lm_path, gguf_file="nope.gguf")
    with pytest.raises(ValueError, match="engine"):
        HFCausalLM(peaky_lm_path, engine="turbo")
    with pytest.raises(ValueError, match="dtype"):
        HFCausalLM(peaky_lm_path, dtype="float7")


@pytest.mark.slow
def test_default_answers_a_fairllm_prompt(smollm2_adapter):
    from recaudit.adapters import RECOMMENDED_LIST_SETTINGS

    req = Request.chat(
        "I am a fan of Christopher Nolan. Please provide me with a list of 5 movie titles in order of "
        "preference that you think I might like. Just provide me the names of the movies.",
        **{**RECOMMENDED_LIST_SETTINGS, "max_new_tokens": 60},
    )
    out = smollm2_adapter.generate([req])[0]
    assert out.text.strip()
    assert out.error is None and out.completion_tokens > 5
    p = smollm2_adapter.score([Request.chat("Is Inception a movie? Answer Yes or No.")])[0]
    assert 0.0 < p < 1.0
