"""Host work the engine fits in while queued decode steps run on the GPU: handing finished sequences
to the caller, tokenising a ``PromptFeed``'s next prompts, and setting aside prompts too long for
the slots (the caller runs those in a call sized for them)."""

from __future__ import annotations

from collections import deque
from typing import Any, Callable

from recaudit.adapters.base import AdapterError
from recaudit.adapters.hf.types import Generated
from recaudit.adapters.prompt_feed import PromptFeed

# finished sequences per on_done call while the GPU runs ahead: small enough that the host stops soon
# after the GPU has caught up, large enough to batch detokenising
HANDOVER_BATCH = 16

OnDone = Callable[[list[tuple[int, Generated]]], None]


def admit(take: list[int], feed: PromptFeed, fits: int, set_aside: set[int]) -> list[int]:
    """The prompts of ``take`` that fit a slot; longer ones go to ``set_aside`` (the caller runs them
    in a call sized for them)."""
    kept = []
    for r in take:
        prompt = feed[r]
        if not prompt:
            raise AdapterError("engine='recaudit' needs non-empty prompts")
        if len(prompt) <= fits:
            kept.append(r)
        else:
            set_aside.add(r)
    return kept


def prepare_ahead(feed: PromptFeed, device: Any, stats: dict[str, int]) -> None:
    """Tokenise the feed's next prompts while queued decode steps run (on a GPU; a CPU computes the
    steps in this thread, so there the feed prepares prompts when they are first needed)."""
    import torch

    if device.type != "cuda":
        return
    queued = torch.cuda.Event()
    queued.record()
    while not queued.query() and feed.prepare_next():
        stats["feed_blocks_ahead"] += 1


def hand_over(backlog: deque[tuple[int, Generated]], on_done: OnDone, device: Any, stats: dict[str, int]) -> None:
    """Hand finished sequences to ``on_done`` while the queued decode steps run: on a GPU in small
    batches until it has caught up (the rest waits for the next steps; sequences often finish in
    waves), at least one batch per call so the backlog drains; on a CPU all at once."""
    import torch

    if device.type != "cuda":
        on_done(list(backlog))
        backlog.clear()
        return
    queued = torch.cuda.Event()
    queued.record()
    while backlog:
        on_done([backlog.popleft() for _ in range(min(HANDOVER_BATCH, len(backlog)))])
        if queued.query():
            stats["gpu_caught_up"] += 1
            break


def flush(backlog: deque[tuple[int, Generated]], on_done: OnDone) -> None:
    """Hand the rest over once the last step is done, in ``HANDOVER_BATCH``-sized calls."""
    while backlog:
        on_done([backlog.popleft() for _ in range(min(HANDOVER_BATCH, len(backlog)))])
