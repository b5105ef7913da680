"""The check contract and its registry.

A check turns data plus an adapter into one ``CheckResult``. Most checks are *probes*: pure
functions from a context to requests (``requests``) and from the answers to a result
(``evaluate``, given one ``Answer`` per request: request, response and ``mark``); the runner owns
the model call, cache, progress and evidence log. Iterative checks (attacks, unlearning,
federated training) override ``run`` and use ``ctx.generate`` / ``ctx.score``.

A new check is one new module, named in ``CHECK_MODULES`` (a plugin module that the audit config's
``plugins`` imports registers its checks the same way, without the table)::

    class MyParams(CheckParams):
        k: int = 10

    @register_check("my_check")
    class MyCheck(Probe[MyParams]):          # self.params is a MyParams (Params is taken from it)
        metrics = (MetricSpec("hits@{k}", headline=True),)   # every name evaluate makes, declared once

        def requests(self, ctx: CheckContext) -> list[Request]: ...
        def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
            for a in answers:                    # a.index, a.request, a.response
                a.mark("usable")                 # or unparsed / ungrounded / unused, with parse=...
            ...
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Generic, Iterable, Sequence, TypeVar, cast, get_args

from pydantic import BaseModel, ConfigDict

from recaudit.adapters.base import Adapter, OnResponse, Request, Response, generate_streaming
from recaudit.data.catalog import Catalog, Interactions
from recaudit.evidence import Answer, EvidenceLog, Outcome, answers_of
from recaudit.metric_names import MetricSpec, declared_names
from recaudit.registry import Registry, import_modules
from recaudit.results import CheckResult, Risk

T = TypeVar("T")
ProgressFn = Callable[[Iterable[T], str, int | None], Iterable[T]]


def _no_progress(it: Iterable[T], desc: str = "", total: int | None = None) -> Iterable[T]:
    return it


class CheckParams(BaseModel):
    """Base of every check's parameters: unknown keys are an error, and every check has a seed."""

    model_config = ConfigDict(extra="forbid")
    seed: int = 0


P = TypeVar("P", bound=CheckParams)


@dataclass
class CheckContext:
    """What the runner hands a check: the (cached) adapter, data, seed, progress, a work folder."""

    adapter: Adapter
    catalog: Catalog | None = None
    interactions: Interactions | None = None
    seed: int = 0
    progress: ProgressFn = _no_progress
    workdir: Path | None = None
    batch_size: int = 16
    # every generate/score call is recorded here: the check's evidence, from which coverage is computed
    evidence: EvidenceLog = field(default_factory=EvidenceLog)

    def _batched(self, requests: Sequence[Request], desc: str) -> Iterable[Sequence[Request]]:
        chunks = [requests[i : i + self.batch_size] for i in range(0, len(requests), self.batch_size)]
        return self.progress(chunks, desc, len(chunks))

    def generate(
        self, requests: Sequence[Request], desc: str = "generate", on_response: OnResponse | None = None
    ) -> list[Response]:
        """Generate in batches with progress (the cache wrapper makes re-runs free); ``on_response(i,
        response)`` sees each response as soon as the adapter hands it over (``generate_streaming``)."""
        out: list[Response] = []
        for chunk in self._batched(requests, desc):
            offset = len(out)
            hook = None if on_response is None else (lambda j, r, o=offset: on_response(o + j, r))
            out.extend(generate_streaming(self.adapter, chunk, hook))
        if len(out) != len(requests):
            raise RuntimeError(f"the adapter returned {len(out)} responses for {len(requests)} requests")
        self.evidence.record_generation(requests, out)
        return out

    def score(self, requests: Sequence[Request], desc: str = "score") -> list[float]:
        """Score in batches with progress; each score is recorded as evidence (NaN = adapter error)."""
        out: list[float] = []
        for chunk in self._batched(requests, desc):
            out.extend(self.adapter.score(chunk))
        if len(out) != len(requests):
            raise RuntimeError(f"the adapter returned {len(out)} scores for {len(requests)} requests")
        self.evidence.record_scores(requests, out)
        return out

    def mark(self, index: int, outcome: Outcome, **details: Any) -> None:
        """Say what became of evidence record ``index`` (see ``EvidenceLog.mark``)."""
        self.evidence.mark(index, outcome, **details)

    def require_catalog(self, check: str) -> Catalog:
        if self.catalog is None:
            raise ValueError(f"check {check!r} needs a catalogue (set data.catalog in the audit config)")
        return self.catalog

    def require_interactions(self, check: str) -> Interactions:
        if self.interactions is None:
            raise ValueError(f"check {check!r} needs interactions (set data.interactions in the audit config)")
        return self.interactions


