"""One shilling audit: search each attack on attacker users, defend, measure exposure on held-out users.

For every target item:

1. the attacker's search (each strategy) runs against the *search victim* on the attacker users;
2. each defense rewrites the clean and every adversarial title (the detector compares with the
   clean title, the previous version a platform keeps);
3. every distinct title (clean, adversarial, defended) is ranked for the held-out users by every
   victim; a victim other than the search victim measures transfer.

The result holds raw per-user hits; ``recaudit.attacks.check`` turns it into metrics with CIs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence, TypeVar

import numpy as np

from recaudit.attacks.defenses import Defense, DriftDetector, DriftFlag, Vocabulary
from recaudit.attacks.objective import TargetObjective
from recaudit.attacks.stealth import EmbedFn, char_edits, semantic_similarity, word_edits
from recaudit.attacks.strategies import AttackOutcome, Strategy
from recaudit.attacks.users import UserCase, UserSplit, build_cases
from recaudit.attacks.victim import Victim
from recaudit.data.catalog import Catalog, Interactions

T = TypeVar("T")
DefenseFactory = Callable[[Vocabulary], Defense]


@dataclass(frozen=True)
class ShillingSettings:
    """Sizes and seeds of one run."""

    k: int = 3
    n_candidates: int | None = 10  # None: every unseen item (the full-catalogue protocol)
    history_len: int = 10
    like_threshold: float = 3.0
    search_victim: str = "pyes"
    use_wordnet: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.k < 1:
            raise ValueError(f"k must be >= 1, got {self.k}")
        if self.n_candidates is not None and self.n_candidates <= self.k:
            raise ValueError(f"n_candidates ({self.n_candidates}) must exceed k ({self.k}), or every item is exposed")


@dataclass
class AttackRecord:
    """One attack on one target: the search outcome, defended titles, held-out hits, stealth."""

    outcome: AttackOutcome
    defended_titles: dict[str, str] = field(default_factory=dict)  # defense → title
    hits: dict[str, np.ndarray] = field(default_factory=dict)  # victim → (users,) bool
    defended_hits: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # (defense, victim) → hits
    others: dict[str, np.ndarray] = field(default_factory=dict)  # victim → (users,) frozensets of other top-K items
    char_edits: int = 0
    word_edits: int = 0
    similarity: float = 1.0
    detector: DriftFlag | None = None


@dataclass
class TargetRun:
    """Everything measured for one target item."""

    target: str
    clean_title: str
    clean_hits: dict[str, np.ndarray]
    clean_defended_titles: dict[str, str]
    clean_defended_hits: dict[tuple[str, str], np.ndarray]
    attacks: list[AttackRecord]
    eval_queries: dict[str, int]
    eval_wall_s: float
    search_setup_queries: int = 0  # victim requests shared by every attack (clean title, competitors)
    clean_others: dict[str, np.ndarray] = field(default_factory=dict)  # victim → other top-K items, clean title
    pool_size: float = 0.0  # mean candidates per held-out user (the target included)


@dataclass
class ShillingRun:
    """A whole run: settings, the user split, one ``TargetRun`` per target."""

    settings: ShillingSettings
    split: UserSplit
    victims: list[str]
    defenses: list[str]
    targets: list[TargetRun]

    @property
    def protocol(self) -> str:
        """The exposure protocol's name: ``pool-N-topK`` (target + N−1 sampled unseen items) or ``full-topK``."""
        s = self.settings
        return f"full-top{s.k}" if s.n_candidates is None else f"pool-{s.n_candidates}-top{s.k}"

    def hits_matrix(self, victim: str, pick: Callable[[TargetRun], np.ndarray | None]) -> np.ndarray | None:
        """(users, targets) hits from ``pick`` per target; None when any target lacks them."""
        cols = [pick(t) for t in self.targets]
        if any(c is None for c in cols) or not cols:
            return None
        return np.stack(cols, axis=1)


def _identity_progress(it: Iterable[T], desc: str = "", total: int | None = None) -> Iterable[T]:
    return it


