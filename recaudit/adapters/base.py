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


def generate_streaming(adapter: Any, requests: Sequence[Request], on_response: OnResponse | None) -> list[Response]:
    """``adapter.generate(requests)``, calling ``on_response(i, response)`` for each response as it is ready.

    Adapters that can hand responses over early (``streams_responses = True``: the recaudit engine, the
    endpoint client, the cache) take ``on_response`` themselves, so a caller's per-response work
    (parsing, grounding) overlaps the model's; any other adapter is called as usual and the callback
    runs afterwards. The callback always runs in the calling thread."""
    if on_response is None:
        return list(adapter.generate(requests))
    if getattr(adapter, "streams_responses", False):
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


def requests_per_call(adapter: Any, floor: int = 1) -> int:
    """How many requests to hand ``adapter`` per call: ``BATCHES_PER_CALL`` × what it keeps in flight
    (``in_flight``: engine slots, endpoint concurrency; else ``batch_size``), at least ``floor``."""
    in_flight = getattr(adapter, "in_flight", None) or getattr(adapter, "batch_size", 0) or 0
    return max(int(floor), BATCHES_PER_CALL * int(in_flight))


class AdapterError(RuntimeError):
    """An adapter could not be built or could not answer."""


class PreflightError(AdapterError):
    """The pre-flight request failed; ``str()`` is one line naming the URL (redacted), model and status."""


def fingerprint_id(fingerprint: dict[str, Any]) -> str:
    """Short stable id of a fingerprint (cache namespace, report label)."""
    blob = json.dumps(fingerprint, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]
