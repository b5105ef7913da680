"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, TGI, Ollama) as an Adapter.

Requests go out concurrently (a bounded thread pool over one ``httpx.Client``) and are retried
with exponential backoff and jitter on 429, 5xx, timeouts and connection errors, honouring a
``Retry-After`` header. A request that still fails does not raise: it comes back as a
``Response`` with ``error`` set and ``finish_reason="error"``, so an audit records the failure and
carries on, and the cache does not store it (the next run retries it). Bad configuration
(missing key variable, a model name the server rejects with 4xx) fails the same way per request.

The API key is read from the environment variable named by ``api_key_env`` at request time. It
is never part of the fingerprint, an error message or a log line.
"""

from __future__ import annotations

import email.utils
import json
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Sequence
from urllib.parse import urlsplit, urlunsplit

from recaudit.adapters.base import AdapterError, OnResponse, Request, Response

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
TOP_LOGPROBS = 20  # OpenAI's maximum; vLLM's default cap


class _Retryable(Exception):
    """A failure worth another try; ``wait_s`` is the server's Retry-After, if it gave one."""

    def __init__(self, message: str, wait_s: float | None = None):
        super().__init__(message)
        self.wait_s = wait_s


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, parsed.timestamp() - time.time()) if parsed else None


def _public_url(url: str) -> str:
    """The URL without user info, query or fragment (where tokens sometimes hide)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path.rstrip("/"), "", ""))


class OpenAICompatible:
    """POST ``{base_url}/chat/completions`` for each request, concurrently, with retries."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        timeout_s: float = 60.0,
        max_retries: int = 5,
        backoff_s: float = 0.5,
        max_backoff_s: float = 60.0,
        extra_body: dict[str, Any] | None = None,
        send_repetition_penalty: bool = True,
    ):
        import httpx

        if not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {_public_url(base_url)!r}")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise AdapterError(f"api_key_env: environment variable {api_key_env} is not set or empty")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.in_flight = max_concurrency  # requests in flight at once (requests_per_call)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.extra_body = dict(extra_body or {})
        # vLLM, TGI and llama.cpp accept repetition_penalty; OpenAI itself rejects unknown fields
        self.send_repetition_penalty = send_repetition_penalty
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="recaudit-http")
        self._rng = random.Random()
        self._rng_lock = threading.Lock()

    @property
    def fingerprint(self) -> dict[str, Any]:
        from recaudit.adapters.cache import assert_no_secrets

        fp = {
            "adapter": "openai",
            "base_url": _public_url(self.base_url),
            "model": self.model,
            "extra_body": self.extra_body,
            "repetition_penalty_sent": self.send_repetition_penalty,
        }
        assert_no_secrets(fp)
        return fp

    def close(self) -> None:
        """Release the connection pool and worker threads."""
        self._pool.shutdown(wait=True)
        self._client.close()

    def __enter__(self) -> "OpenAICompatible":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # ---- HTTP -----------------------------------------------------------------------------------
    def _headers(self) -> dict[str, str]:
        h = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise AdapterError(f"environment variable {self.api_key_env} is not set or empty")
            h["Authorization"] = f"Bearer {key}"
        return h

    def _redact(self, text: str) -> str:
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        return text.replace(key, "***") if key else text

    def body(self, request: Request, **override: Any) -> dict[str, Any]:
        """The JSON body for one request (settings from the request; ``extra_body`` merged last)."""
        messages = [{"role": r, "content": c} for r, c in request.messages]
        if request.answer_prefix:
            # chat endpoints cannot portably prefill the assistant turn: ask for the prefix's
            # continuation in the user turn instead
            messages[-1] = {**messages[-1], "content": messages[-1]["content"] + "\n" + request.answer_prefix}
        b: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "top_p": request.top_p,
            "seed": request.seed,
        }
        if request.stop:
            b["stop"] = list(request.stop)
        if self.send_repetition_penalty and request.repetition_penalty != 1.0:
            b["repetition_penalty"] = request.repetition_penalty
        b.update(override)
        b.update(self.extra_body)
        return b

    def _backoff(self, attempt: int, server_wait: float | None) -> float:
        with self._rng_lock:
            jitter = self._rng.uniform(0.5, 1.5)
        wait = self.backoff_s * (2**attempt) * jitter
        if server_wait is not None:
            wait = max(wait, server_wait)
        return min(wait, self.max_backoff_s)

    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """POST one chat completion with retries; raise AdapterError when it finally fails."""
        import httpx

        url = f"{self.base_url}/chat/completions"
        last = "no attempt made"
        for attempt in range(self.max_retries + 1):
            try:
                resp = self._client.post(url, json=body, headers=self._headers())
                if resp.status_code in RETRY_STATUS:
                    raise _Retryable(f"HTTP {resp.status_code}", _retry_after(resp.headers.get("Retry-After")))
                if resp.status_code >= 400:
                    detail = self._redact(resp.text[:300])
                    raise AdapterError(f"HTTP {resp.status_code} from {_public_url(url)}: {detail}")
                try:
                    data = resp.json()
                except (json.JSONDecodeError, ValueError) as e:
                    raise AdapterError(
                        f"malformed JSON from {_public_url(url)} (HTTP {resp.status_code}): {self._redact(resp.text[:200])!r}"
                    ) from e
                if not isinstance(data, dict) or not data.get("choices"):
                    raise AdapterError(f"response from {_public_url(url)} has no 'choices': {self._redact(str(data)[:200])}")
                return data
            except _Retryable as e:
                last, wait = str(e), e.wait_s
            except httpx.TimeoutException:
                last, wait = f"timed out after {self.timeout_s:g} s", None
            except httpx.TransportError as e:
                last, wait = f"connection error: {type(e).__name__}", None
            if attempt < self.max_retries:
                time.sleep(self._backoff(attempt, wait))
        raise AdapterError(f"{_public_url(url)} failed after {self.max_retries + 1} attempts: {last}")

    # ---- Adapter --------------------------------------------------------------------------------
    def _one(self, request: Request) -> Response:
        try:
            data = self.post(self.body(request))
            choice = data["choices"][0]
            text = (choice.get("message") or {}).get("content") or choice.get("text") or ""
            usage = data.get("usage") or {}
            finish = choice.get("finish_reason") or "stop"
            return Response(
                text=text,
                finish_reason=finish,
                prompt_tokens=usage.get("prompt_tokens"),
                completion_tokens=usage.get("completion_tokens"),
            )
        except AdapterError as e:
            return Response(text="", finish_reason="error", error=self._redact(str(e)))
        except (KeyError, IndexError, TypeError, AttributeError) as e:
            return Response(text="", finish_reason="error", error=f"unexpected response shape: {type(e).__name__}: {e}")

    streams_responses = True

    def generate(self, requests: Sequence[Request], on_response: OnResponse | None = None) -> list[Response]:
        """One response per request, in order; failures come back with ``error`` set.

        ``on_response(i, response)`` runs in the calling thread as each request completes."""
        if on_response is None:
            return list(self._pool.map(self._one, requests))
        futures = {self._pool.submit(self._one, r): i for i, r in enumerate(requests)}
        out: list[Response | None] = [None] * len(futures)
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                out[i] = fut.result()
                on_response(i, out[i])
        finally:
            for fut in futures:  # a callback that raised: don't leave the rest running
                fut.cancel()
        return out  # type: ignore[return-value]  # every slot is filled above

    def _score_one(self, request: Request) -> float:
        body = self.body(request, max_tokens=1, temperature=0.0, top_p=1.0, logprobs=True, top_logprobs=TOP_LOGPROBS)
        body.pop("stop", None)
        data = self.post(body)
        lp = (data["choices"][0].get("logprobs") or {}).get("content")
        if not lp or "top_logprobs" not in lp[0]:
            raise AdapterError(
                f"{_public_url(self.base_url)} returned no logprobs: score() needs an endpoint that supports "
                "logprobs/top_logprobs on chat completions (vLLM, llama.cpp server and OpenAI do)"
            )
        return option_probability(lp[0]["top_logprobs"], request.options)

    def score(self, requests: Sequence[Request]) -> list[float]:
        """P(options[0]) normalised over both options from the first token's top logprobs.

        Raises AdapterError when the endpoint gives no logprobs or a request fails for good."""
        return list(self._pool.map(self._score_one, requests))


def option_probability(top: Sequence[dict[str, Any]], options: Sequence[str]) -> float:
    """P(a) / (P(a) + P(b)) from a top-logprobs list.

    A token counts for an option when, stripped and case-folded, it is a non-empty prefix of
    the option ("Yes", " yes", "Y" for "Yes") and not of the other; probabilities of all such
    tokens are summed. An option absent from the list gets the smallest listed probability (an
    upper bound of its true value). NaN when neither option appears."""
    a, b = (o.strip().casefold() for o in options)
    mass = [0.0, 0.0]
    for entry in top:
        tok = str(entry.get("token", "")).strip().casefold()
        if not tok:
            continue
        p = math.exp(float(entry["logprob"]))
        if a.startswith(tok) and b.startswith(tok):
            continue  # a prefix of both options says nothing about which one
        for j, opt in enumerate((a, b)):
            if opt.startswith(tok):
                mass[j] += p
    if mass == [0.0, 0.0]:
        return float("nan")
    floor = min(math.exp(float(e["logprob"])) for e in top) if top else 0.0
    pa, pb = (m if m > 0 else floor for m in mass)
    return pa / (pa + pb)
