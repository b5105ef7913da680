"""Any OpenAI-compatible chat endpoint (OpenAI, vLLM, llama.cpp server, TGI, Ollama) as an Adapter.

Requests go out concurrently (a bounded thread pool over one ``httpx.Client``) and are retried
with exponential backoff and jitter on 429, 5xx, timeouts and connection errors, honouring a
``Retry-After`` header (``adapters.retry``). A request that still fails does not raise: it comes
back as a ``Response`` with ``error`` set and ``finish_reason="error"``, so an audit records the
failure and carries on, and the cache does not store it (the next run retries it). Bad configuration
(missing key variable, a model name the server rejects with 4xx) fails the same way per request;
``preflight()`` finds it before a run starts.

``server`` (auto | vllm | llamacpp | ollama | openai) decides what each generation setting is
called on the wire (``servers.SETTING_NAMES``); a setting the family has no name for is refused,
never dropped. ``auto`` reads the family from ``GET /models`` once, and what the server reports
about the model (vLLM's weight path, llama-server's meta, Ollama's digest) joins the fingerprint.

The API key is read from the environment variable named by ``api_key_env`` at request time. It
is never part of the fingerprint, an error message or a log line; neither are credentials inside
``base_url`` (userinfo, ``?key=``), which ``redact_secrets`` masks wherever the URL is shown.
"""

from __future__ import annotations

import json
import math
import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any, Sequence
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from recaudit.adapters.base import AdapterError, OnResponse, PreflightError, Request, Response
from recaudit.adapters.retry import RETRY_STATUS, Retryable, retry_after, with_retries
from recaudit.adapters.secrets import redact_obj, redact_secrets, redact_url
from recaudit.adapters.servers import (
    SERVER_CHOICES,
    SETTING_NAMES,
    UNKNOWN,
    ServerReport,
    detect_family,
    map_settings,
    model_card,
)
from recaudit.adapters.servers import check_requests as check_settings

TOP_LOGPROBS = 20  # OpenAI's maximum; vLLM's default cap


