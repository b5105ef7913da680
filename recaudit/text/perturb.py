"""Controlled title perturbations for measuring the grounding step (tests and benchmarks/grounding.py).

Each perturbation imitates a way an LLM writes a real title differently: changed case, a year
added or dropped, MovieLens' trailing article moved, character typos, a dropped word. All are
deterministic for a numpy Generator.
"""

from __future__ import annotations

import re
import string
from typing import Callable, Literal

import numpy as np

Perturbation = Literal["case", "year", "article", "typo1", "typo2", "drop_word", "combo"]
PERTURBATIONS: tuple[Perturbation, ...] = ("case", "year", "article", "typo1", "typo2", "drop_word", "combo")

__all__ = ["PERTURBATIONS", "perturb_title", "random_string"]


def perturb_title(title: str, kind: Perturbation, rng: np.random.Generator, year: int | None = None) -> str:
    """``title`` changed by one perturbation ``kind``."""
    try:
        fn = _KINDS[kind]
    except KeyError:
        raise ValueError(f"kind must be one of {PERTURBATIONS}, got {kind!r}") from None
    return fn(title, rng, year)


def random_string(rng: np.random.Generator, n_words: int = 3) -> str:
    """Letters that spell no title: ``n_words`` random lowercase words of 4–9 letters."""
    letters = np.array(list(string.ascii_lowercase))
    return " ".join("".join(rng.choice(letters, size=int(rng.integers(4, 10)))) for _ in range(n_words))


def _case(title: str, rng: np.random.Generator, year: int | None) -> str:
    return [str.lower, str.upper, str.swapcase][int(rng.integers(3))](title)


def _year(title: str, rng: np.random.Generator, year: int | None) -> str:
    return f"{title} ({year})" if year else f"{title} (1999)"


def _article(title: str, rng: np.random.Generator, year: int | None) -> str:
    m = re.match(r"^(The|A|An) (.+)$", title)
    return f"{m.group(2)}, {m.group(1)}" if m else title.lower()


def _typos(n: int) -> Callable[[str, np.random.Generator, int | None], str]:
    def apply(title: str, rng: np.random.Generator, year: int | None) -> str:
        chars = list(title)
        for _ in range(n):
            letters = [i for i, c in enumerate(chars) if c.isalpha()]
            if len(letters) < 2:
                break
            i = letters[int(rng.integers(len(letters)))]
            op = int(rng.integers(4))
            if op == 0:  # delete
                del chars[i]
            elif op == 1 and i + 1 < len(chars):  # swap with the next character
                chars[i], chars[i + 1] = chars[i + 1], chars[i]
            elif op == 2:  # substitute
                chars[i] = str(rng.choice(list(string.ascii_lowercase)))
            else:  # insert
                chars.insert(i, str(rng.choice(list(string.ascii_lowercase))))
        return "".join(chars)

    return apply


def _drop_word(title: str, rng: np.random.Generator, year: int | None) -> str:
    words = title.split()
    if len(words) < 3:
        return title
    del words[int(rng.integers(1, len(words)))]
    return " ".join(words)


def _combo(title: str, rng: np.random.Generator, year: int | None) -> str:
    return _year(_case(_typos(1)(title, rng, year), rng, year), rng, year)


_KINDS: dict[str, Callable[[str, np.random.Generator, int | None], str]] = {
    "case": _case,
    "year": _year,
    "article": _article,
    "typo1": _typos(1),
    "typo2": _typos(2),
    "drop_word": _drop_word,
    "combo": _combo,
}
