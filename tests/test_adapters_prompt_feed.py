"""PromptFeed: prompts prepared block by block; the engine sets aside prompts longer than the feed's
length hint, and HFCausalLM runs them in a second call, so every request is answered as plain
``generate`` answers it."""

from __future__ import annotations

import pytest

from recaudit.adapters.prompt_feed import PromptFeed, prepared_ahead


def _counting_feed(n, first, block):
    calls = []

    def prepare(a, b):
        calls.append((a, b))
        return [[1] * (i + 1) for i in range(a, b)]  # prompt i has i + 1 tokens

    return PromptFeed(n, prepare, first=first, block=block), calls


def test_feed_prepares_the_first_block_now_and_the_rest_in_blocks_on_demand():
    feed, calls = _counting_feed(10, first=3, block=4)
    assert calls == [(0, 3)] and feed.ready == 3 and len(feed) == 10
    assert feed.longest == 3  # the hint comes from the first block only
    assert feed[4] == [1] * 5 and calls[-1] == (3, 7)  # one block past the end, covering index 4
    assert feed.prepare_next() and calls[-1] == (7, 10) and feed.ready == 10
    assert not feed.prepare_next()
    assert feed[-1] == [1] * 10 and feed[1:3] == [[1] * 2, [1] * 3] and len(list(feed)) == 10
    assert calls == [(0, 3), (3, 7), (7, 10)]  # nothing prepared twice
    with pytest.raises(IndexError):
        feed[10]
    assert prepared_ahead(feed) is feed and prepared_ahead([[1]]) is None


def test_feed_rejects_a_preparer_that_loses_prompts():
    with pytest.raises(ValueError, match="returned 1 prompts for 2"):
        PromptFeed(4, lambda a, b: [[1]], first=2)
    with pytest.raises(ValueError):
        PromptFeed(0, lambda a, b: [], first=1)


torch = pytest.importorskip("torch")
from recaudit.adapters.base import Request  # noqa: E402
from recaudit.adapters.hf import HFCausalLM  # noqa: E402


@pytest.fixture(scope="module")
def pair(tiny_lm_path):
    ref = HFCausalLM(tiny_lm_path, batch_size=2, device="cpu")
    with torch.no_grad():
        for name, p in ref.model.named_parameters():
            if "norm" not in name:
                p.mul_(4.0)  # distinct greedy outputs per prompt
    eng = HFCausalLM.from_model(ref.model, ref.tokenizer, name="tiny", batch_size=2, engine="recaudit")
    return ref, eng


@pytest.mark.usefixtures("one_torch_thread")
def test_prompts_longer_than_the_hint_run_in_a_second_call_with_the_same_answers(pair):
    ref, eng = pair
    # the byte tokenizer gives "é" two tokens: the last request is short in characters (so the feed
    # orders it last) but the longest in tokens, beyond the cache sized from the first block
    reqs = [Request.chat("tell me about films " * 6 + str(i), max_new_tokens=6) for i in range(5)]
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
