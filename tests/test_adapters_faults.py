"""OpenAICompatible against recaudit's fault server: transient faults lose nothing, permanent ones
come back as errors and are resent exactly once after recovery, pre-flight fails fast in one line,
settings map to each server family's names, and credentials in base_url are never shown."""

from __future__ import annotations

import json
import time

import pytest
from fault_server import PREFLIGHT_PREFIX, TRANSIENT_KINDS, FaultServer, closed_port_url, default_answer, stable_fraction

from recaudit.adapters import CachedAdapter, CallableAdapter, Request, fingerprint_id
from recaudit.adapters.base import PreflightError
from recaudit.adapters.openai_compat import PREFLIGHT_PROMPT, OpenAICompatible
from recaudit.adapters.preflight import check_requests, preflight
from recaudit.adapters.secrets import redact_secrets
from recaudit.adapters.servers import UnsupportedSetting


def _client(url, model="m", **kw):
    opts = dict(timeout_s=0.25, max_retries=3, backoff_s=0.005, max_backoff_s=0.05, max_concurrency=8)
    opts.update(kw)
    return OpenAICompatible(url, model, **opts)


PROMPTS = [f"recommend ten films for user {i}" for i in range(60)]


def test_thirty_percent_transient_faults_lose_and_duplicate_nothing():
    # a 1.5 s timeout: at 0.25 s a clean reply delayed by a busy 2-core box was resent, and the count test failed
    with FaultServer(transient=0.3, slow_s=2.0) as srv:
        with _client(srv.url, timeout_s=1.5) as c:
            out = c.generate([Request.chat(p) for p in PROMPTS])
        assert [r.error for r in out] == [None] * len(PROMPTS)
        assert [r.text for r in out] == [default_answer(p) for p in PROMPTS]  # = a clean run's answers
        # every prompt was sent once plus once per planned fault: nothing lost, nothing resent needlessly
        expected = {p: 1 + sum(srv.fault_for(p, a) is not None for a in (1, 2, 3)) for p in PROMPTS}
        assert dict(srv.counts) == expected
        kinds = {srv.fault_for(p, 1) for p in PROMPTS} - {None}
        assert kinds == set(TRANSIENT_KINDS)  # each fault kind was exercised
        assert 0.2 <= sum(v > 1 for v in expected.values()) / len(PROMPTS) <= 0.4


def test_permanent_failures_are_errors_and_the_rerun_sends_exactly_them(tmp_path):
    failing = {p for p in PROMPTS if stable_fraction(p, "perm") < 0.25}
    assert 8 <= len(failing) <= 25
    with FaultServer(permanent=lambda p: p in failing) as srv:
        with _client(srv.url, max_retries=1) as c:
            cache = CachedAdapter(c, tmp_path / "c.sqlite")
            first = cache.generate([Request.chat(p) for p in PROMPTS])  # errors come back, nothing raised
            assert {p for p, r in zip(PROMPTS, first) if r.error} == failing
            assert all("HTTP 500" in r.error for r in first if r.error)
            fp = fingerprint_id(c.fingerprint)
        srv.set_plan(permanent=None)  # the server recovers
        srv.reset_counts()
        with _client(srv.url) as c2:  # a new run: same fingerprint although vLLM's 'created' changed
            preflight(c2)  # counted apart, never faulted: counts stay the audit's own requests
            assert srv.preflights == 1 and PREFLIGHT_PROMPT.startswith(PREFLIGHT_PREFIX)
            assert fingerprint_id(c2.fingerprint) == fp
            second = CachedAdapter(c2, tmp_path / "c.sqlite").generate([Request.chat(p) for p in PROMPTS])
        assert dict(srv.counts) == {p: 1 for p in failing}
        assert [r.text for r in second] == [default_answer(p) for p in PROMPTS]
        assert all(r.cached for p, r in zip(PROMPTS, second) if p not in failing)


