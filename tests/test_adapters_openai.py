"""OpenAICompatible against a local stub server: retries, Retry-After, malformed JSON, timeouts,
exhausted retries, logprob scoring, and the API key kept out of fingerprints, caches and errors."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from recaudit.adapters import AdapterError, CachedAdapter, Request
from recaudit.adapters.openai_compat import OpenAICompatible, option_probability

SECRET = "sk-test-0123456789abcdef"


class Stub(BaseHTTPRequestHandler):
    """Behaviour chosen by the user message: echo | flaky | malformed | slow | down | leak | nologprobs."""

    seen: dict[str, int] = {}
    auth: list[str] = []
    lock = threading.Lock()

    def log_message(self, *args):  # keep test output clean
        pass

    def _send(self, code: int, payload, headers=None):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(code)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        with self.lock:
            Stub.seen[text] = Stub.seen.get(text, 0) + 1
            n = Stub.seen[text]
            Stub.auth.append(self.headers.get("Authorization", ""))
        mode = text.split()[0]
        if mode == "flaky" and n == 1:
            return self._send(429, {"error": "slow down"}, {"Retry-After": "0"})
        if mode == "malformed":
            return self._send(200, b"{not json")
        if mode == "slow":
            time.sleep(0.6)
        if mode == "down":
            return self._send(500, {"error": "down"})
        if mode == "leak":
            return self._send(400, {"error": f"bad header {self.headers.get('Authorization')}"})
        if body.get("logprobs"):
            if mode == "nologprobs":
                return self._send(200, {"choices": [{"message": {"content": "Yes"}, "finish_reason": "length"}]})
            top = [{"token": "Yes", "logprob": math.log(0.6)}, {"token": " yes", "logprob": math.log(0.15)},
                   {"token": "No", "logprob": math.log(0.25)}]
            return self._send(200, {"choices": [{"message": {"content": "Yes"}, "logprobs": {"content": [
                {"token": "Yes", "logprob": math.log(0.6), "top_logprobs": top}]}}]})
        reply = f"echo {text} max={body['max_tokens']} rp={body.get('repetition_penalty', 1.0)}"
        return self._send(200, {"choices": [{"message": {"content": reply}, "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": 3, "completion_tokens": 4}})


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    httpd.shutdown()


@pytest.fixture
def client(server, monkeypatch):
    monkeypatch.setenv("RECAUDIT_TEST_KEY", SECRET)
    Stub.seen.clear()
    Stub.auth.clear()
    # the stub has no /models route: the family is named (under auto it would be unknown, and
    # unknown servers refuse repetition_penalty rather than drop it)
    c = OpenAICompatible(server, "stub-model", api_key_env="RECAUDIT_TEST_KEY", timeout_s=0.3, server="vllm",
                         max_retries=2, backoff_s=0.01, max_concurrency=4)
    yield c
    c.close()


def test_echo_in_order_with_settings(client):
    reqs = [Request.chat(f"echo {i}", max_new_tokens=5 + i, repetition_penalty=1.3 if i % 2 else 1.0) for i in range(8)]
    out = client.generate(reqs)
    assert [r.text for r in out] == [
        f"echo echo {i} max={5 + i} rp={1.3 if i % 2 else 1.0}" for i in range(8)
    ]
    assert out[0].prompt_tokens == 3 and out[0].completion_tokens == 4 and out[0].error is None
    assert Stub.auth and all(a == f"Bearer {SECRET}" for a in Stub.auth)


def test_429_then_success_is_retried(client):
    out = client.generate([Request.chat("flaky one")])[0]
    assert out.error is None and out.text.startswith("echo flaky one")
    assert Stub.seen["flaky one"] == 2


def test_malformed_json_is_an_error_not_retried(client):
    out = client.generate([Request.chat("malformed")])[0]
    assert out.finish_reason == "error" and "malformed JSON" in out.error
    assert Stub.seen["malformed"] == 1


def test_timeout_and_exhausted_retries(client):
    slow, down = client.generate([Request.chat("slow"), Request.chat("down")])
    assert "timed out" in slow.error and "3 attempts" in slow.error
    assert "HTTP 500" in down.error and Stub.seen["down"] == 3


def test_api_key_never_leaks(client, tmp_path):
    leak = client.generate([Request.chat("leak")])[0]
    assert "HTTP 400" in leak.error and SECRET not in leak.error and "***" in leak.error
    assert SECRET not in json.dumps(client.fingerprint)
    cache = CachedAdapter(client, tmp_path / "c.sqlite")
    cache.generate([Request.chat("echo cached"), Request.chat("down again")])
    assert SECRET.encode() not in (tmp_path / "c.sqlite").read_bytes()
    for extra in ("-wal", "-shm"):
        p = tmp_path / f"c.sqlite{extra}"
        assert not p.exists() or SECRET.encode() not in p.read_bytes()


def test_missing_key_variable_is_a_clear_error(server, monkeypatch):
    monkeypatch.delenv("RECAUDIT_NO_SUCH_KEY", raising=False)
    with pytest.raises(AdapterError, match="RECAUDIT_NO_SUCH_KEY"):
        OpenAICompatible(server, "m", api_key_env="RECAUDIT_NO_SUCH_KEY")


def test_score_from_top_logprobs(client):
    p = client.score([Request.chat("score me")])[0]
    assert p == pytest.approx(0.75 / (0.75 + 0.25))
    with pytest.raises(AdapterError, match="logprobs"):
        client.score([Request.chat("nologprobs please")])


def test_option_probability_edge_cases():
    top = [{"token": "Y", "logprob": math.log(0.5)}, {"token": "Maybe", "logprob": math.log(0.1)}]
    # "No" absent: it gets the smallest listed probability
    assert option_probability(top, ("Yes", "No")) == pytest.approx(0.5 / 0.6)
    assert math.isnan(option_probability([{"token": "Maybe", "logprob": 0.0}], ("Yes", "No")))
    # a prefix of both options counts for neither
    assert option_probability([{"token": "N", "logprob": math.log(0.9)}, {"token": "Never", "logprob": math.log(0.1)},
                               {"token": "Nope", "logprob": math.log(0.3)}], ("Never", "Nope")) == pytest.approx(0.25)


def test_bad_configuration():
    with pytest.raises(ValueError, match="base_url"):
        OpenAICompatible("localhost:8000", "m")
    with pytest.raises(ValueError, match="max_concurrency"):
        OpenAICompatible("http://localhost:8000", "m", max_concurrency=0)


def test_on_response_streams_in_completion_order_on_the_calling_thread(client):
    reqs = [Request.chat("slow 0")] + [Request.chat(f"echo {i}") for i in range(1, 5)]
    seen: list[tuple[int, object, int]] = []
    out = client.generate(reqs, on_response=lambda i, r: seen.append((i, r, threading.get_ident())))
    assert sorted(i for i, _, _ in seen) == list(range(5))
    assert seen[-1][0] == 0  # the slow request (timed out, retried, failed) is handed over last
    assert all(t == threading.get_ident() for _, _, t in seen)
    assert all(out[i] is r for i, r, _ in seen)
    assert out[0].error and [r.text for r in out[1:]] == [f"echo echo {i} max=256 rp=1.0" for i in range(1, 5)]
