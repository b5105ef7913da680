"""Responses handed over as they are ready (``on_response``): the engine calls back while it still
decodes, the cache relays hits and misses (duplicates too), other adapters are called back after
the fact, and a probe's ``prepare`` sees every response before ``evaluate``."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from recaudit.adapters.base import Request, Response, generate_streaming  # noqa: E402
from recaudit.adapters.cache import CachedAdapter  # noqa: E402
from recaudit.adapters.callable import CallableAdapter  # noqa: E402
from recaudit.adapters.hf import HFCausalLM  # noqa: E402
from recaudit.checks import CheckContext  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def engine_adapter(tiny_lm_path):
    """A tiny model behind the recaudit engine with 2 slots, EOS switched off so lengths decide."""
    a = HFCausalLM(tiny_lm_path, batch_size=2, device="cpu", engine="recaudit")
    a.eos_ids = []
    return a


def _requests():
    # different lengths finish at different steps, so slots free up and refill during the call
    return [Request.chat(f"item {i}", max_new_tokens=n) for i, n in enumerate([3, 9, 4, 12, 5])]


def test_engine_calls_back_while_decoding(engine_adapter):
    engine = engine_adapter._engine()
    prompts = engine_adapter.prompts_ids(_requests())
    from recaudit.adapters.hf.types import GenSettings

    steps_at_call: list[int] = []
    got: dict[int, object] = {}

    def on_done(pairs):
        steps_at_call.append(engine.stats["decode_steps"])
        for i, g in pairs:
            assert i not in got
            got[i] = g

    start = engine.stats["decode_steps"]
    settings = GenSettings.of(Request.chat("x", max_new_tokens=12))
    out = engine.generate(prompts, settings, on_done=on_done)
    assert sorted(got) == list(range(len(prompts)))
    assert [got[i] for i in range(len(prompts))] == out
    assert len(steps_at_call) >= 3  # several hand-overs, not one at the end
    assert steps_at_call[0] < engine.stats["decode_steps"]  # the first came while steps remained
    assert engine.stats["decode_steps"] > start


@pytest.mark.parametrize("engine", ["recaudit", "generate"])
def test_hf_on_response_gives_every_response_once(engine_adapter, engine):
    adapter = engine_adapter if engine == "recaudit" else HFCausalLM.from_model(
        engine_adapter.model, engine_adapter.tokenizer, batch_size=2, engine="generate")
    adapter.eos_ids = []
    reqs = _requests()
    seen: list[tuple[int, Response]] = []
    out = adapter.generate(reqs, on_response=lambda i, r: seen.append((i, r)))
    assert sorted(i for i, _ in seen) == list(range(len(reqs)))
    assert all(out[i] is r for i, r in seen)
    assert [r.completion_tokens for r in out] == [q.max_new_tokens for q in reqs]
    assert [r.text for r in out] == [r.text for r in adapter.generate(reqs)]  # same answers without a callback


def test_cache_relays_misses_with_duplicates_then_hits(engine_adapter, tmp_path):
    cached = CachedAdapter(engine_adapter, tmp_path / "c.sqlite", chunk_size=2)
    reqs = _requests()
    reqs = reqs + [reqs[1]]  # a duplicate is computed once and handed to both indices
    seen: dict[int, Response] = {}
    cold = cached.generate(reqs, on_response=lambda i, r: seen.__setitem__(i, r))
    assert sorted(seen) == list(range(len(reqs))) and seen[5] is seen[1]
    assert [seen[i].text for i in range(len(reqs))] == [r.text for r in cold]
    seen.clear()
    warm = cached.generate(reqs, on_response=lambda i, r: seen.__setitem__(i, r))
    assert sorted(seen) == list(range(len(reqs))) and all(r.cached for r in seen.values())
    assert [r.text for r in warm] == [r.text for r in cold]
    cached.close()


def test_plain_adapters_are_called_back_after_the_call():
    calls = []
    adapter = CallableAdapter(lambda r: (calls.append(r.user_text), r.user_text.upper())[1])
    seen = []
    out = generate_streaming(adapter, [Request.chat("a"), Request.chat("b")],
                             lambda i, r: seen.append((i, r.text, len(calls))))
    assert seen == [(0, "A", 2), (1, "B", 2)] and [r.text for r in out] == ["A", "B"]
    assert generate_streaming(adapter, [Request.chat("c")], None)[0].text == "C"


def test_context_offsets_indices_across_chunks():
    adapter = CallableAdapter(lambda r: r.user_text)
    ctx = CheckContext(adapter=adapter, batch_size=2)
    seen = {}
    out = ctx.generate([Request.chat(str(i)) for i in range(5)], on_response=lambda i, r: seen.__setitem__(i, r.text))
    assert seen == {i: str(i) for i in range(5)} and [r.text for r in out] == [str(i) for i in range(5)]


class _DiesMidway:
    """A streaming adapter that hands over ``ok`` answers, then fails (a run killed mid-chunk)."""

    streams_responses = True
    fingerprint = {"adapter": "dies-midway"}

    def __init__(self, ok: int):
        self.ok, self.calls = ok, 0

    def generate(self, requests, on_response=None):
        for i, r in enumerate(requests[: self.ok]):
            self.calls += 1
            on_response(i, Response(text=r.user_text.upper()))
        if len(requests) > self.ok:
            raise KeyboardInterrupt("killed")
        return [Response(text=r.user_text.upper()) for r in requests]


def test_cache_keeps_answers_streamed_before_a_kill(tmp_path):
    reqs = [Request.chat(f"q{i}") for i in range(5)]
    with pytest.raises(KeyboardInterrupt):
        CachedAdapter(_DiesMidway(ok=3), tmp_path / "c.sqlite").generate(reqs, on_response=lambda i, r: None)
    rerun = _DiesMidway(ok=5)
    cached = CachedAdapter(rerun, tmp_path / "c.sqlite")
    out = cached.generate(reqs)
    assert [r.text for r in out] == [f"Q{i}" for i in range(5)]
    assert [r.cached for r in out] == [True, True, True, False, False] and rerun.calls == 2
    cached.close()


class _Fake:
    """Says whether it streams; given ``on_response`` without streaming, it fails (as a plain adapter would)."""

    fingerprint = {"adapter": "fake"}

    def __init__(self, streams: bool):
        self.streams_responses = streams
        self.inside = False

    def generate(self, requests, on_response=None):
        if on_response is not None and not self.streams_responses:
            raise TypeError("generate() got an unexpected keyword argument 'on_response'")
        self.inside = True
        out = [Response(text=r.user_text) for r in requests]
        for i, r in enumerate(out):
            if on_response is not None:
                on_response(i, r)
        self.inside = False
        return out


@pytest.mark.parametrize("streams", [True, False])
def test_the_streaming_protocol_decides_who_calls_back(streams):
    """A StreamingAdapter that says so calls back inside generate; one that says streams_responses = False is
    called as a plain adapter and the callback runs afterwards."""
    from recaudit.adapters.base import StreamingAdapter

    adapter = _Fake(streams)
    assert isinstance(adapter, StreamingAdapter)  # the protocol names the members; the flag says yes or no
    inside = []
    out = generate_streaming(adapter, [Request.chat("a"), Request.chat("b")], lambda i, r: inside.append(adapter.inside))
    assert inside == [streams, streams] and [r.text for r in out] == ["a", "b"]


def test_every_shipped_adapter_declares_its_capabilities(engine_adapter, tmp_path):
    """The engine, the endpoint client and the cache are StreamingAdapters; the engine and the endpoint say what
    they keep in flight, which sets requests per call; a callable is neither."""
    from recaudit.adapters.base import BATCHES_PER_CALL, ConcurrentAdapter, StreamingAdapter, requests_per_call
    from recaudit.adapters.openai_compat import OpenAICompatible

    endpoint = OpenAICompatible("http://127.0.0.1:9/v1", "m", max_concurrency=5, server="vllm")
    cached = CachedAdapter(engine_adapter, tmp_path / "c.sqlite")
    plain = CallableAdapter(lambda r: r.user_text)
    assert [isinstance(a, StreamingAdapter) for a in (engine_adapter, endpoint, cached, plain)] == [True, True, True, False]
    assert [isinstance(a, ConcurrentAdapter) for a in (engine_adapter, endpoint, plain)] == [True, True, False]
    assert requests_per_call(engine_adapter) == BATCHES_PER_CALL * 2  # batch_size=2 slots
    assert requests_per_call(endpoint) == BATCHES_PER_CALL * 5
    assert requests_per_call(plain, floor=3) == 3
    cached.close()
    endpoint.close()