@pytest.mark.parametrize("case", ["down", "401", "unknown model", "unknown model, no /models"])
def test_preflight_fails_fast_in_one_line(case, monkeypatch):
    monkeypatch.setenv("RECAUDIT_FAULT_KEY", "sk-wrong-key-0000000000")
    family = "bare" if "no /models" in case else "vllm"
    with FaultServer(key="sk-right-key-1111111111" if case == "401" else None, family=family) as srv:
        url = closed_port_url() if case == "down" else srv.url
        model = "no-such-model" if "unknown" in case else "m"
        c = _client(url, model, api_key_env="RECAUDIT_FAULT_KEY" if case == "401" else None, timeout_s=30)
        t0 = time.monotonic()
        with pytest.raises(PreflightError) as e:
            preflight(c)
        took = time.monotonic() - t0
        c.close()
    msg = str(e.value)
    assert took < 10 and "\n" not in msg and "sk-wrong" not in msg
    assert url.split("//")[1].split("/")[0] in msg and repr(model) in msg
    status = {"down": "connection refused", "401": "HTTP 401", "unknown model": "HTTP 200",
              "unknown model, no /models": "HTTP 404"}[case]
    assert status in msg, msg


def test_preflight_passes_and_reports_what_the_server_said(tmp_path):
    with FaultServer(family="llamacpp", models=["a", "m"]) as srv:
        with _client(srv.url) as c:
            rep = preflight(CachedAdapter(c, tmp_path / "c.sqlite"))  # looks through the cache
        assert rep["family"] == "llamacpp" and rep["model_card"]["id"] == "m" and rep["models_served"] == ["a", "m"]
        assert rep["chat_status"] == 200 and "meta" in rep["model_card"]


def test_callable_preflight_calls_nothing_unless_asked():
    quiet = CallableAdapter(lambda r: "x")
    assert "not called" in preflight(quiet)["preflight"] and quiet.calls == 0
    loud = CallableAdapter(lambda r: "x", preflight=True)
    assert "answered" in preflight(loud)["preflight"] and loud.calls == 1

    def broken(r):
        raise ValueError("model file missing\nsecond line")

    with pytest.raises(PreflightError) as e:
        preflight(CallableAdapter(broken, preflight=True))
    assert "\n" not in str(e.value) and "model file missing" in str(e.value)


class _Scorer:
    """Declares it only scores and refuses temperatures: what the pre-flight must read through a cache."""

    scores_only = True
    fingerprint = {"adapter": "scorer"}

    def __init__(self):
        self.calls = []

    def generate(self, requests):
        raise AssertionError("a scores-only adapter is not asked to generate")

    def score(self, requests):
        self.calls.append(len(requests))
        return [0.5 for _ in requests]

    def check_requests(self, requests):
        if any(r.temperature > 0 for r in requests):
            raise UnsupportedSetting("temperature: this scorer cannot sample")


def test_preflight_reads_what_an_adapter_declares_through_a_wrapper(tmp_path):
    inner = _Scorer()
    cached = CachedAdapter(inner, tmp_path / "c.sqlite")
    assert preflight(cached)["preflight"] == "answered a scoring request" and inner.calls == [1]
    check_requests(cached, [Request.chat("x")])  # greedy: accepted
    with pytest.raises(UnsupportedSetting, match="temperature"):
        check_requests(cached, [Request.chat("x", temperature=0.7)])
    cached.close()


@pytest.mark.parametrize("family,name", [("vllm", "repetition_penalty"), ("llamacpp", "repeat_penalty"),
                                         ("llama-cpp-python", "repeat_penalty")])
def test_repetition_penalty_goes_out_under_the_familys_name(family, name):
    with FaultServer(family=family) as srv, _client(srv.url) as c:
        r = c.generate([Request.chat("hi", repetition_penalty=1.3, seed=7, top_p=0.9, stop=("\n\n",), max_new_tokens=9)])[0]
        assert r.error is None
        body = srv.bodies[-1]
        assert body[name] == 1.3 and ({"repetition_penalty", "repeat_penalty"} - {name}).isdisjoint(body)
        assert (body["seed"], body["top_p"], body["stop"], body["max_tokens"]) == (7, 0.9, ["\n\n"], 9)


