"""Server families behind an OpenAI-compatible endpoint: how to tell them apart, what each calls a
generation setting, and which of their model-card fields identify the weights.

A setting is either sent under the family's own name or refused with one line; never dropped.
Sources of the names: vLLM's sampling parameters (``repetition_penalty`` as an extra parameter),
llama.cpp's server and llama-cpp-python (``repeat_penalty``), Ollama's OpenAI compatibility page
(seed, stop, temperature, top_p, max_tokens; no repetition penalty), OpenAI's chat API
(``max_completion_tokens``, at most 4 stop sequences, no repetition penalty).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from recaudit.adapters.base import AdapterError, Request

SERVER_CHOICES = ("auto", "vllm", "llamacpp", "ollama", "openai")
# what ``auto`` resolves to when /models said nothing that tells the family apart
UNKNOWN = "unknown"

LABEL = {
    "vllm": "vLLM",
    "llamacpp": "llama.cpp server",
    "ollama": "Ollama's OpenAI API",
    "openai": "OpenAI",
    UNKNOWN: "an OpenAI-compatible server of unknown family",
}

# Request field -> JSON name per family; None: the family has no such setting
SETTING_NAMES: dict[str, dict[str, str | None]] = {
    "vllm": {"max_new_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "seed": "seed",
             "stop": "stop", "repetition_penalty": "repetition_penalty"},
    "llamacpp": {"max_new_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "seed": "seed",
                 "stop": "stop", "repetition_penalty": "repeat_penalty"},
    "ollama": {"max_new_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "seed": "seed",
               "stop": "stop", "repetition_penalty": None},
    "openai": {"max_new_tokens": "max_completion_tokens", "temperature": "temperature", "top_p": "top_p",
               "seed": "seed", "stop": "stop", "repetition_penalty": None},
    # unknown family: the OpenAI chat names every compatible server reads, nothing beyond them
    UNKNOWN: {"max_new_tokens": "max_tokens", "temperature": "temperature", "top_p": "top_p", "seed": "seed",
              "stop": "stop", "repetition_penalty": None},
}
# a setting at its neutral value need not be sent (a family without it behaves the same)
NEUTRAL: dict[str, Any] = {"repetition_penalty": 1.0, "stop": ()}
MAX_STOP = {"openai": 4}

# model-card fields that identify the weights, per family; the rest are volatile (vLLM's and
# llama-server's ``created`` is the time of the request, ``permission`` carries fresh ids)
CARD_FIELDS: dict[str, tuple[str, ...]] = {
    "vllm": ("id", "owned_by", "root", "parent", "max_model_len"),
    "llamacpp": ("id", "owned_by", "meta"),
    "ollama": ("id", "owned_by", "created", "digest", "size"),
    "openai": ("id", "owned_by", "created"),
}
_VOLATILE = frozenset({"object", "created", "permission", "permissions"})


class UnsupportedSetting(AdapterError):
    """A request asks for a generation setting the server family cannot take."""


@dataclass(frozen=True)
class ServerReport:
    """What the endpoint said about itself and the model; frozen once known (fingerprint input)."""

    family: str  # vllm | llamacpp | ollama | openai | unknown
    detected_from: str  # "configured", "owned_by=vllm", "/api/version", "not reported: HTTP 404", ...
    model_card: dict[str, Any] | None = None  # identifying fields only
    models_served: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> dict[str, Any]:
        """The part of the adapter fingerprint that tells weights apart (no volatile fields)."""
        return {"family": self.family, "model_card": self.model_card}

    def as_dict(self) -> dict[str, Any]:
        return {"family": self.family, "detected_from": self.detected_from, "model_card": self.model_card,
                "models_served": list(self.models_served), **self.extra}


def detect_family(cards: Sequence[dict[str, Any]], host: str) -> tuple[str | None, str]:
    """(family, reason) from /models cards; (None, reason) when they do not tell."""
    owners = {str(c.get("owned_by", "")) for c in cards}
    if "vllm" in owners:
        return "vllm", "owned_by=vllm"
    if "llamacpp" in owners:
        return "llamacpp", "owned_by=llamacpp"
    # llama-cpp-python's server: owned_by "me" and an empty "permissions" list
    if "me" in owners and any("permissions" in c for c in cards):
        return "llamacpp", "owned_by=me (llama-cpp-python)"
    if host.endswith("openai.com"):
        return "openai", "host openai.com"
    openai_owners = owners & {"openai", "system", "openai-internal"}
    if openai_owners:
        return "openai", "owned_by=" + ",".join(sorted(openai_owners))
    return None, "owned_by=" + (",".join(sorted(owners)) or "none")


def model_card(family: str, card: dict[str, Any] | None) -> dict[str, Any] | None:
    """The identifying fields of one /models card for ``family``."""
    if card is None:
        return None
    keep = CARD_FIELDS.get(family)
    if keep is None:
        return {k: v for k, v in sorted(card.items()) if k not in _VOLATILE}
    return {k: card[k] for k in keep if k in card}


def map_settings(request: Request, family: str) -> dict[str, Any]:
    """The request's generation settings under ``family``'s names; UnsupportedSetting if one has none."""
    names = SETTING_NAMES[family]
    out: dict[str, Any] = {}
    for attr, name in names.items():
        value = getattr(request, attr)
        if attr in NEUTRAL and value == NEUTRAL[attr]:
            continue
        if name is None:
            raise UnsupportedSetting(unsupported_message(family, attr, value))
        if attr == "stop":
            if family in MAX_STOP and len(value) > MAX_STOP[family]:
                raise UnsupportedSetting(
                    f"{LABEL[family]} takes at most {MAX_STOP[family]} stop sequences; a request has {len(value)}"
                )
            value = list(value)
        out[name] = value
    return out


def unsupported_message(family: str, attr: str, value: Any, n: int = 1) -> str:
    hint = {
        UNKNOWN: "; set adapter.server (vllm, llamacpp, ollama, openai) to say which server this is",
    }.get(family, "; serve the model with vLLM or llama.cpp's server, or set it to its neutral value")
    what = f"{n} request{'s' if n != 1 else ''} ask" if n != 1 else "a request asks"
    return f"{LABEL[family]} has no {attr}, and {what} for {attr}={value!r}; refusing rather than dropping it{hint}"


def check_requests(requests: Sequence[Request], family: str) -> None:
    """Raise one UnsupportedSetting line for the first setting ``family`` cannot take, counting the requests."""
    bad: dict[tuple[str, Any], int] = {}
    first: UnsupportedSetting | None = None
    for r in requests:
        try:
            map_settings(r, family)
        except UnsupportedSetting as e:
            first = first or e
            for attr, name in SETTING_NAMES[family].items():
                v = getattr(r, attr)
                if name is None and not (attr in NEUTRAL and v == NEUTRAL[attr]):
                    bad[(attr, v)] = bad.get((attr, v), 0) + 1
    if first is None:
        return
    if not bad:  # a limit rather than a missing setting (e.g. too many stop sequences)
        raise first
    (attr, value), _ = max(bad.items(), key=lambda kv: kv[1])
    n = sum(c for (a, _), c in bad.items() if a == attr)
    raise UnsupportedSetting(unsupported_message(family, attr, value, n))
