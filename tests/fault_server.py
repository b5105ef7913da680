"""recaudit's own fault-injecting OpenAI-compatible server on 127.0.0.1, for tests.

    with FaultServer(answer=lambda prompt: prompt.upper(), transient=0.3,
                     permanent=lambda prompt: stable_fraction(prompt) < 0.25, family="vllm") as srv:
        adapter = OpenAICompatible(srv.url, "m", ...)
        ...
        assert srv.counts["some prompt"] == 1

It serves ``GET /v1/models`` (ids from ``models``, ``owned_by`` and extra fields as the chosen
server family reports them), ``GET /api/version`` and ``/api/tags`` when mimicking Ollama, and
``POST /v1/chat/completions`` answered by ``answer(prompt)`` (prompt = the last user message), so
a clean run and a faulty run must give identical answers. Faults, all deterministic (a hash of
seed, prompt and attempt number):

- ``transient``: that fraction of prompts fail their first ``transient_attempts`` attempts with one
  of ``transient_kinds`` ("429" with Retry-After, "500", "503", "drop" = connection closed without
  a reply, "slow" = the reply comes after ``slow_s``, past the client's timeout), then succeed;
- ``permanent(prompt) -> bool``: those prompts get ``permanent_status`` on every attempt;
- ``key``: requests without ``Authorization: Bearer <key>`` get 401;
- a model id not in ``models`` gets 404 (as vLLM answers);
- ``closed_port_url()``: a URL on which nothing listens (server down).

It counts what it received: ``counts[prompt]`` (every chat POST), ``answered[prompt]`` (200s
sent; a "slow" one may arrive after the client gave up), ``bodies`` (the JSON bodies, in arrival
order), ``paths`` and ``auth`` (request paths with query, Authorization headers). recaudit's
pre-flight call (its prompt starts with ``PREFLIGHT_PREFIX``) is never faulted and is counted
apart, in ``preflights``, so ``counts`` holds exactly the audit's own requests. ``set_plan(...)`` changes the faults between runs
(e.g. the server "recovers"); ``reset_counts()`` zeroes the counters. The server stops by itself
after ``lifetime_s`` and never blocks a test's exit (daemon threads, socket timeouts).
"""

from __future__ import annotations

import collections
import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

TRANSIENT_KINDS = ("429", "500", "503", "drop", "slow")
PREFLIGHT_PREFIX = "recaudit pre-flight"
FAMILIES = ("vllm", "llamacpp", "llama-cpp-python", "ollama", "openai", "bare")


def stable_fraction(text: str, salt: str = "") -> float:
    """A number in [0, 1) fixed by ``text`` (pick 'a quarter of the prompts' reproducibly)."""
    h = hashlib.sha256((salt + "\0" + text).encode("utf-8")).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def default_answer(prompt: str) -> str:
    """A deterministic answer that depends on the whole prompt."""
    return "answer " + hashlib.sha1(prompt.encode("utf-8")).hexdigest()[:12]