class OpenAICompatible:
    """POST ``{base_url}/chat/completions`` for each request, concurrently, with retries.

    ``server`` names the family behind the endpoint (``auto`` reads it from ``GET /models``), which
    decides what each generation setting is called; a setting the family cannot take is refused."""

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
        server: str = "auto",
    ):
        import httpx

        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            raise ValueError(f"base_url must start with http:// or https://, got {redact_secrets(str(base_url))!r}")
        if server not in SERVER_CHOICES:
            raise ValueError(f"server must be one of {', '.join(SERVER_CHOICES)}, got {server!r}")
        if max_concurrency < 1:
            raise ValueError("max_concurrency must be >= 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        if api_key_env is not None and not os.environ.get(api_key_env):
            raise AdapterError(f"api_key_env: environment variable {api_key_env} is not set or empty")
        parts = urlsplit(base_url)
        # the query (?api-version=, ?key=) travels as parameters of every call; userinfo as basic auth (httpx)
        self._root = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))
        self._params: list[tuple[str, str | int | float | bool | None]] = list(parse_qsl(parts.query, keep_blank_values=True))
        # literal secret values, masked in any text a server echoes back
        self._literals = [v for v in (parts.password, parts.username) if v and len(v) >= 3]
        self._literals += [str(v) for k, v in self._params if isinstance(v, str) and len(v) >= 3 and redact_url(f"http://h/?{k}=x") != f"http://h/?{k}=x"]
        self.base_url = redact_url(self._root + (f"?{parts.query}" if parts.query else ""))  # what is shown
        self.model = model
        self.api_key_env = api_key_env
        self.server = server
        self.max_concurrency = max_concurrency
        self.in_flight = max_concurrency  # ConcurrentAdapter: requests in flight at once (requests_per_call)
        self.timeout_s = timeout_s
        self.max_retries = max_retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.extra_body = dict(extra_body or {})
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
        )
        self._pool = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix="recaudit-http")
        self._rng = random.Random()
        self._rng_lock = threading.Lock()
        self._report: ServerReport | None = None
        self._report_lock = threading.Lock()

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Endpoint, model, the server family and what the server reports about the model; no secrets."""
        from recaudit.adapters.cache import assert_no_secrets

        report = self.server_report()
        fp = {
            "adapter": "openai",
            "base_url": self.base_url,
            "model": self.model,
            "extra_body": redact_obj(self.extra_body),
            "server": report.fingerprint(),
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
        """``text`` without the API key, URL credentials or token-looking strings."""
        key = os.environ.get(self.api_key_env) if self.api_key_env else None
        if key:
            text = text.replace(key, "***")
        for lit in self._literals:
            text = text.replace(lit, "***")
        return redact_secrets(text)

    def _url(self, path: str) -> str:
        return f"{self._root}/{path}"

    def _shown(self, path: str) -> str:
        """The URL of ``path`` as errors show it (credentials masked)."""
        root = self.base_url.split("?", 1)
        return f"{root[0]}/{path}" + (f"?{root[1]}" if len(root) > 1 else "")

    # ---- what the server is ---------------------------------------------------------------------
    def server_report(self) -> ServerReport:
        """What the endpoint reports about itself and the model, read once (``GET /models``) and kept.

        A server that cannot be asked (down, no /models route) leaves ``model_card`` empty and, under
        ``server: auto``, the family ``unknown`` (only the settings every compatible server reads)."""
        if self._report is None:
            with self._report_lock:
                if self._report is None:
                    try:
                        self._report = self._ask_server(min(self.timeout_s, 5.0), strict=False)
                    except AdapterError as e:  # strict=False raises only for a missing key variable
                        self._report = ServerReport(self._family_or_unknown(), f"not reported: {e}")
        return self._report

    def _family_or_unknown(self) -> str:
        return UNKNOWN if self.server == "auto" else self.server

    def _ask_server(self, timeout_s: float, strict: bool) -> ServerReport:
        """GET /models (and Ollama's /api routes); with ``strict`` a failure raises PreflightError."""
        import httpx

        shown = self._shown("models")
        try:
            resp = self._client.get(self._url("models"), params=self._params, headers=self._headers(), timeout=timeout_s)
        except httpx.TimeoutException:
            if strict:
                raise PreflightError(f"pre-flight: {shown} gave no answer within {timeout_s:g} s (model {self.model!r}, no HTTP status)") from None
            return ServerReport(self._family_or_unknown(), "not reported: timed out")
        except httpx.TransportError as e:
            reason = "connection refused" if isinstance(e, httpx.ConnectError) else type(e).__name__
            if strict:
                raise PreflightError(f"pre-flight: cannot reach {shown} ({reason}; model {self.model!r}, no HTTP status)") from None
            return ServerReport(self._family_or_unknown(), f"not reported: {reason}")
        status = resp.status_code
        if strict and status in (401, 403):
            hint = f"check the key in ${self.api_key_env}" if self.api_key_env else "the server wants a key: set api_key_env"
            raise PreflightError(f"pre-flight: {shown} answered HTTP {status} {_REASON.get(status, '')} for model {self.model!r} ({hint})")
        cards: list[dict[str, Any]] = []
        if status == 200:
            try:
                data = resp.json()
                cards = [c for c in (data.get("data") or []) if isinstance(c, dict) and "id" in c]
            except (ValueError, AttributeError):
                cards = []
        if status != 200 or not cards:
            if strict and status not in (404, 405, 501) and status != 200:
                raise PreflightError(f"pre-flight: {shown} answered HTTP {status} for model {self.model!r}")
            # no /models route (or an empty list): the chat call of the pre-flight decides
            return ServerReport(self._family_or_unknown(), f"not reported: HTTP {status} from /models")
        ids = tuple(str(c["id"]) for c in cards)
        card = next((c for c in cards if str(c["id"]) == self.model), None)
        if card is None and strict:
            served = ", ".join(ids[:8]) + (f", … ({len(ids)} in all)" if len(ids) > 8 else "")
            raise PreflightError(f"pre-flight: model {self.model!r} is not served by {self.base_url} (HTTP 200 from /models; it serves: {served})")
        host = urlsplit(self._root).hostname or ""
        family, why = detect_family(cards, host)
        extra: dict[str, Any] = {}
        if family is None or self.server == "ollama":
            # Ollama's /v1/models says only owned_by=<namespace>; its native /api routes say more
            ollama = self._ask_ollama(timeout_s)
            if ollama is not None:
                family, why = "ollama", "/api/version"
                extra = ollama
                if card is not None and self.model in ollama.get("digests", {}):
                    card = {**card, **ollama["digests"][self.model]}
        if self.server != "auto":
            if family is not None and family != self.server:
                extra["detected_family"] = family  # said in the report; the configured family wins
            family, why = self.server, "configured"
        family = family or UNKNOWN
        extra.pop("digests", None)
        return ServerReport(family, why, model_card(family, card), ids, extra)

    def _ask_ollama(self, timeout_s: float) -> dict[str, Any] | None:
        """Ollama's version and model digests from its native API beside /v1, or None if it is not Ollama."""
        import httpx

        root = self._root[: -len("/v1")] if self._root.endswith("/v1") else self._root
        try:
            v = self._client.get(f"{root}/api/version", headers=self._headers(), timeout=timeout_s)
            if v.status_code != 200 or "version" not in (v.json() or {}):
                return None
            out: dict[str, Any] = {"ollama_version": str(v.json()["version"]), "digests": {}}
            tags = self._client.get(f"{root}/api/tags", headers=self._headers(), timeout=timeout_s)
            if tags.status_code == 200:
                for m in (tags.json() or {}).get("models") or []:
                    name = str(m.get("name") or m.get("model") or "")
                    info = {k: m[k] for k in ("digest", "size") if k in m}
                    for alias in {name, name.removesuffix(":latest")}:
                        out["digests"][alias] = info
            return out
        except (httpx.HTTPError, ValueError, AttributeError):
            return None

    def preflight(self, timeout_s: float = 10.0) -> dict[str, Any]:
        """GET /models (the model must be served), then one 1-token chat call; PreflightError (one line)
        on refusal, 401/403, an unknown model or no answer, all within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        report = self._ask_server(min(4.0, timeout_s / 2), strict=True)
        with self._report_lock:
            if self._report is None or self._report.model_card is None:
                self._report = report  # what the fingerprint will say from now on
            report = self._report
        body = {"model": self.model, "messages": [{"role": "user", "content": PREFLIGHT_PROMPT}],
                SETTING_NAMES[report.family]["max_new_tokens"]: 1, "temperature": 0.0}
        body.update(self.extra_body)
        shown = self._shown("chat/completions")
        last = "no attempt made in time"
        for attempt in range(3):  # a transient fault (429, 5xx) gets two quick retries, never a long wait
            left = deadline - time.monotonic()
            if left <= 0.2:
                break
            import httpx

            try:
                resp = self._client.post(self._url("chat/completions"), params=self._params, json=body,
                                         headers=self._headers(), timeout=max(0.2, left - 0.1))
            except httpx.TimeoutException:
                raise PreflightError(f"pre-flight: {shown} gave no answer within {timeout_s:g} s (model {self.model!r}, no HTTP status)") from None
            except httpx.TransportError as e:
                last = f"connection error {type(e).__name__}"
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
                continue
            status = resp.status_code
            if status == 200:
                return {"url": self.base_url, "model": self.model, **report.as_dict(), "chat_status": 200}
            if status not in RETRY_STATUS:
                detail = self._redact(" ".join(resp.text[:160].split()))
                raise PreflightError(f"pre-flight: {shown} answered HTTP {status} {_REASON.get(status, '')} for model {self.model!r}: {detail}")
            last = f"HTTP {status}"
            time.sleep(min(0.2 * (attempt + 1), max(0.0, deadline - time.monotonic())))
        raise PreflightError(f"pre-flight: {shown} did not answer a 1-token request for model {self.model!r} within {timeout_s:g} s ({last})")

    def check_requests(self, requests: Sequence[Request]) -> None:
        """Raise UnsupportedSetting (one line) if any request has a setting this server family cannot take."""
        check_settings(requests, self.server_report().family)

    def body(self, request: Request, **override: Any) -> dict[str, Any]:
        """The JSON body for one request, settings under the server family's names (``extra_body`` last);
        UnsupportedSetting when the family cannot take one of them."""
        messages = [{"role": r, "content": c} for r, c in request.messages]
        if request.answer_prefix:
            # chat endpoints cannot portably prefill the assistant turn: ask for the prefix's
            # continuation in the user turn instead
            messages[-1] = {**messages[-1], "content": messages[-1]["content"] + "\n" + request.answer_prefix}
        b: dict[str, Any] = {"model": self.model, "messages": messages}
        b.update(map_settings(request, self.server_report().family))
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
        url = self._url("chat/completions")
        shown = self._shown("chat/completions")

        def once() -> dict[str, Any]:
            resp = self._client.post(url, params=self._params, json=body, headers=self._headers())
            if resp.status_code in RETRY_STATUS:
                raise Retryable(f"HTTP {resp.status_code}", retry_after(resp.headers.get("Retry-After")))
            if resp.status_code >= 400:
                detail = self._redact(resp.text[:300])
                raise AdapterError(f"HTTP {resp.status_code} from {shown}: {detail}")
            try:
                data = resp.json()
            except (json.JSONDecodeError, ValueError) as e:
                raise AdapterError(
                    f"malformed JSON from {shown} (HTTP {resp.status_code}): {self._redact(resp.text[:200])!r}"
                ) from e
            if not isinstance(data, dict) or not data.get("choices"):
                raise AdapterError(f"response from {shown} has no 'choices': {self._redact(str(data)[:200])}")
            return data

        return with_retries(once, shown, self.max_retries, self.timeout_s, self._backoff)

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
            return Response(text="", finish_reason="error", error=self._redact(f"unexpected response shape: {type(e).__name__}: {e}"))

    streams_responses = True  # StreamingAdapter: generate(..., on_response=) calls back as requests complete

    def generate(self, requests: Sequence[Request], on_response: OnResponse | None = None) -> list[Response]:
        """One response per request, in order; failures (and settings the server cannot take) come
        back with ``error`` set.

        ``on_response(i, response)`` runs in the calling thread as each request completes."""
        if on_response is None:
            return list(self._pool.map(self._one, requests))
        futures = {self._pool.submit(self._one, r): i for i, r in enumerate(requests)}
        out: list[Response | None] = [None] * len(futures)
        try:
            for fut in as_completed(futures):
                i = futures[fut]
                out[i] = r = fut.result()
                on_response(i, r)
        finally:
            for fut in futures:  # a callback that raised: don't leave the rest running
                fut.cancel()
        return out  # type: ignore[return-value]  # every slot is filled above

    def _score_one(self, request: Request) -> float:
        one_token = {SETTING_NAMES[self.server_report().family]["max_new_tokens"] or "max_tokens": 1}
        body = self.body(request, temperature=0.0, top_p=1.0, logprobs=True, top_logprobs=TOP_LOGPROBS, **one_token)
        body.pop("stop", None)
        data = self.post(body)
        lp = (data["choices"][0].get("logprobs") or {}).get("content")
        if not lp or "top_logprobs" not in lp[0]:
            raise AdapterError(
                f"{self.base_url} returned no logprobs: score() needs an endpoint that supports "
                "logprobs/top_logprobs on chat completions (vLLM, llama.cpp server and OpenAI do)"
            )
        return option_probability(lp[0]["top_logprobs"], request.options)

    def score(self, requests: Sequence[Request]) -> list[float]:
        """P(options[0]) normalised over both options from the first token's top logprobs.

        Raises AdapterError when the endpoint gives no logprobs or a request fails for good."""
        return list(self._pool.map(self._score_one, requests))


PREFLIGHT_PROMPT = "recaudit pre-flight check: reply with one word."
_REASON = {401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 400: "Bad Request", 422: "Unprocessable"}


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
