"""What a local model's generation is grouped by and what it returns: shared by the HF adapter and the
recaudit decode engine, so neither imports the other for its types."""

from __future__ import annotations

from dataclasses import dataclass

from recaudit.adapters.base import Request


@dataclass(frozen=True)
class GenSettings:
    """The settings that must be equal for requests to share one ``generate`` call."""

    max_new_tokens: int
    do_sample: bool
    temperature: float
    top_p: float
    repetition_penalty: float
    stop: tuple[str, ...]
    seed: int

    @classmethod
    def of(cls, r: Request) -> "GenSettings":
        sample = r.temperature > 0
        return cls(
            max_new_tokens=r.max_new_tokens,
            do_sample=sample,
            temperature=float(r.temperature) if sample else 1.0,
            top_p=float(r.top_p) if sample else 1.0,
            repetition_penalty=float(r.repetition_penalty),
            stop=tuple(r.stop),
            # greedy output does not depend on the seed, so greedy requests batch together
            seed=int(r.seed) if sample else 0,
        )


@dataclass
class Generated:
    """Token ids a model wrote for one prompt (EOS and padding removed) and why it stopped."""

    token_ids: list[int]
    hit_eos: bool