class Check(Generic[P]):
    """Base class of every registered check; ``Check[MyParams]`` types ``self.params`` as ``MyParams``."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    risk: ClassVar[Risk] = "fairness"
    references: ClassVar[tuple[str, ...]] = ()
    # the params class; a subclass of Check[MyParams] that does not set it gets MyParams
    Params: ClassVar[type[CheckParams]] = CheckParams
    # every metric name the check makes, declared once: threshold validation and the report read it
    # (None: undeclared, thresholds are then checked against the result only)
    metrics: ClassVar[tuple[MetricSpec, ...] | None] = None
    params: P
    # the share of requested answers that must be usable evidence for the check to be judged; a
    # check overrides it with what its statistics can stand (the audit config can raise or lower it)
    min_usable: ClassVar[float] = 0.5
    # False for checks that train and evaluate their own models (unlearning, federated): their
    # evidence is their own training record, so the adapter-call coverage does not apply
    records_evidence: ClassVar[bool] = True
    # True when answers must be parsed before they are evidence: the check marks each one
    # (Answer.mark); an unmarked answer is not usable. False: an answer without error is usable.
    marks_answers: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "Params" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            for arg in get_args(base):
                if isinstance(arg, type) and issubclass(arg, CheckParams):
                    cls.Params = arg
                    return

    def __init__(self, params: P | dict[str, Any] | None = None):
        if params is None:
            params = {}
        self.params = cast(P, params if isinstance(params, self.Params) else self.Params.model_validate(params))

    @classmethod
    def metric_names(cls, params: Any) -> list[str] | None:
        """fnmatch patterns of the metrics these params produce, from ``metrics``; None when undeclared."""
        return None if cls.metrics is None else declared_names(cls.metrics, params)

    def run(self, ctx: CheckContext) -> CheckResult:
        """Run the check; subclasses either override this or implement requests/evaluate."""
        raise NotImplementedError

    def validate_setup(self) -> None:
        """Cheap checks of what the params name (attribute values, name files, locales), run when the
        config is validated — before any model call or file write; raise ValueError with one line."""

    def new_result(self, **fields: Any) -> CheckResult:
        """A CheckResult pre-filled with this check's identity and parameters."""
        return CheckResult(
            name=fields.pop("name", self.name),
            check=self.name,
            title=fields.pop("title", self.title),
            risk=self.risk,
            params=self.params.model_dump(mode="json"),
            references=list(self.references),
            **fields,
        )


class AnswerMemo:
    """What a probe computed from an answer's text (its parse), by text: ``prepare`` fills it while
    the model writes the other answers, ``evaluate`` reads it, so each answer is worked on once."""

    def __init__(self) -> None:
        self._by_text: dict[str, Any] = {}

    def get(self, text: str, compute: Callable[[], Any]) -> Any:
        """The value for ``text``, from ``compute()`` the first time it is asked for."""
        try:
            return self._by_text[text]
        except KeyError:
            value = self._by_text[text] = compute()
            return value

    def __len__(self) -> int:
        return len(self._by_text)


class Probe(Check[P]):
    """A check that is one round of requests → responses → result."""

    marks_answers: ClassVar[bool] = True

    def requests(self, ctx: CheckContext) -> list[Request]:
        """All requests this probe needs (pure: no model call, no file)."""
        raise NotImplementedError

    def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
        """Turn the answers (one per request, in request order) into a result (pure)."""
        raise NotImplementedError

    def prepare(self, ctx: CheckContext, request: Request, response: Response) -> None:
        """Optional per-response work (parsing, grounding) done as each response arrives, while the
        model still generates the rest; an override keeps it in ``answer_memo()`` so ``evaluate``
        (through ``take_answer_memo()``) does not redo it."""

    def answer_memo(self) -> AnswerMemo:
        """This run's memo of per-answer work, made on first use."""
        memo = self.__dict__.get("_answer_memo")
        if memo is None:
            memo = self.__dict__["_answer_memo"] = AnswerMemo()
        return memo

    def take_answer_memo(self) -> AnswerMemo:
        """The memo, detached from the probe so it is freed after ``evaluate``; empty without ``prepare``."""
        return self.__dict__.pop("_answer_memo", None) or AnswerMemo()

    def run(self, ctx: CheckContext, requests: list[Request] | None = None) -> CheckResult:
        """Send ``requests`` (``self.requests(ctx)`` unless the runner built them already), then evaluate
        their answers, each bound to its record in ``ctx.evidence``."""
        reqs = self.requests(ctx) if requests is None else requests
        hook = None
        if type(self).prepare is not Probe.prepare:
            hook = lambda i, r: self.prepare(ctx, reqs[i], r)  # noqa: E731
        first = len(ctx.evidence)
        resps = ctx.generate(reqs, desc=self.name, on_response=hook)
        return self.evaluate(ctx, answers_of(reqs, resps, ctx.evidence, first))


CHECKS: Registry[type[Check[Any]]] = Registry("check")
CheckClass = TypeVar("CheckClass", bound=type[Check[Any]])


def register_check(name: str) -> Callable[[CheckClass], CheckClass]:
    """Class decorator: register a check under ``name`` (the name the audit config uses)."""

    def decorator(cls: CheckClass) -> CheckClass:
        cls.name = name
        CHECKS.register(name)(cls)
        return cls

    return decorator


# every module that registers a check, and only those: the registry imports this list (a helper
# module beside a check is never imported by it, whatever its name); a new check adds its module here
CHECK_MODULES = (
    "recaudit.probes.fairllm",
    "recaudit.probes.implicit_names",
    "recaudit.probes.item_fairness",
    "recaudit.probes.exposure",
    "recaudit.attacks.check",
    "recaudit.unlearning.check",
    "recaudit.federated.check",
)
# optional dependencies → the pip extra that installs them; a check module that needs a missing one
# is left out of the registry (the core runs without the extras) and named in MISSING_EXTRAS
OPTIONAL_DEPENDENCIES = {"textattack": "attacks", "flair": "attacks", "flwr": "federated", "opacus": "federated",
                         "ray": "federated"}
MISSING_EXTRAS: dict[str, str] = {}  # module → "the federated extra (flwr is not installed)"


def load_checks() -> Registry[type[Check[Any]]]:
    """Import every module of ``CHECK_MODULES`` so all registrations have run; return the registry."""
    MISSING_EXTRAS.update(import_modules(CHECK_MODULES, OPTIONAL_DEPENDENCIES))
    return CHECKS


def declared_headlines() -> dict[str, list[str]]:
    """Check name → patterns of the metrics it declares as its headline (what the report leads with)."""
    registry = load_checks()
    return {name: [spec.glob() for spec in registry.get(name).metrics or () if spec.headline] for name in registry.names()}