def closed_port_url() -> str:
    """An http://127.0.0.1 URL whose port was just bound and released: connecting is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return f"http://127.0.0.1:{port}/v1"


class FaultServer:
    """A ThreadingHTTPServer on 127.0.0.1 port 0 with a fault plan; a context manager."""

    def __init__(
        self,
        answer: Callable[[str], str] = default_answer,
        *,
        models: Iterable[str] = ("m",),
        family: str = "vllm",
        transient: float = 0.0,
        transient_kinds: Iterable[str] = TRANSIENT_KINDS,
        transient_attempts: int = 1,
        permanent: Callable[[str], bool] | None = None,
        permanent_status: int = 500,
        key: str | None = None,
        retry_after: str = "0.01",
        slow_s: float = 0.5,
        seed: int = 0,
        weights: str = "w1",
        lifetime_s: float = 300.0,
    ):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
        self.answer = answer
        self.models = list(models)
        self.family = family
        self.lifetime_s = lifetime_s
        self._lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.answered: collections.Counter[str] = collections.Counter()
        self.gets: collections.Counter[str] = collections.Counter()
        self.preflights = 0
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []  # request paths with their query, as received
        self.auth: list[str] = []  # Authorization headers received
        self._httpd: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None
        self.set_plan(transient=transient, transient_kinds=transient_kinds, transient_attempts=transient_attempts,
                      permanent=permanent, permanent_status=permanent_status, key=key, retry_after=retry_after,
                      slow_s=slow_s, seed=seed, weights=weights)

    # ---- plan and counters ----------------------------------------------------------------------
    def set_plan(self, **plan: Any) -> None:
        """Change any of transient, transient_kinds, transient_attempts, permanent, permanent_status,
        key, retry_after, slow_s, seed, models, answer, weights (e.g. ``set_plan(permanent=None)``: recovered)."""
        allowed = {"transient", "transient_kinds", "transient_attempts", "permanent", "permanent_status", "key",
                   "retry_after", "slow_s", "seed", "models", "answer", "weights"}
        unknown = set(plan) - allowed
        if unknown:
            raise TypeError(f"unknown plan keys: {sorted(unknown)}")
        with self._lock:
            for k, v in plan.items():
                if k == "transient_kinds":
                    v = tuple(v)
                    bad = set(v) - set(TRANSIENT_KINDS)
                    if bad or not v:
                        raise ValueError(f"transient_kinds must be a non-empty subset of {TRANSIENT_KINDS}")
                if k == "models":
                    v = list(v)
                setattr(self, k, v)

    def reset_counts(self) -> None:
        """Zero counts, answered, gets and bodies."""
        with self._lock:
            self.counts.clear()
            self.answered.clear()
            self.gets.clear()
            self.preflights = 0
            self.bodies.clear()
            self.paths.clear()
            self.auth.clear()

    @property
    def requests(self) -> int:
        """Chat POSTs received, all attempts."""
        return sum(self.counts.values())

    def fault_for(self, prompt: str, attempt: int) -> str | None:
        """The transient fault the ``attempt``-th (1-based) request for ``prompt`` gets, if any."""
        if attempt > self.transient_attempts or self.transient <= 0:
            return None
        if stable_fraction(prompt, f"transient:{self.seed}") >= self.transient:
            return None
        kinds = self.transient_kinds
        return kinds[int(stable_fraction(prompt, f"kind:{self.seed}:{attempt}") * len(kinds))]

    # ---- lifecycle ------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The base URL clients use: http://127.0.0.1:PORT/v1."""
        if self._httpd is None:
            raise RuntimeError("FaultServer is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> "FaultServer":
        handler = type("FaultHandler", (_Handler,), {"server_state": self})
        httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        httpd.daemon_threads = True
        self._httpd = httpd
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True,
                         name="fault-server").start()
        self._timer = threading.Timer(self.lifetime_s, self.stop)  # bounded: never outlives a hung test
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        httpd, self._httpd = self._httpd, None
        if self._timer is not None:
            self._timer.cancel()
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()

    def __enter__(self) -> "FaultServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- what /v1/models reports ----------------------------------------------------------------
    def model_cards(self) -> dict[str, Any]:
        now = int(time.time())
        cards = []
        for m in self.models:
            # ``weights`` stands for the files behind the alias: a new value is new weights, same name
            digest = hashlib.sha256(f"{m}:{self.weights}".encode()).hexdigest()
            if self.family == "vllm":  # created is the time of the request; root is the weights' path
                card = {"id": m, "object": "model", "created": now, "owned_by": "vllm", "root": f"/models/{self.weights}",
                        "parent": None, "max_model_len": 4096,
                        "permission": [{"id": f"modelperm-{now}", "created": now, "object": "model_permission"}]}
            elif self.family == "llamacpp":  # llama.cpp's llama-server
                card = {"id": m, "object": "model", "created": now, "owned_by": "llamacpp",
                        "meta": {"vocab_type": 2, "n_vocab": 49152, "n_ctx_train": 8192, "n_embd": 576,
                                 "n_params": 134515008, "size": 90000000 + int(digest[:4], 16)}}
            elif self.family == "llama-cpp-python":
                card = {"id": m, "object": "model", "owned_by": "me", "permissions": []}
            elif self.family == "ollama":
                card = {"id": m, "object": "model", "created": 1733000000, "owned_by": "library"}
            else:  # openai
                card = {"id": m, "object": "model", "created": 1715367049, "owned_by": "system"}
            card["_digest"] = digest
            cards.append(card)
        return {"object": "list", "data": cards}


