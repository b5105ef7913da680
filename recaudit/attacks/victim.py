"""The recommender under attack, over any adapter: where does the target land for each user?

Two victims behind one ``Victim`` protocol:

- ``PYesVictim`` — TALLRec-style point-wise scoring: every candidate gets P(Yes) for the
  TALLRec prompt (``recaudit.tallrec.prompts``) via ``adapter.score``; candidates are ranked by
  it. Only the target's title changes during an attack, so the other candidates' scores are
  computed once per user and cached: one attack query is one scoring request per user.
- ``RankingVictim`` — list-wise prompting: the adapter is asked to rank the numbered candidate
  titles and write its top K; the reply is parsed with ``recaudit.text.parse.parse_list`` and
  grounded to that user's candidates with ``recaudit.text.ground.Grounder``.

``evaluate`` returns, per (title, user), the target's 0-based rank and a smooth *utility* in
[0, 1] that the attack search maximises (a hit in the top K alone is too flat to search on).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from recaudit.evidence import Outcome
from recaudit.adapters.base import Adapter, Request
from recaudit.attacks.prompts import ShillingPrompts, default_prompts, fill
from recaudit.attacks.users import UserCase
from recaudit.checks import CheckContext
from recaudit.data.catalog import Catalog, Item


def as_context(calls: Adapter | CheckContext) -> CheckContext:
    """A CheckContext for model calls (batching, progress); a bare adapter gets a plain one."""
    return calls if isinstance(calls, CheckContext) else CheckContext(adapter=calls)


@dataclass(frozen=True)
class TargetOutcome:
    """Target rank (0-based; ``n_candidates`` when not ranked) and search utility, shape (titles, users)."""

    ranks: np.ndarray
    utility: np.ndarray
    others: np.ndarray | None = None  # (titles, users) frozensets: the other items in the top K

    def hits(self, k: int) -> np.ndarray:
        """Boolean (titles, users): the target is in the top ``k``."""
        return self.ranks < k


@runtime_checkable
class Victim(Protocol):
    """A recommender that places a target item among each user's candidates."""

    name: str
    queries: int  # model requests sent so far

    def evaluate(self, cases: Sequence[UserCase], target: str, titles: Sequence[str], k: int) -> TargetOutcome:
        """Rank of ``target`` for every case when its title is each of ``titles``."""
        ...


def _check_k(k: int, cases: Sequence[UserCase]) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    if not cases:
        raise ValueError("cases is empty: no user to evaluate")


class PYesVictim:
    """TALLRec-style victim: candidates ranked by P(Yes) from ``adapter.score``.

    ``utility`` = sigmoid((P_target − P_K) / temperature) with P_K the K-th highest competitor
    score: 0.5 at the top-K boundary, near 1 well inside it. Ties count against the target.
    """

    name = "pyes"

    def __init__(self, calls: Adapter | CheckContext, catalog: Catalog, template=None, temperature: float = 0.05):
        from recaudit.tallrec.prompts import default_template

        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.ctx = as_context(calls)
        self.catalog = catalog
        self.template = template or default_template()
        self.temperature = float(temperature)
        self.queries = 0
        self._competitors: dict[tuple[tuple[str, tuple[str, ...], tuple[str, ...]], str], float] = {}

    def request(self, case: UserCase, title: str) -> Request:
        """The Yes/No request for one user and one item title."""
        return Request(
            messages=self.template.messages(case.liked, case.disliked, title),
            max_new_tokens=2,
            options=tuple(self.template.options),
            metadata=(("user_id", case.user_id), ("check", "shilling")),
        )

    def score_titles(self, pairs: Sequence[tuple[UserCase, str]], desc: str = "shilling: P(Yes)") -> np.ndarray:
        """P(Yes) for each (user case, title) pair."""
        if not pairs:
            return np.zeros(0)
        self.queries += len(pairs)
        return np.asarray(self.ctx.score([self.request(c, t) for c, t in pairs], desc=desc), dtype=float)

    def competitor_scores(self, cases: Sequence[UserCase], target: str) -> list[np.ndarray]:
        """P(Yes) of every non-target candidate per case; each (user history, item) is scored once.

        A competitor's score does not depend on the target, so targets sharing a user reuse it
        (with the full-catalogue pool that is most of the cost).
        """
        keys = {c.user_id: (c.user_id, c.liked, c.disliked) for c in cases}
        missing = list(dict.fromkeys(
            (c.user_id, i) for c in cases for i in c.candidates if i != target and (keys[c.user_id], i) not in self._competitors
        ))
        by_user = {c.user_id: c for c in cases}
        scores = self.score_titles([(by_user[u], self.catalog.get(i).title) for u, i in missing], desc="shilling: competitors")
        for (u, i), sc in zip(missing, scores):
            self._competitors[(keys[u], i)] = float(sc)
        return [np.array([self._competitors[(keys[c.user_id], i)] for i in c.candidates if i != target]) for c in cases]

    def evaluate(self, cases: Sequence[UserCase], target: str, titles: Sequence[str], k: int) -> TargetOutcome:
        """Rank the target by P(Yes) against the cached competitor scores."""
        _check_k(k, cases)
        comps = self.competitor_scores(cases, target)
        s = self.score_titles([(c, t) for t in titles for c in cases]).reshape(len(titles), len(cases))
        ranks = np.zeros(s.shape, dtype=int)
        util = np.zeros(s.shape, dtype=float)
        others = np.empty(s.shape, dtype=object)
        for j, comp in enumerate(comps):
            ranks[:, j] = (comp[None, :] >= s[:, j : j + 1]).sum(axis=1)
            ids = [i for i in cases[j].candidates if i != target]
            order = [ids[x] for x in np.argsort(-comp, kind="stable")]
            for a in range(len(titles)):  # the target in the top K pushes the K-th competitor out
                others[a, j] = frozenset(order[: k - 1 if ranks[a, j] < k else k])
            if len(comp) < k:
                util[:, j] = 1.0
            else:
                kth = np.sort(comp)[::-1][k - 1]
                util[:, j] = 1.0 / (1.0 + np.exp(-(s[:, j] - kth) / self.temperature))
        return TargetOutcome(ranks=ranks, utility=util, others=others)


