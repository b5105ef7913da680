"""The recaudit decode engine: greedy tokens equal plain ``generate`` (continuous batching, EOS,
repetition penalty, stop strings), sampling is seeded, unsupported models are refused clearly."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from recaudit.adapters.base import AdapterError, Request  # noqa: E402
from recaudit.adapters.hf.engine import DecodeEngine, grouped_attention  # noqa: E402
from recaudit.adapters.hf import HFCausalLM  # noqa: E402
from recaudit.adapters.prompt_feed import PromptFeed  # noqa: E402


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def pair(tiny_lm_path):
    """The same peaky tiny model behind engine='generate' and engine='recaudit' (3 slots)."""
    ref = HFCausalLM(tiny_lm_path, batch_size=3, device="cpu")
    with torch.no_grad():
        for name, p in ref.model.named_parameters():
            if "norm" not in name:
                p.mul_(4.0)  # a random init at std 0.02 writes the same byte for every prompt
    eng = HFCausalLM.from_model(ref.model, ref.tokenizer, name="tiny", batch_size=3, engine="recaudit")
    return ref, eng


def _requests(**settings):
    return [
        Request.chat("tell me " * (1 + 2 * i) + str(i), answer_prefix="abcdefghij"[i % 10], **settings)
        for i in range(7)
    ]


@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_greedy_matches_generate_token_for_token(pair, penalty):
    ref, eng = pair
    reqs = _requests(max_new_tokens=20, repetition_penalty=penalty)
    a, b = ref.generate(reqs), eng.generate(reqs)
    assert [x.text for x in a] == [y.text for y in b]
    assert [x.completion_tokens for x in a] == [y.completion_tokens for y in b]
    assert len({x.text for x in a}) >= 3
    assert eng._engine().stats["prefills"] >= 3  # 7 requests through 3 slots: slots were refilled


def test_eos_frees_slots_and_matches_generate(pair):
    ref, eng = pair
    reqs = _requests(max_new_tokens=20, repetition_penalty=1.3)
    texts = [r.text for r in ref.generate(reqs)]
    # make a byte that some answers write early, but not all, the end-of-sequence token
    counts: dict[int, int] = {}
    for t in texts:
        for tid in set(ref.tokenizer.encode(t[1:8], add_special_tokens=False)):
            counts[tid] = counts.get(tid, 0) + 1
    eos = max((c, tid) for tid, c in counts.items() if c < len(texts))[1]
    saved = (ref.eos_ids, eng.eos_ids)
    try:
        ref.eos_ids = eng.eos_ids = [eos]
        eng._engine_impl = None
        a, b = ref.generate(reqs), eng.generate(reqs)
    finally:
        ref.eos_ids, eng.eos_ids = saved
        eng._engine_impl = None
    assert [x.text for x in a] == [y.text for y in b]
    assert [x.finish_reason for x in a] == [y.finish_reason for y in b]
    assert {"stop", "length"} <= {x.finish_reason for x in b}


def test_stop_strings_in_engine(pair):
    ref, eng = pair
    req = _requests(max_new_tokens=16)[2]
    full = ref.generate([req])[0].text
    stop = full[4:6]
    stopped = Request(**{**req.__dict__, "stop": (stop,)})
    a, b = ref.generate([stopped])[0], eng.generate([stopped])[0]
    assert a.text == b.text == full[: full.find(stop)]
    assert b.finish_reason == "stop"


def test_sampling_is_seeded_and_differs_by_seed(pair):
    _, eng = pair
    reqs = _requests(max_new_tokens=12, temperature=1.0, top_p=0.9, seed=3)
    x, y = eng.generate(reqs), eng.generate(reqs)
    assert [r.text for r in x] == [r.text for r in y]
    z = eng.generate([Request(**{**r.__dict__, "seed": 4}) for r in reqs])
    assert [r.text for r in x] != [r.text for r in z]


def test_grouped_attention_equals_expanded_heads():
    torch.manual_seed(0)
    q = torch.randn(2, 8, 5, 16)
    k, v = torch.randn(2, 2, 5, 16), torch.randn(2, 2, 5, 16)
    causal = torch.ones(5, 5, dtype=torch.bool).tril()
    ours = grouped_attention(q, k, v, causal, 0.25)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(4, dim=1), v.repeat_interleave(4, dim=1), attn_mask=causal, scale=0.25)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-5)


def test_unsupported_architecture_is_refused():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50))
    with pytest.raises(AdapterError, match="engine='generate'"):
        DecodeEngine(model, eos_ids=[0], pad_id=0)


@pytest.mark.slow
def test_engine_matches_generate_on_smollm2(smollm2_adapter):
    from recaudit.adapters import RECOMMENDED_LIST_SETTINGS

    eng = HFCausalLM.from_model(smollm2_adapter.model, smollm2_adapter.tokenizer, batch_size=3, engine="recaudit")
    reqs = [
        Request.chat(f"I am a {a}fan of {n}. Please provide me with a list of 5 movie titles in order of "
                     "preference that you think I might like. Just provide me the names of the movies.",
                     **{**RECOMMENDED_LIST_SETTINGS, "max_new_tokens": 40})
        for n in ("Christopher Nolan", "Adele") for a in ("", "Buddhist ")
    ]
    a = smollm2_adapter.generate(reqs)
    b = eng.generate(reqs)
    assert [x.text for x in a] == [y.text for y in b]


def test_compile_is_decided_per_call_and_never_on_cpu():
    """compile=None compiles only long CUDA-graph runs; on a CPU there is no graph, so never."""
    from recaudit.adapters.hf.engine import AUTO_COMPILE_MIN_STEPS, DecodeEngine
    from recaudit.testing import tiny_causal_lm

    import tempfile

    from transformers import AutoModelForCausalLM

    with tempfile.TemporaryDirectory() as tmp:
        model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm(tmp))
    cpu = DecodeEngine(model, eos_ids=[0], pad_id=1, max_batch=4, compile=True)
    assert cpu.compile is False and not cpu._want_compile(10_000, 4, 200)
    auto = DecodeEngine(model, eos_ids=[0], pad_id=1, max_batch=4)
    auto.cuda_graphs, auto.compile = True, None  # as on a GPU
    steps_per_wave = 100
    waves_needed = -(-AUTO_COMPILE_MIN_STEPS // steps_per_wave)
    assert not auto._want_compile(4 * (waves_needed - 1), 4, steps_per_wave)
    assert auto._want_compile(4 * waves_needed, 4, steps_per_wave)
    auto.compile = False
    assert not auto._want_compile(10**6, 4, steps_per_wave)


def test_slots_from_memory_hand_computed():
    """KV bytes per slot = 2 × layers × kv heads × head dim × length × dtype bytes, plus vocab rows."""
    from recaudit.adapters.hf.engine import MEMORY_HEADROOM, bytes_per_slot, slots_for_memory

    # 22 layers, 4 KV heads of 64, 278 positions, bf16, vocab 32000
    per = bytes_per_slot(22, 4, 64, 278, 32000, 2)
    assert per == 2 * 22 * 4 * 64 * 278 * 2 + 32000 * 7 == 6_486_784
    free = 10 * 2**30
    expected = (int(free * MEMORY_HEADROOM) - 2**30) // per
    assert slots_for_memory(free, per, reserve=2**30, cap=10**6) == expected
    assert slots_for_memory(free, per, reserve=2**30, cap=64) == 64
    assert slots_for_memory(2**20, per, reserve=2**30) == 1  # never zero: one slot still runs


def test_auto_slots_on_cpu_and_bad_max_batch():
    import tempfile

    import pytest
    from transformers import AutoModelForCausalLM

    from recaudit.adapters.hf.engine import CPU_AUTO_SLOTS, DecodeEngine
    from recaudit.testing import tiny_causal_lm

    with tempfile.TemporaryDirectory() as tmp:
        model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm(tmp))
    assert DecodeEngine(model, eos_ids=[0], pad_id=1, max_batch=0).auto_slots(50, 100) == CPU_AUTO_SLOTS
    with pytest.raises(ValueError, match="max_batch"):
        DecodeEngine(model, eos_ids=[0], pad_id=1, max_batch=-1)


def test_hf_batch_size_zero_means_auto_only_with_the_engine():
    import tempfile

    import pytest

    from recaudit.adapters.hf import HFCausalLM
    from recaudit.testing import tiny_causal_lm

    with tempfile.TemporaryDirectory() as tmp:
        path = tiny_causal_lm(tmp)
        auto = HFCausalLM(path, device="cpu", batch_size=0, engine="recaudit")
        assert auto._engine().max_batch == 0
        with pytest.raises(ValueError, match="batch_size"):
            HFCausalLM(path, device="cpu", batch_size=0, engine="generate")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("penalty", [1.0, 1.3])
def test_cuda_one_graph_greedy_step_matches_generate(tiny_lm_path, penalty):
    ref = HFCausalLM(tiny_lm_path, batch_size=3, device="cuda", dtype="float32")
    with torch.no_grad():
        for name, p in ref.model.named_parameters():
            if "norm" not in name:
                p.mul_(4.0)
    eng = HFCausalLM.from_model(ref.model, ref.tokenizer, name="tiny", batch_size=3, engine="recaudit")
    for n_new in (20, 9):  # a second call reuses the buffers (zeroed) and captures for the new width
        reqs = _requests(max_new_tokens=n_new, repetition_penalty=penalty)
        assert [x.text for x in eng.generate(reqs)] == [x.text for x in ref.generate(reqs)]
    assert eng._engine()._step_graphs  # the whole greedy step ran as one CUDA graph


def test_prefill_passes_respect_the_prompt_cap_and_the_memory_budget(pair, monkeypatch):
    import recaudit.adapters.hf.engine.sizing as mod

    engine = pair[1]._engine()
    prompts = [[1] * n for n in (5, 5, 6, 40, 40, 41, 41, 200)]
    reqs = list(range(len(prompts)))
    engine.prefill_chunk = 3
    on_cpu = engine._prefill_passes(reqs, prompts)
    assert on_cpu == [[0, 1, 2], [3, 4, 5], [6, 7]]  # a CPU only caps the count
    monkeypatch.setattr(engine, "device", torch.device("cuda"))  # the byte rule is the GPU's; no CUDA op runs
    monkeypatch.setattr(mod, "PREFILL_BYTES", engine._prefill_bytes(2, 41))
    on_gpu = engine._prefill_passes(reqs, prompts)
    assert on_gpu == [[0, 1, 2], [3, 4], [5, 6], [7]]  # two 41-token prompts fit, three do not; 200 alone
    assert all(engine._prefill_bytes(len(p), max(len(prompts[reqs[j]]) for j in p)) <= mod.PREFILL_BYTES
               for p in on_gpu[:-1])
    engine.prefill_chunk = mod.CPU_PREFILL_CHUNK


def test_prompts_longer_than_the_hint_run_in_a_second_call_with_the_same_answers(pair):
    ref, eng = pair
    # the byte tokenizer gives "é" two tokens: the last request is short in characters (so the feed
    # orders it last) but the longest in tokens, beyond the cache sized from the first block
    reqs = [Request.chat("tell me about films " * 6 + str(i), max_new_tokens=6) for i in range(7)]
    reqs.append(Request.chat("é" * 110, max_new_tokens=6))
    engine = eng._engine()
    seen = []
    inner = engine.generate

    def spy(prompts, *args, **kwargs):
        results = inner(prompts, *args, **kwargs)
        seen.append((isinstance(prompts, PromptFeed), sum(r is None for r in results)))
        return results

    engine.generate = spy
    try:
        got = eng.generate(reqs)
    finally:
        del engine.generate
    assert seen == [(True, 1), (False, 0)]  # fed, one set aside; then a plain call for it
    want = ref.generate(reqs)
    assert [r.text for r in got] == [r.text for r in want]
    assert [r.prompt_tokens for r in got] == [r.prompt_tokens for r in want]
    assert got[-1].prompt_tokens > max(r.prompt_tokens for r in got[:-1])


def test_the_engine_is_fenced_off_from_the_adapter():
    """The engine's modules import only the adapter protocol, the prompt feed, the generation types and each
    other (every import, function-level too): the adapter may load the engine, never the other way round."""
    import ast
    from pathlib import Path

    import recaudit.adapters.hf.engine as engine_pkg

    allowed = {"recaudit.adapters.base", "recaudit.adapters.prompt_feed", "recaudit.adapters.hf.types"}
    folder = Path(engine_pkg.__file__).parent
    seen = set()
    for path in folder.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            seen |= {n for n in names if n.startswith("recaudit")}
    outside = {n for n in seen if n not in allowed and not n.startswith("recaudit.adapters.hf.engine")}
    assert not outside, f"the engine imports {sorted(outside)}"
    assert "recaudit.adapters.hf.types" in seen  # the walk saw the engine's real imports