def run_shilling(
    catalog: Catalog,
    interactions: Interactions,
    targets: Sequence[str],
    split: UserSplit,
    victims: Mapping[str, Victim],
    strategies: Sequence[Strategy],
    defenses: Sequence[DefenseFactory],
    settings: ShillingSettings,
    embed_fn: EmbedFn | None = None,
    progress=_identity_progress,
) -> ShillingRun:
    """Attack, defend and measure every target (see the module docstring)."""
    if settings.search_victim not in victims:
        raise ValueError(f"search_victim {settings.search_victim!r} is not among the victims {sorted(victims)}")
    if not targets:
        raise ValueError("targets is empty")
    s = settings
    runs = []
    defense_names: list[str] = []
    for target in progress(list(targets), "shilling: targets", len(targets)):
        cases = dict(
            attacker=build_cases(interactions, catalog, split.attacker, target, s.n_candidates, s.history_len, s.like_threshold, s.seed),
            held_out=build_cases(interactions, catalog, split.held_out, target, s.n_candidates, s.history_len, s.like_threshold, s.seed),
        )
        clean = catalog.get(target).title
        search_victim = victims[s.search_victim]
        # The victim's one-off work for these users (P(Yes) of the other candidates) is done and
        # counted here, and each strategy gets a fresh objective, so an attack's count is its own.
        before = search_victim.queries
        TargetObjective(search_victim, cases["attacker"], target, s.k)([clean])
        setup_queries = search_victim.queries - before
        outcomes = [
            strat.run(clean, TargetObjective(search_victim, cases["attacker"], target, s.k), seed=s.seed)
            for strat in strategies
        ]
        vocab = Vocabulary.from_catalog(catalog, exclude=[target], use_wordnet=s.use_wordnet)
        defs = [make(vocab) for make in defenses]
        defense_names = [d.name for d in defs]
        run = _measure(target, clean, outcomes, defs, victims, cases["held_out"], s.k, embed_fn)
        run.search_setup_queries = setup_queries
        run.pool_size = float(np.mean([len(c.candidates) for c in cases["held_out"]]))
        runs.append(run)
    return ShillingRun(settings=s, split=split, victims=list(victims), defenses=defense_names, targets=runs)


def _measure(
    target: str,
    clean: str,
    outcomes: Sequence[AttackOutcome],
    defs: Sequence[Defense],
    victims: Mapping[str, Victim],
    cases: Sequence[UserCase],
    k: int,
    embed_fn: EmbedFn | None,
) -> TargetRun:
    start = time.perf_counter()
    records = [AttackRecord(o) for o in outcomes]
    live = [r for r in records if r.outcome.available]
    submitted = [clean] + [r.outcome.adversarial_title for r in live]
    defended = {d.name: d.defend(submitted, [clean] * len(submitted)) for d in defs}
    titles = list(dict.fromkeys(submitted + [t for ts in defended.values() for t in ts]))
    queries0 = {name: v.queries for name, v in victims.items()}
    outs = {name: v.evaluate(cases, target, titles, k) for name, v in victims.items()}
    hits = {name: o.hits(k) for name, o in outs.items()}
    row = {t: i for i, t in enumerate(titles)}

    def others(victim: str, title: str) -> np.ndarray | None:
        o = outs[victim].others
        return None if o is None else o[row[title]]

    def h(victim: str, title: str) -> np.ndarray:
        return hits[victim][row[title]]

    sims = semantic_similarity([(clean, r.outcome.adversarial_title) for r in live], embed_fn)
    det = next((d for d in defs if isinstance(d, DriftDetector)), None)
    flags = det.inspect([r.outcome.adversarial_title for r in live], [clean] * len(live)) if det else []
    for i, r in enumerate(live):
        adv = r.outcome.adversarial_title
        r.hits = {v: h(v, adv) for v in victims}
        r.others = {v: o for v in victims if (o := others(v, adv)) is not None}
        r.defended_titles = {d: ts[i + 1] for d, ts in defended.items()}
        r.defended_hits = {(d, v): h(v, ts[i + 1]) for d, ts in defended.items() for v in victims}
        r.char_edits, r.word_edits, r.similarity = char_edits(clean, adv), word_edits(clean, adv), float(sims[i])
        r.detector = flags[i] if flags else None
    return TargetRun(
        target=target,
        clean_title=clean,
        clean_hits={v: h(v, clean) for v in victims},
        clean_defended_titles={d: ts[0] for d, ts in defended.items()},
        clean_defended_hits={(d, v): h(v, ts[0]) for d, ts in defended.items() for v in victims},
        attacks=records,
        eval_queries={name: v.queries - queries0[name] for name, v in victims.items()},
        eval_wall_s=time.perf_counter() - start,
        clean_others={v: o for v in victims if (o := others(v, clean)) is not None},
    )