class RankingVictim:
    """Prompt-ranking victim: the adapter writes its top K of a numbered candidate list.

    The reply is parsed (``parse_list``) and grounded to the user's candidates only
    (``Grounder``: exact, fuzzy, then MiniLM when the model rewrote a title, e.g. dropped an
    alternate title in parentheses or "corrected" an adversarial one). ``utility`` is the reciprocal
    rank of the target (0 when it is not written). ``parse_status`` counts ok/short/empty replies.
    """

    name = "ranking"

    def __init__(
        self,
        calls: Adapter | CheckContext,
        catalog: Catalog,
        prompts: ShillingPrompts | None = None,
        use_embeddings: bool = True,
        fuzzy_threshold: float = 90.0,
    ):
        self.ctx = as_context(calls)
        self.catalog = catalog
        self.prompts = prompts or default_prompts()
        self.use_embeddings = use_embeddings
        self.fuzzy_threshold = fuzzy_threshold
        self.queries = 0
        self.parse_status: Counter[str] = Counter()

    def request(self, case: UserCase, target: str, title: str, k: int) -> Request:
        """The ranking request for one user, with the target shown under ``title``."""
        lines = [f"{n}. {_one_line(self._title(i, target, title))}" for n, i in enumerate(case.candidates, 1)]
        history = ", ".join(f'"{_one_line(t)}"' for t in case.liked) or "(none)"
        text = fill(
            self.prompts.ranking, History=history, Candidates="\n".join(lines), N=str(len(case.candidates)), K=str(k)
        )
        settings = dict(self.prompts.ranking_settings)
        return Request.chat(text, metadata=(("user_id", case.user_id), ("check", "shilling")), **settings)

    def rank(self, cases: Sequence[UserCase], target: str, title: str, k: int) -> list[list[str]]:
        """The grounded candidate ids each user's reply ranks, best first."""
        return self._rank_many(cases, target, [title], k)[0]

    def evaluate(self, cases: Sequence[UserCase], target: str, titles: Sequence[str], k: int) -> TargetOutcome:
        """Rank of the target in each parsed, grounded reply."""
        _check_k(k, cases)
        lists = self._rank_many(cases, target, titles, k)
        ranks = np.zeros((len(titles), len(cases)), dtype=int)
        others = np.empty(ranks.shape, dtype=object)
        for a, per_title in enumerate(lists):
            for j, (case, ranked) in enumerate(zip(cases, per_title)):
                ranks[a, j] = ranked.index(target) if target in ranked else len(case.candidates)
                others[a, j] = frozenset(i for i in ranked[:k] if i != target)
        listed = ranks < np.array([len(c.candidates) for c in cases])[None, :]
        util = np.where(listed, 1.0 / (1.0 + ranks), 0.0)
        return TargetOutcome(ranks=ranks, utility=util, others=others)

    def _title(self, item_id: str, target: str, title: str) -> str:
        return title if item_id == target else self.catalog.get(item_id).title

    def _rank_many(self, cases: Sequence[UserCase], target: str, titles: Sequence[str], k: int) -> list[list[list[str]]]:
        from recaudit.text.ground import Grounder
        from recaudit.text.parse import parse_list

        reqs = [self.request(c, target, t, k) for t in titles for c in cases]
        self.queries += len(reqs)
        first = len(self.ctx.evidence)
        replies = self.ctx.generate(reqs, desc="shilling: rank")
        out: list[list[list[str]]] = []
        for a, title in enumerate(titles):
            per_title = []
            for j, case in enumerate(cases):
                parsed = parse_list(replies[a * len(cases) + j].text, k=k)
                self.parse_status[parsed.status] += 1
                sub = Catalog([self._item(i, target, title) for i in case.candidates], name=f"candidates:{case.user_id}")
                grounder = Grounder(sub, use_embeddings=self.use_embeddings, fuzzy_threshold=self.fuzzy_threshold)
                ranked: list[str] = []
                gids = grounder.ground_ids(parsed.items)
                for gid in gids:
                    if gid is not None and gid not in ranked:
                        ranked.append(gid)
                outcome: Outcome = "unparsed" if not parsed.items else "usable" if ranked else "ungrounded"
                self.ctx.mark(first + a * len(cases) + j, outcome, parse=list(parsed.items), grounded=list(gids))
                per_title.append(ranked)
            out.append(per_title)
        return out

    def _item(self, item_id: str, target: str, title: str) -> Item:
        it = self.catalog.get(item_id)
        return Item(it.item_id, self._title(item_id, target, title), it.genres, it.year, it.popularity)


def _one_line(text: str) -> str:
    # A title is untrusted: a newline in it must not fake extra candidate lines in the prompt.
    return " ".join(str(text).split())
