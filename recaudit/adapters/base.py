"""The one interface every recommender sits behind: ``generate`` for text, ``score`` for P(Yes).

``Request`` is frozen and hashable: its ``key()`` together with an adapter's fingerprint is the
cache key, so identical work is never computed twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

Message = tuple[str, str]  # (role, content)
# called with (index into the requests, response) as each response is ready
OnResponse = Callable[[int, "Response"], None]


@dataclass(frozen=True)
class Request:
    """Chat messages plus explicit generation settings.

    For ``score``: the model is asked for P(options[0]) / (P(options[0]) + P(options[1])) at the
    first answer token (TALLRec-style P(Yes)).
    """

    messages: tuple[Message, ...]
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    seed: int = 0
    stop: tuple[str, ...] = ()
    options: tuple[str, str] = ("Yes", "No")
    answer_prefix: str = ""
    metadata: tuple[tuple[str, str], ...] = field(default=(), compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("a Request needs at least one message")
        for m in self.messages:
            if not (isinstance(m, tuple) and len(m) == 2 and all(isinstance(s, str) for s in m)):
                raise TypeError(f"messages must be (role, content) string pairs, got {m!r}")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")

    @classmethod
    def chat(cls, user: str, system: str | None = None, **settings: Any) -> "Request":
        """Build a request from a user message and an optional system message."""
        msgs: list[Message] = []
        if system:
            msgs.append(("system", system))
        msgs.append(("user", user))
        return cls(messages=tuple(msgs), **settings)

    @property
    def user_text(self) -> str:
        """The last user message (what most callables need)."""
        for role, content in reversed(self.messages):
            if role == "user":
                return content
        return self.messages[-1][1]

    @property
    def system_text(self) -> str | None:
        for role, content in self.messages:
            if role == "system":
                return content
        return None

    def meta(self) -> dict[str, str]:
        return dict(self.metadata)

    def key(self) -> str:
        """Stable hash of everything that can change the model's output (metadata excluded)."""
        # a shallow dict (fields are strings, numbers and tuples of them): the same JSON as
        # dataclasses.asdict, whose deep copy made the key a visible cost at GPU request rates
        d = {name: getattr(self, name) for name in _KEY_FIELDS}
        blob = _KEY_JSON.encode(d)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


_KEY_FIELDS = tuple(f.name for f in fields(Request) if f.name != "metadata")
# json.dumps with these options builds a new encoder per call; the key must stay byte-identical
_KEY_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"))


@dataclass(frozen=True)
class Response:
    """What the model wrote, raw; parsing happens later in ``recaudit.text``."""

    text: str
    finish_reason: str = "stop"
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached: bool = False
    error: str | None = None


