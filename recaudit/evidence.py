"""The evidence behind a check: one record per model call, and coverage computed from them once.

Every ``CheckContext.generate`` / ``CheckContext.score`` call records one ``Sample`` per request
(request key, messages, raw answer or score, adapter error). A probe then says what became of
each answer (``Answer.mark``, on the records ``evaluate`` receives): ``usable``, ``unparsed``, ``ungrounded`` or ``unused``. An answer a
check that parses its answers never marked counts as ``unchecked`` — not usable — so a check that
forgets to classify its evidence fails closed (incomplete), never open.

Coverage (``EvidenceLog.coverage``) is what decides whether a check can be judged at all:
``answered`` = answers without adapter error ÷ requested, ``usable`` = usable ÷ requested. The run
folder keeps the records as ``checks/<name>.samples.jsonl`` (gzip-compressed above
``GZIP_ABOVE`` records): the audit trail a reviewer reads and the report's sample explorer shows.
"""

from __future__ import annotations

import gzip
import json
import math
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Sequence

from recaudit.adapters.base import Request, Response
from recaudit.atomic import atomic_text
from recaudit.results import Coverage

Outcome = Literal["usable", "adapter_error", "unparsed", "ungrounded", "unused", "unchecked"]
OUTCOMES: tuple[str, ...] = ("usable", "adapter_error", "unparsed", "ungrounded", "unused", "unchecked")
GZIP_ABOVE = 2000
SAMPLES_SUFFIX = ".samples.jsonl"
_MAX_TEXT = 4000  # characters of prompt/answer kept per record: enough to read, bounded on disk


@dataclass
class Sample:
    """One model call of a check and what became of its answer."""

    index: int
    kind: Literal["generate", "score"]
    request_key: str
    messages: list[list[str]]
    unit: dict[str, str]
    answer: str | None = None
    score: float | None = None
    error: str | None = None
    outcome: Outcome = "unchecked"
    parse: list[str] | None = None
    grounded: list[str | None] | None = None
    note: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as JSON-able data (long texts clipped, NaN score as null)."""
        # built by hand, not dataclasses.asdict: its recursive deep copy was ~80% of writing 6,400 records
        score = self.score if self.score is None or math.isfinite(self.score) else None
        return {
            "index": self.index, "kind": self.kind, "request_key": self.request_key,
            "messages": [[r, _clip(c)] for r, c in self.messages], "unit": dict(self.unit),
            "answer": None if self.answer is None else _clip(self.answer), "score": score, "error": self.error,
            "outcome": self.outcome, "parse": None if self.parse is None else list(self.parse),
            "grounded": None if self.grounded is None else list(self.grounded), "note": self.note,
        }


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_TEXT else text[:_MAX_TEXT] + f"… [{len(text) - _MAX_TEXT} more characters]"


@dataclass
class EvidenceLog:
    """The samples of one check run, in call order; thread-safe appends (streamed answers)."""

    samples: list[Sample] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.samples)

    def record_generation(self, requests: Sequence[Request], responses: Sequence[Response]) -> int:
        """Record one generate call; returns the index of its first sample."""
        return self._record(
            "generate", requests,
            [dict(answer=None if r.error else r.text, error=r.error, outcome="adapter_error" if r.error else "unchecked")
             for r in responses],
        )

    def record_scores(self, requests: Sequence[Request], scores: Sequence[float]) -> int:
        """Record one score call (a NaN score is an adapter error); returns the first sample's index."""
        rows = []
        for s in scores:
            bad = s is None or not math.isfinite(float(s))
            # a score needs no parsing: a finite one is usable evidence
            rows.append(dict(score=None if bad else float(s), error="no score (NaN)" if bad else None,
                             outcome="adapter_error" if bad else "usable"))
        return self._record("score", requests, rows)

    def _record(self, kind: Literal["generate", "score"], requests: Sequence[Request], rows: list[dict[str, Any]]) -> int:
        with self._lock:
            start = len(self.samples)
            for j, (req, row) in enumerate(zip(requests, rows)):
                self.samples.append(Sample(index=start + j, kind=kind, request_key=req.key(),
                                           messages=[[r, c] for r, c in req.messages], unit=req.meta(), **row))
            return start

    def mark(
        self,
        index: int,
        outcome: Outcome,
        *,
        parse: Sequence[str] | None = None,
        grounded: Sequence[str | None] | None = None,
        note: str | None = None,
    ) -> None:
        """Say what became of sample ``index``'s answer; an adapter error stays an adapter error."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}; one of {OUTCOMES}")
        if not 0 <= index < len(self.samples):
            return  # evaluate called outside a recorded run (tests, notebooks): nothing to mark
        s = self.samples[index]
        if s.outcome != "adapter_error":
            s.outcome = outcome
        if parse is not None:
            s.parse = list(parse)
        if grounded is not None:
            s.grounded = [None if g is None else str(g) for g in grounded]
        if note is not None:
            s.note = note

    def coverage(self, *, min_answered: float, min_usable: float) -> Coverage:
        """Coverage of this log, judged against the two floors (one place for every check)."""
        return coverage_of(self.samples, min_answered=min_answered, min_usable=min_usable)

    def write(self, path_without_suffix: Path) -> Path:
        """Write ``<path>.samples.jsonl`` (``.gz`` when large) atomically; returns the path written."""
        return write_samples(self.samples, path_without_suffix)


@dataclass(frozen=True)
class Answer:
    """One answer a probe's ``evaluate`` receives: its position in the run's requests, the request,
    the response, and ``mark`` to say what became of it in the run's evidence log."""

    index: int
    request: Request
    response: Response
    log: EvidenceLog | None = field(default=None, repr=False, compare=False)  # None: marks go nowhere
    sample: int = -1  # the index of this answer's record in ``log``

    def mark(
        self,
        outcome: Outcome,
        *,
        parse: Sequence[str] | None = None,
        grounded: Sequence[str | None] | None = None,
        note: str | None = None,
    ) -> None:
        """Say what became of this answer (usable, unparsed, ungrounded, unused); unmarked = not usable."""
        if self.log is not None:
            self.log.mark(self.sample, outcome, parse=parse, grounded=grounded, note=note)


