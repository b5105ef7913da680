"""Evidence records: one per model call, coverage computed once, incomplete checks never pass."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Sequence

import pytest

import test_audit_support  # noqa: F401 - registers the t_* checks
from recaudit.adapters.base import Request, Response
from recaudit.audits.config import parse_config
from recaudit.audits.runner import Runner
from recaudit.checks import CheckContext
from recaudit.evidence import GZIP_ABOVE, EvidenceLog, answers_of, read_samples, read_samples_head, samples_path
from recaudit.probes.fairllm import FairLLMProbe

SAMPLE_FIELDS = {"index", "kind", "request_key", "messages", "unit", "answer", "score", "error", "outcome",
                 "parse", "grounded", "note"}


class ScriptedAdapter:
    """Answers by a rule on the prompt: full lists, short lists, or adapter errors (an outage)."""

    def __init__(self, rule):
        self.rule = rule
        self.calls = 0

    @property
    def fingerprint(self) -> dict:
        return {"adapter": "scripted"}

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        out = []
        for r in requests:
            self.calls += 1
            kind = self.rule(r)
            if kind == "error":
                out.append(Response(text="", finish_reason="error", error="HTTP 503 after 5 retries"))
            elif kind == "short":
                out.append(Response(text="1. Heat"))
            else:
                out.append(Response(text="\n".join(f"{i + 1}. Film {i}" for i in range(3))))
        return out

    def score(self, requests: Sequence[Request]) -> list[float]:
        return [0.5] * len(requests)


def _probe() -> FairLLMProbe:
    return FairLLMProbe({"domains": ["movie"], "n_names": 2, "attributes": ["gender"], "k": 3,
                         "n_bootstrap": 0, "n_permutations": 0, "parse_mode": "robust"})  # the notebook parser lowercases


def test_one_record_per_request_with_its_outcome() -> None:
    probe = _probe()
    ctx = CheckContext(adapter=ScriptedAdapter(lambda r: "full"))
    reqs = probe.requests(ctx)
    rules = {0: "error", 1: "short"}
    ctx.adapter = ScriptedAdapter(lambda r: rules.get(reqs.index(r), "full"))
    probe.run(ctx)
    samples = ctx.evidence.samples
    assert len(samples) == len(reqs)
    assert [s.request_key for s in samples] == [r.key() for r in reqs]
    assert samples[0].outcome == "adapter_error" and samples[0].error == "HTTP 503 after 5 retries"
    assert samples[0].answer is None
    assert samples[1].outcome == "unparsed" and samples[1].parse == ["Heat"] and samples[1].answer == "1. Heat"
    assert all(s.outcome == "usable" for s in samples[2:])
    assert samples[2].unit["attribute"] in ("neutral", "gender") and samples[2].messages[-1][0] == "user"
    cov = ctx.evidence.coverage(min_answered=0.98, min_usable=0.9)
    n = len(reqs)
    assert (cov.requested, cov.answered, cov.usable) == (n, n - 1, n - 2)
    assert cov.outcomes == {"adapter_error": 1, "unparsed": 1, "usable": n - 2}
    assert not cov.sufficient and "answered" in cov.reason and "usable" in cov.reason


def test_unmarked_answers_of_a_probe_are_not_usable() -> None:
    log = EvidenceLog()
    req = Request.chat("x")
    log.record_generation([req, req], [Response(text="a"), Response(text="b")])
    log.mark(0, "usable")
    cov = log.coverage(min_answered=0.98, min_usable=0.6)
    assert cov.outcomes == {"usable": 1, "unchecked": 1} and not cov.sufficient
    log.mark(1, "unparsed")
    log.mark(1, "usable")  # a later verdict on the same answer replaces the earlier one
    assert log.coverage(min_answered=0.98, min_usable=0.6).sufficient
    with pytest.raises(ValueError, match="unknown outcome"):
        log.mark(0, "fine")  # type: ignore[arg-type]


def test_answers_mark_their_own_record_and_lengths_are_checked_once() -> None:
    log = EvidenceLog()
    reqs = [Request.chat(f"q{i}") for i in range(3)]
    log.record_generation(reqs[:1], [Response(text="earlier call")])
    resps = [Response(text="a"), Response(text="", error="HTTP 503")]
    first = log.record_generation(reqs[1:], resps)
    answers = answers_of(reqs[1:], resps, log, first)
    assert [(a.index, a.sample, a.request.user_text) for a in answers] == [(0, 1, "q1"), (1, 2, "q2")]
    answers[0].mark("unparsed", parse=["a"], note="one title")
    answers[1].mark("usable")  # an adapter error stays one
    assert [(s.outcome, s.parse, s.note) for s in log.samples] == [
        ("unchecked", None, None), ("unparsed", ["a"], "one title"), ("adapter_error", None, None)]
    answers_of(reqs, [Response(text="x")] * 3)[0].mark("usable")  # unbound (evaluate called directly): no record
    assert log.samples[0].outcome == "unchecked"
    with pytest.raises(ValueError, match="3 requests but 2 responses"):
        answers_of(reqs, [Response(text="a")] * 2)


def test_a_probe_run_after_other_calls_marks_its_own_records() -> None:
    ctx = CheckContext(adapter=ScriptedAdapter(lambda r: "short"))
    ctx.generate([Request.chat("before")])  # a record the probe's marks must not touch
    probe = _probe()
    probe.run(ctx)
    outcomes = [s.outcome for s in ctx.evidence.samples]
    assert outcomes == ["unchecked"] + ["unparsed"] * len(probe.requests(ctx))


def test_scores_record_nan_as_adapter_error() -> None:
    log = EvidenceLog()
    reqs = [Request.chat(f"q{i}") for i in range(3)]
    log.record_scores(reqs, [0.2, float("nan"), 0.9])
    assert [s.outcome for s in log.samples] == ["usable", "adapter_error", "usable"]
    assert log.samples[1].score is None and log.samples[0].score == 0.2


def test_samples_file_is_plain_or_gzip_and_readable(tmp_path: Path) -> None:
    log = EvidenceLog()
    reqs = [Request.chat(f"q{i}", metadata=(("user", str(i)),)) for i in range(GZIP_ABOVE + 1)]
    log.record_generation(reqs, [Response(text=f"a{i}") for i in range(len(reqs))])
    big = log.write(tmp_path / "big")
    assert big.name == "big.samples.jsonl.gz"
    with gzip.open(big, "rt") as f:
        first = json.loads(f.readline())
    assert set(first) == SAMPLE_FIELDS and first["unit"] == {"user": "0"}
    small = EvidenceLog(samples=log.samples[:3])
    path = small.write(tmp_path / "small")
    assert path.name == "small.samples.jsonl" and len(read_samples(path)) == 3
    assert samples_path(tmp_path, "small") == path and samples_path(tmp_path, "big") == big
    head, total = read_samples_head(big, 5)  # the report's read: the first records parsed, the rest counted
    assert total == GZIP_ABOVE + 1 and [r["answer"] for r in head] == [f"a{i}" for i in range(5)]
    assert read_samples_head(path, None) == (read_samples(path), 3)


def _audit(tmp_path: Path, **check) -> dict:
    return {"name": "evidence", "adapter": {"kind": "callable", "generate": "test_audit_support:echo_length"},
            "plugins": ["test_audit_support"], "output_dir": str(tmp_path / "run"),
            "checks": [{"check": "t_length", "params": {"n": 4}, "thresholds": ["length.mean <= 9"], **check}]}


def test_runner_marks_a_check_below_its_floor_incomplete_and_recomputes_it(tmp_path: Path, monkeypatch) -> None:
    failing = {"on": True}

    class HalfDown(ScriptedAdapter):
        preflight_call = False  # up at the pre-flight; half the audit's requests then fail

        def generate(self, requests):
            out = []
            for r in requests:
                self.calls += 1
                n = int(r.user_text.rsplit(" ", 1)[-1])
                if failing["on"] and n % 2:
                    out.append(Response(text="", finish_reason="error", error="connection refused"))
                else:
                    out.append(Response(text="x" * (n + 1)))
            return out

    adapter = HalfDown(lambda r: "full")
    config = parse_config(_audit(tmp_path), base_dir=tmp_path)
    first = Runner(config, adapter=adapter, progress=False).run()
    check = first.results.check("t_length")
    assert check.status == "incomplete" and first.exit_code == 3
    assert check.coverage.answered == 2 and check.coverage.requested == 4
    assert "answered 2/4 = 50.0% < min_answered 98%" in check.verdict.reason
    recorded = read_samples(samples_path(first.run_dir / "checks", "t_length"))
    assert [r["outcome"] for r in recorded] == ["usable", "adapter_error", "usable", "adapter_error"]
    assert all(set(r) == SAMPLE_FIELDS for r in recorded)

    failing["on"] = False  # the server recovers: the check is recomputed, the cache resends only the failures
    before = adapter.calls
    second = Runner(config, adapter=adapter, progress=False).run()
    assert second.computed == ["t_length"] and adapter.calls - before == 2
    assert second.results.check("t_length").status == "pass" and second.exit_code == 0


def test_min_usable_and_min_answered_can_be_set_per_check(tmp_path: Path) -> None:
    config = parse_config(_audit(tmp_path, min_usable=0.25, min_answered=0.5), base_dir=tmp_path)
    plan = config.plan()[0]
    assert (plan.min_answered, plan.min_usable) == (0.5, 0.25)
    audit_level = parse_config({**_audit(tmp_path), "min_answered": 0.9, "min_usable": 0.8}, base_dir=tmp_path)
    assert (audit_level.plan()[0].min_answered, audit_level.plan()[0].min_usable) == (0.9, 0.8)
    default = parse_config(_audit(tmp_path), base_dir=tmp_path).plan()[0]
    assert (default.min_answered, default.min_usable) == (0.98, 0.5)


def test_sample_json_has_every_field_as_asdict_would():
    """to_json is built by hand for speed: it must keep every field (a new one would be dropped silently)."""
    from dataclasses import asdict

    from recaudit.evidence import Sample

    s = Sample(index=3, kind="generate", request_key="k", messages=[["user", "hi"]], unit={"a": "b"}, answer="x",
               score=float("nan"), error="e", outcome="unparsed", parse=["p"], grounded=[None, "g"], note="n")
    assert s.to_json() == {**asdict(s), "score": None}
    assert s.to_json()["parse"] is not s.parse  # a copy: writing never aliases the live record
