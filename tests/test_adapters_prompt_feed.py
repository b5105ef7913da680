"""PromptFeed: prompts prepared block by block, the first at once, the rest on demand or ahead
(the engine's use of it is tested in test_adapters_engine.py)."""

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
