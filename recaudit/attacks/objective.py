"""What an attack search maximises: the target's mean utility over the attacker's own users."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from recaudit.attacks.users import UserCase
from recaudit.attacks.victim import Victim


@dataclass(frozen=True)
class ObjectiveValue:
    """Mean search utility and top-K hit rate of one title over the attacker users."""

    value: float
    hit_rate: float


class TargetObjective:
    """Scores candidate titles for one target on the attacker users (memoised per title).

    ``evaluations`` counts distinct titles scored; the victim's ``queries`` counts model requests.
    """

    def __init__(self, victim: Victim, cases: Sequence[UserCase], target: str, k: int):
        if not cases:
            raise ValueError("the attacker needs at least one user case")
        self.victim = victim
        self.cases = list(cases)
        self.target = target
        self.k = int(k)
        self.evaluations = 0
        self._memo: dict[str, ObjectiveValue] = {}

    def __call__(self, titles: Sequence[str]) -> list[ObjectiveValue]:
        """Values for ``titles`` in order; each distinct title is sent to the victim once."""
        new = list(dict.fromkeys(t for t in titles if t not in self._memo))
        if new:
            out = self.victim.evaluate(self.cases, self.target, new, self.k)
            hits = out.hits(self.k)
            for i, t in enumerate(new):
                self._memo[t] = ObjectiveValue(float(np.mean(out.utility[i])), float(np.mean(hits[i])))
            self.evaluations += len(new)
        return [self._memo[t] for t in titles]

    def best(self, titles: Sequence[str]) -> tuple[str, ObjectiveValue]:
        """The title with the highest value (first one on ties)."""
        if not titles:
            raise ValueError("no candidate titles to choose from")
        values = self(titles)
        i = int(np.argmax([v.value for v in values]))
        return titles[i], values[i]
