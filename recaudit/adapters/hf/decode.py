"""Token ids back to text, fast: the tokenizer backend's batch decode where it writes what
``tokenizer.decode`` writes, and the stop-string criterion of the ``model.generate`` engines."""

from __future__ import annotations

import weakref
from typing import Any, Sequence

# decodes ``tokenizer.decode`` would post-process ("a ." -> "a."), to see whether it does
_CLEAN_UP_PROBE = "a . b , c ! d ? e n't f 'm g 's h 've i 're"


def decode_many(tokenizer: Any, rows: Sequence[Sequence[int]]) -> list[str]:
    """Texts of many token rows, special tokens skipped, as ``tokenizer.decode`` writes them: the fast
    tokenizer's own batch decode (Rust, parallel), plus transformers' space clean-up where this
    tokenizer applies it; ``batch_decode`` where the two could differ."""
    backend = getattr(tokenizer, "_tokenizer", None)
    mode = _fast_decode_mode(tokenizer) if backend is not None and hasattr(backend, "decode_batch") else None
    if mode is None:
        return tokenizer.batch_decode(rows, skip_special_tokens=True)
    assert backend is not None  # mode is set only when the backend decodes batches
    texts = backend.decode_batch([list(r) for r in rows], skip_special_tokens=True)
    return [tokenizer.clean_up_tokenization(t) for t in texts] if mode == "clean_up" else texts


def _fast_decode_mode(tokenizer: Any) -> str | None:
    """"plain" or "clean_up" when the backend's decode (then transformers' clean-up) gives what
    ``tokenizer.decode`` gives on a probe that the clean-up would change; None otherwise. Decided once
    per tokenizer: transformers 4.x cleans up BPE output where the flag says so, 5.x ignores the flag."""
    flag = bool(getattr(tokenizer, "clean_up_tokenization_spaces", False))
    try:
        seen_flag, seen_mode = _FAST_DECODE[tokenizer]
        if seen_flag == flag:  # decided for this flag (callers may change it)
            return seen_mode
    except (KeyError, TypeError):
        pass
    mode: str | None = None
    try:
        ids = tokenizer(_CLEAN_UP_PROBE, add_special_tokens=False)["input_ids"]
        want = tokenizer.decode(ids, skip_special_tokens=True)
        raw = tokenizer._tokenizer.decode(list(ids), skip_special_tokens=True)
        if raw == want:
            mode = "plain"  # no clean-up, or the flag is set but not applied (transformers 5 with BPE)
        elif hasattr(tokenizer, "clean_up_tokenization") and tokenizer.clean_up_tokenization(raw) == want:
            mode = "clean_up"
    except Exception:  # an unusual tokenizer: the slow, always-right path
        mode = None
    try:
        _FAST_DECODE[tokenizer] = (flag, mode)
    except TypeError:  # not weak-referenceable: decided again next time
        pass
    return mode


_FAST_DECODE: "weakref.WeakKeyDictionary[Any, tuple[bool, str | None]]" = weakref.WeakKeyDictionary()


class StopOnStrings:
    """Stopping criterion: a row is done once its generated text contains a stop string.

    Only the tail of the generated tokens is decoded each step (a stop string of L characters
    lies within the last 4L+4 tokens even for byte-level tokenizers)."""

    def __init__(self, tokenizer: Any, stops: Sequence[str], prompt_len: int):
        self.tokenizer = tokenizer
        self.stops = [s for s in stops if s]
        self.prompt_len = prompt_len
        self.window = 4 * max(len(s) for s in self.stops) + 4

    def __call__(self, input_ids: Any, scores: Any = None, **kwargs: Any) -> Any:
        import torch

        gen = input_ids[:, self.prompt_len :]
        tail = gen[:, -self.window :].tolist()
        texts = self.tokenizer.batch_decode(tail, skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