class _Handler(BaseHTTPRequestHandler):
    server_state: FaultServer
    protocol_version = "HTTP/1.1"
    timeout = 10  # a client that stops talking cannot hold a thread

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass

    def _authorized(self) -> bool:
        key = self.server_state.key
        if key is None or self.headers.get("Authorization") == f"Bearer {key}":
            return True
        self._send(401, {"error": {"message": "Unauthorized", "type": "invalid_request_error"}})
        return False

    def do_GET(self) -> None:
        s = self.server_state
        path = self.path.split("?", 1)[0].rstrip("/")
        with s._lock:
            s.gets[path] += 1
            s.paths.append(self.path)
            s.auth.append(self.headers.get("Authorization", ""))
        if not self._authorized():
            return
        if path == "/v1/models" and s.family != "bare":
            cards = s.model_cards()
            for c in cards["data"]:
                c.pop("_digest")
            return self._send(200, cards)
        if path == "/api/version" and s.family == "ollama":
            return self._send(200, {"version": "0.5.7"})
        if path == "/api/tags" and s.family == "ollama":
            cards = s.model_cards()["data"]
            return self._send(200, {"models": [{"name": c["id"], "model": c["id"], "digest": c["_digest"],
                                                "size": 91000000, "modified_at": "2024-12-01T00:00:00Z"}
                                               for c in cards]})
        self._send(404, {"error": {"message": f"no route {path}"}})

    def do_POST(self) -> None:
        s = self.server_state
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(min(length, 10_000_000)) or b"{}")
        except (ValueError, OSError):
            return self._send(400, {"error": {"message": "bad JSON"}})
        if self.path.split("?", 1)[0].rstrip("/") != "/v1/chat/completions":
            return self._send(404, {"error": {"message": f"no route {self.path}"}})
        messages = body.get("messages") or []
        prompt = next((m.get("content", "") for m in reversed(messages) if m.get("role") == "user"), "")
        is_preflight = prompt.startswith(PREFLIGHT_PREFIX)
        with s._lock:
            if is_preflight:
                s.preflights += 1
                attempt = 1
            else:
                s.counts[prompt] += 1
                attempt = s.counts[prompt]
            s.bodies.append(body)
            s.paths.append(self.path)
            s.auth.append(self.headers.get("Authorization", ""))
            plan = (None if is_preflight else s.fault_for(prompt, attempt), None if is_preflight else s.permanent,
                    s.permanent_status, s.retry_after, s.slow_s, list(s.models), s.answer)
        fault, permanent, permanent_status, retry_after, slow_s, models, answer = plan
        if not self._authorized():
            return
        if body.get("model") not in models:
            return self._send(404, {"error": {"message": f"The model `{body.get('model')}` does not exist.",
                                              "type": "NotFoundError", "code": 404}})
        if permanent is not None and permanent(prompt):
            # the message echoes the request path, query included, as some servers do: clients must redact it
            return self._send(permanent_status, {"error": {"message": f"permanent failure (planned) at {self.path}"}})
        if fault == "429":
            return self._send(429, {"error": {"message": "rate limited"}}, {"Retry-After": retry_after})
        if fault in ("500", "503"):
            return self._send(int(fault), {"error": {"message": f"planned {fault}"}})
        if fault == "drop":
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if fault == "slow":
            time.sleep(slow_s)
        text = answer(prompt)
        with s._lock:
            if not is_preflight:
                s.answered[prompt] += 1
        self._send(200, {
            "id": "chatcmpl-fault", "object": "chat.completion", "created": int(time.time()), "model": body.get("model"),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(text.split())},
        })