@runtime_checkable
class Adapter(Protocol):
    """Any recommender: batched text generation, batched yes/no scoring, and a fingerprint."""

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        """One response per request, in order."""
        ...

    def score(self, requests: Sequence[Request]) -> list[float]:
        """P(options[0]) normalised over the two options, one per request, in order."""
        ...

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Model identity and settings; must not contain secrets."""
        ...


# ---- optional capabilities --------------------------------------------------------------------
# An adapter needs only ``Adapter``'s three members. The optional ones below let callers use it better or
# check it earlier; each is a runtime-checkable Protocol, found with ``isinstance`` (never by probing for
# attributes), so an adapter author sees in one place what a caller may ask of an adapter and how to offer it.


@runtime_checkable
class StreamingAdapter(Protocol):
    """An adapter that hands each response over as soon as it is ready, so a caller's per-response work
    (parsing, grounding, caching) overlaps the model's.

    To offer it: set ``streams_responses = True`` (a class attribute, or per instance for a wrapper that
    streams only when what it wraps does) and give ``generate`` an optional ``on_response``. When one is
    passed, call ``on_response(i, response)`` exactly once per request index ``i``, in the thread that
    called ``generate``, before ``generate`` returns, and still return every response in input order.
    Implemented by ``HFCausalLM``, ``OpenAICompatible`` and ``CachedAdapter``; callers go through
    ``generate_streaming``, which calls any other adapter as usual and runs the callback afterwards."""

    streams_responses: bool

    def generate(self, requests: Sequence[Request], on_response: OnResponse | None = None) -> list[Response]:
        """One response per request, in order; ``on_response(i, response)`` as each one is ready."""
        ...


@runtime_checkable
class ConcurrentAdapter(Protocol):
    """An adapter that works on several requests at once: ``in_flight`` says how many (engine slots, an
    endpoint's concurrent connections). Callers hand it ``BATCHES_PER_CALL`` × ``in_flight`` requests
    per call (``requests_per_call``) so it never idles between calls; 0 means "unknown"."""

    @property
    def in_flight(self) -> int:
        """Requests the adapter keeps in flight at once."""
        ...


@runtime_checkable
class BatchedAdapter(Protocol):
    """An adapter that runs requests in batches of ``batch_size``: what ``requests_per_call`` uses when
    the adapter is not a ``ConcurrentAdapter`` (or its ``in_flight`` is 0)."""

    batch_size: int


@runtime_checkable
class WrapperAdapter(Protocol):
    """An adapter around another one (``CachedAdapter``): pre-flight and settings checks look through
    ``inner`` to the model itself (a cached answer proves nothing about the model)."""

    inner: Any


@runtime_checkable
class PreflightAdapter(Protocol):
    """An adapter with its own pre-flight (``OpenAICompatible``: ``GET /models``, then a 1-token call).
    Without one, the pre-flight sends one 1-token ``generate`` (or ``score``) request."""

    def preflight(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """What the model or server reported (joins the run's fingerprint); PreflightError, one line,
        if it cannot answer within ``timeout_s``."""
        ...


@runtime_checkable
class PreflightOptOut(Protocol):
    """``preflight_call = False``: the pre-flight calls nothing and the report says so
    (``CallableAdapter``'s default: an in-process function has no server to be down, and calling it may
    have side effects)."""

    preflight_call: bool


@runtime_checkable
class ScoresOnlyAdapter(Protocol):
    """``scores_only = True``: the adapter only scores, so its pre-flight sends a scoring request."""

    scores_only: bool


@runtime_checkable
class SettingsCheckingAdapter(Protocol):
    """An adapter that refuses, before any request is sent, settings it cannot honour (an endpoint whose
    server family has no name for one): ``check_requests`` raises one AdapterError line."""

    def check_requests(self, requests: Sequence[Request]) -> None:
        """Raise AdapterError (``UnsupportedSetting``) naming the first setting that cannot be honoured."""
        ...


def generate_streaming(adapter: Adapter, requests: Sequence[Request], on_response: OnResponse | None) -> list[Response]:
    """``adapter.generate(requests)``, calling ``on_response(i, response)`` for each response as it is ready.

    A ``StreamingAdapter`` (the recaudit engine, the endpoint client, the cache) takes ``on_response``
    itself, so a caller's per-response work (parsing, grounding) overlaps the model's; any other adapter
    is called as usual and the callback runs afterwards. The callback always runs in the calling thread."""
    if on_response is None:
        return list(adapter.generate(requests))
    if isinstance(adapter, StreamingAdapter) and adapter.streams_responses:
        return list(adapter.generate(requests, on_response=on_response))
    out = list(adapter.generate(requests))
    for i, r in enumerate(out):
        on_response(i, r)
    return out


# adapter calls carry this many of the adapter's own batches: a batched engine refills finished slots
# only within one call, and the last wave of answers of a call has no GPU work left to hide its
# parsing behind, so longer calls waste less; the cache stores streamed answers as they arrive, so a
# killed run loses little however long the call
BATCHES_PER_CALL = 8


def requests_per_call(adapter: object, floor: int = 1) -> int:
    """How many requests to hand ``adapter`` per call: ``BATCHES_PER_CALL`` × what it keeps in flight
    (a ``ConcurrentAdapter``'s ``in_flight``, else a ``BatchedAdapter``'s ``batch_size``), at least ``floor``."""
    in_flight = adapter.in_flight if isinstance(adapter, ConcurrentAdapter) else 0
    if not in_flight and isinstance(adapter, BatchedAdapter):
        in_flight = adapter.batch_size
    return max(int(floor), BATCHES_PER_CALL * int(in_flight or 0))


class AdapterError(RuntimeError):
    """An adapter could not be built or could not answer."""


class PreflightError(AdapterError):
    """The pre-flight request failed; ``str()`` is one line naming the URL (redacted), model and status."""


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """Short stable id of a fingerprint (cache namespace, report label)."""
    blob = json.dumps(fingerprint, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