def answers_of(
    requests: Sequence[Request], responses: Sequence[Response], log: EvidenceLog | None = None, first: int = 0
) -> list[Answer]:
    """The answers of one generate call, in request order; ``log`` and ``first`` (the index of the call's
    first record in it) bind their marks, and without ``log`` (an ``evaluate`` called directly) marks go nowhere."""
    if len(requests) != len(responses):
        raise ValueError(f"{len(requests)} requests but {len(responses)} responses")
    return [Answer(i, q, r, log, first + i) for i, (q, r) in enumerate(zip(requests, responses))]


def coverage_of(samples: Iterable[Sample], *, min_answered: float, min_usable: float) -> Coverage:
    """Counts per outcome, the answered and usable rates, and whether both floors are met."""
    counts = {o: 0 for o in OUTCOMES}
    for s in samples:
        counts[s.outcome] += 1
    return coverage_from_counts(counts, min_answered=min_answered, min_usable=min_usable)


def coverage_from_counts(outcomes: dict[str, int], *, min_answered: float, min_usable: float) -> Coverage:
    """Coverage judged from counts per outcome (a reused check is re-judged against today's floors)."""
    counts = {o: int(outcomes.get(o, 0)) for o in OUTCOMES}
    requested = sum(counts.values())
    answered = requested - counts["adapter_error"]
    usable = counts["usable"]
    answered_rate = answered / requested if requested else float("nan")
    usable_rate = usable / requested if requested else float("nan")
    reasons: list[str] = []
    if requested == 0:
        reasons.append("no model calls were recorded")
    else:
        if answered_rate < min_answered:
            reasons.append(
                f"answered {answered}/{requested} = {answered_rate:.1%} < min_answered {min_answered:.0%} "
                f"({counts['adapter_error']} adapter errors)"
            )
        if usable_rate < min_usable:
            why = ", ".join(f"{counts[o]} {o}" for o in ("adapter_error", "unparsed", "ungrounded", "unused", "unchecked")
                            if counts[o])
            reasons.append(f"usable {usable}/{requested} = {usable_rate:.1%} < min_usable {min_usable:.0%} ({why})")
    return Coverage(
        requested=requested,
        answered=answered,
        usable=usable,
        outcomes={k: v for k, v in counts.items() if v},
        answered_rate=answered_rate,
        usable_rate=usable_rate,
        min_answered=min_answered,
        min_usable=min_usable,
        sufficient=not reasons,
        reason="; ".join(reasons) or None,
    )


def write_samples(samples: Sequence[Sample], path_without_suffix: Path) -> Path:
    """One JSON record per line; gzip above ``GZIP_ABOVE`` records; written to a temp file, then renamed."""
    base = Path(path_without_suffix)
    plain = base.with_name(base.name + SAMPLES_SUFFIX)
    target = plain.with_name(plain.name + ".gz") if len(samples) > GZIP_ABOVE else plain
    other = plain if target != plain else plain.with_name(plain.name + ".gz")
    with atomic_text(target, compress=target.suffix == ".gz") as f:
        for s in samples:
            f.write(json.dumps(s.to_json(), ensure_ascii=False, allow_nan=False) + "\n")
    if other.exists():  # a stale file of the other form from an earlier run
        other.unlink()
    return target


def read_samples(path: Path) -> list[dict[str, Any]]:
    """Read a samples file written by ``write_samples`` (plain or gzip)."""
    return read_samples_head(path, None)[0]


def read_samples_head(path: Path, limit: int | None) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` records of a samples file (all when None) and how many records it holds.

    Records past ``limit`` are counted, not parsed: the report shows a bounded number, and decoding
    32,000 records of a paper-scale run would be most of a warm re-run's time.
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    out: list[dict[str, Any]] = []
    total = 0
    with opener(path, "rt", encoding="utf-8") as f:  # type: ignore[operator]
        for line in f:
            if not line.strip():
                continue
            if limit is None or total < limit:
                out.append(json.loads(line))
            total += 1
    return out, total


def samples_path(checks_dir: Path, name: str) -> Path | None:
    """The samples file of check ``name`` in a run's ``checks/`` folder, if one exists."""
    for suffix in (SAMPLES_SUFFIX, SAMPLES_SUFFIX + ".gz"):
        p = checks_dir / f"{name}{suffix}"
        if p.is_file():
            return p
    return None