@pytest.mark.parametrize("family", ["ollama", "openai", "bare"])
def test_families_without_a_penalty_refuse_it(family):
    with FaultServer(family=family) as srv, _client(srv.url) as c:
        reqs = [Request.chat(f"q{i}", repetition_penalty=1.3 if i % 2 else 1.0) for i in range(6)]
        with pytest.raises(UnsupportedSetting) as e:
            check_requests(c, reqs)
        msg = str(e.value)
        assert "\n" not in msg and "3 requests" in msg and "repetition_penalty=1.3" in msg
        out = c.generate(reqs)  # not checked first: refused per request, never sent without it
        assert [bool(r.error) for r in out] == [bool(i % 2) for i in range(6)]
        assert set(srv.counts) == {"q0", "q2", "q4"}
        check_requests(c, [reqs[0]])  # a neutral penalty is fine
        assert not {"repetition_penalty", "repeat_penalty"} & set(srv.bodies[-1])
        tokens = "max_completion_tokens" if family == "openai" else "max_tokens"
        assert srv.bodies[-1][tokens] == 256


def test_openai_refuses_more_than_four_stops_and_configured_family_wins():
    with FaultServer(family="openai") as srv, _client(srv.url) as c:
        with pytest.raises(UnsupportedSetting, match="at most 4 stop"):
            c.check_requests([Request.chat("x", stop=tuple("abcde"))])
    with FaultServer(family="ollama") as srv, _client(srv.url, server="vllm") as c:
        assert c.server_report().family == "vllm" and c.server_report().extra["detected_family"] == "ollama"
        c.generate([Request.chat("x", repetition_penalty=1.2)])
        assert srv.bodies[-1]["repetition_penalty"] == 1.2


@pytest.mark.parametrize("family,tells", [("vllm", True), ("llamacpp", True), ("ollama", True),
                                          ("llama-cpp-python", False)])
def test_new_weights_behind_one_alias_change_the_fingerprint(family, tells):
    with FaultServer(family=family, weights="w1") as srv:
        with _client(srv.url) as c:
            one = fingerprint_id(c.fingerprint)
        srv.set_plan(weights="w2")
        with _client(srv.url) as c:
            two = fingerprint_id(c.fingerprint)
    # llama-cpp-python reports only the alias: the documented limit (docs/serving.md)
    assert (one != two) is tells


def test_credentials_in_base_url_are_sent_but_never_shown(monkeypatch):
    secret_pw, secret_key = "hunter2pw", "sk-live-abcdef1234567890"
    with FaultServer(permanent=lambda p: p == "boom", permanent_status=422) as srv:
        port = srv.url.split(":")[2].split("/")[0]
        url = f"http://alice:{secret_pw}@127.0.0.1:{port}/v1?api_key={secret_key}&api-version=2024-06-01"
        with _client(url, max_retries=0) as c:
            ok, boom = c.generate([Request.chat("fine"), Request.chat("boom")])
            fp = json.dumps(c.fingerprint)
            rep = json.dumps(preflight(c))
        assert ok.error is None and "permanent failure" in boom.error
        assert any(secret_key in p for p in srv.paths) and any(a.startswith("Basic ") for a in srv.auth)  # sent
        assert "HTTP 422" in boom.error and "permanent failure (planned) at /v1/chat/completions?api_key=***" in boom.error
        for text in (fp, boom.error, rep, c.base_url):
            assert secret_pw not in text and secret_key not in text and "api-version=2024-06-01" in text
    c2 = _client(f"http://bob:{secret_pw}@127.0.0.1:{port}/v1?token={secret_key}", max_retries=0)
    with pytest.raises(PreflightError) as e:  # the server is gone: the error names the URL, masked
        preflight(c2)
    assert secret_pw not in str(e.value) and secret_key not in str(e.value) and "***" in str(e.value)
    c2.close()


@pytest.mark.parametrize("raw,shown", [
    ("http://u:p@h:1/v1", "http://***@h:1/v1"),
    ("https://h/v1?key=abc&api-version=1", "https://h/v1?key=***&api-version=1"),
    ("https://h/v1?x-api-key=abc&token=t&model=m", "https://h/v1?x-api-key=***&token=***&model=m"),
    ("failed: https://h/v1?access_token=zz: HTTP 401", "failed: https://h/v1?access_token=***: HTTP 401"),
    ("Authorization: Bearer abcdef123456", "Authorization: Bearer ***"),
    ("key sk-proj-0123456789abc leaked", "key *** leaked"),
    ("http://h:8000/v1", "http://h:8000/v1"),
    ("no url here", "no url here"),
])
def test_redact_secrets(raw, shown):
    assert redact_secrets(raw) == shown
