"""Prompts tokenised block by block, so a long engine call starts before every prompt is ready.

Rendering chat templates and tokenising thousands of prompts takes about a second of host time
(a FaiRLLM audit's 6,400 prompts on an H200 host), and before this the GPU sat idle through it.
A ``PromptFeed`` prepares the first block at once, enough to fill the engine's slots, and the
rest while the engine has queued decode steps and the host would otherwise wait
(``DecodeEngine`` calls ``prepare_next``), or on demand when a prompt is indexed first.
"""

from __future__ import annotations

from typing import Callable, Iterator, Sequence, overload

FEED_BLOCK = 64  # prompts per background block: a few ms of host work, shorter than a decode step batch


class PromptFeed(Sequence[list[int]]):
    """Token ids of ``n`` prompts; ``prepare(start, stop)`` gives those of prompts ``start..stop-1``.

    ``first`` prompts are prepared when the feed is made; ``longest`` is the longest of them, the
    engine's hint for its cache length. Callers order prompts longest first (by a cheap proxy), so the
    hint is usually the longest of all; the engine sets aside any later prompt that does not fit."""

    def __init__(self, n: int, prepare: Callable[[int, int], list[list[int]]], first: int, block: int = FEED_BLOCK):
        if n < 1 or block < 1:
            raise ValueError("PromptFeed needs n >= 1 and block >= 1")
        self._n, self._prepare, self._block = n, prepare, block
        self._ids: list[list[int]] = []
        self._extend(min(n, max(1, first)))
        self.longest = max(len(p) for p in self._ids)

    def _extend(self, stop: int) -> None:
        start = len(self._ids)
        if stop <= start:
            return
        got = self._prepare(start, stop)
        if len(got) != stop - start:
            raise ValueError(f"prompt preparation returned {len(got)} prompts for {stop - start}")
        self._ids.extend(got)

    def __len__(self) -> int:
        return self._n

    @overload
    def __getitem__(self, i: int) -> list[int]: ...

    @overload
    def __getitem__(self, i: slice) -> list[list[int]]: ...

    def __getitem__(self, i: int | slice) -> list[int] | list[list[int]]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(self._n))]
        if i < 0:
            i += self._n
        if not 0 <= i < self._n:
            raise IndexError(i)
        if i >= len(self._ids):
            self._extend(min(self._n, max(i + 1, len(self._ids) + self._block)))
        return self._ids[i]

    def __iter__(self) -> Iterator[list[int]]:
        return (self[i] for i in range(self._n))

    @property
    def ready(self) -> int:
        """Prompts prepared so far (always a prefix)."""
        return len(self._ids)

    def prepare_next(self) -> bool:
        """Prepare the next block; False when every prompt was ready already."""
        if len(self._ids) >= self._n:
            return False
        self._extend(min(self._n, len(self._ids) + self._block))
        return True


def prepared_ahead(prompts: Sequence[Sequence[int]]) -> PromptFeed | None:
    """``prompts`` as a feed whose later prompts are still to be prepared, else None (a plain list)."""
    return prompts if isinstance(prompts, PromptFeed) else None
