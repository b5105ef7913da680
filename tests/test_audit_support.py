"""Support for the audit tests (no tests here): tiny registered checks and callable model functions.

``sample_results()`` builds results with hostile text for the report tests. Imported by the audit
tests and, through the audit config's ``plugins: [test_audit_support]``,
by `recaudit audit` subprocesses (with tests/ on PYTHONPATH). Checks are named ``t_*`` so they
never clash with real ones. Model calls are appended to the file named by $RECAUDIT_TEST_CALLS, so
a test can count them across processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from recaudit.adapters.base import Request
from recaudit.checks import Answer, CheckContext, CheckParams, Probe, register_check
from recaudit.results import AuditResults, CheckResult, Example, FigureSpec, MetricValue, Series

CALLS_ENV = "RECAUDIT_TEST_CALLS"
HANG_ENV = "RECAUDIT_TEST_HANG"  # path of a file t_hang touches before it sleeps forever


def _record(kind: str, request: Request) -> None:
    path = os.environ.get(CALLS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{kind}\t{request.user_text}\n")


def echo_length(request: Request) -> str:
    """The model: answers 'item N' with N+1 x's (so the mean answer length is hand-computable)."""
    _record("generate", request)
    n = int(request.user_text.rsplit(" ", 1)[-1])
    return "x" * (n + 1)


def yes_probability(request: Request) -> float:
    _record("score", request)
    return 0.75


class LengthParams(CheckParams):
    n: int = 4


@register_check("t_length")
class LengthCheck(Probe):
    """Asks 'item 0' … 'item n-1'; metric length.mean = mean answer length = (n + 1) / 2."""

    title = "Test: answer length"
    risk = "fairness"
    references = ("A. Tester, Lengths of answers, 2024",)
    Params = LengthParams

    @classmethod
    def metric_names(cls, params: LengthParams) -> list[str]:
        return ["length.mean", "length.max"]

    def requests(self, ctx: CheckContext) -> list[Request]:
        return [Request.chat(f"{self.name} item {i}", seed=self.params.seed) for i in range(self.params.n)]

    def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
        for a in answers:
            a.mark("adapter_error" if a.response.error else "usable")
        lengths = [len(a.response.text) for a in answers if not a.response.error]
        mean = sum(lengths) / len(lengths)
        return self.new_result(
            metrics=[
                MetricValue(name="length.mean", value=mean, ci_low=mean - 0.5, ci_high=mean + 0.5, n=len(lengths), direction="lower_is_better"),
                MetricValue(name="length.max", value=max(lengths), n=len(lengths)),
            ],
            figures=[FigureSpec(name="lengths", kind="bar", title="Answer lengths", series=[Series(label="length", x=list(range(len(lengths))), y=lengths)])],
            examples=[Example(fields={"prompt": a.request.user_text, "answer": a.response.text}) for a in answers[:2]],
            notes=["Lengths are counted in characters."],
        )


@register_check("t_fail")
class FailingCheck(Probe):
    """Always raises after asking the model once (failure isolation)."""

    title = "Test: always fails"
    risk = "robustness"

    def requests(self, ctx: CheckContext) -> list[Request]:
        return [Request.chat("t_fail item 0")]

    def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
        raise RuntimeError("planted failure in t_fail")


class HangParams(CheckParams):
    n: int = 3


@register_check("t_hang")
class HangCheck(Probe):
    """Asks n questions; when $RECAUDIT_TEST_HANG names a file, touches it and sleeps (to be killed)."""

    title = "Test: hangs after its model calls"
    risk = "privacy"
    Params = HangParams

    def requests(self, ctx: CheckContext) -> list[Request]:
        return [Request.chat(f"t_hang item {i}") for i in range(self.params.n)]

    def evaluate(self, ctx: CheckContext, answers: list[Answer]) -> CheckResult:
        flag = os.environ.get(HANG_ENV)
        if flag:
            Path(flag).touch()
            time.sleep(600)
        for a in answers:
            a.mark("usable")
        return self.new_result(metrics=[MetricValue(name="answers", value=len(answers), n=len(answers))])


def count_calls(path: Path, prefix: str = "") -> int:
    """Model calls recorded in ``path`` whose prompt starts with ``prefix``."""
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.split("\t", 1)[1].startswith(prefix))


HOSTILE = "<img src=x onerror=alert(1)>"
SCRIPT_END = "</script><script>alert(2)</script>"


def sample_results() -> AuditResults:
    """Results with every part the report draws, and hostile text wherever results carry text."""
    from recaudit.results import (
        AuditResults, Breach, GroupTable, Reproducibility, Verdict,
    )

    fairness = CheckResult(
        name="fairllm", check="fairllm", title=f"FaiRLLM {HOSTILE}", risk="fairness",
        params={"k": 20, "note": SCRIPT_END},
        metrics=[
            MetricValue(name="snsr.prag@20.max", value=0.12, ci_low=0.08, ci_high=0.16, p_value=0.004, n=40,
                        direction="lower_is_better", description=f"largest SNSR {HOSTILE}"),
            MetricValue(name="parse_rate.mean", value=0.93, n=40, direction="higher_is_better"),
        ],
        tables=[GroupTable(name="Sim by value", columns=["attribute", "value", "sim"],
                           rows=[["gender", HOSTILE, 0.81], ["gender", "a boy", None]])],
        figures=[
            FigureSpec(name="sim", kind="bar", title=HOSTILE, x_label=SCRIPT_END, y_label="Sim $x$",
                       series=[Series(label=HOSTILE, x=["a girl", "a boy"], y=[0.8, 0.7], y_low=[0.7, 0.6], y_high=[0.9, 0.8])]),
            FigureSpec(name="curve", kind="line", title="Sim@K", series=[
                Series(label="female", x=[1, 5, 10], y=[0.9, 0.8, 0.7], y_low=[0.85, 0.7, 0.6], y_high=[0.95, 0.9, 0.8]),
                Series(label="male", x=[1, 5, 10], y=[0.95, 0.85, 0.75])]),
            FigureSpec(name="heat", kind="heatmap", title="Jaccard", matrix=[[1.0, 0.5], [0.5, None]],
                       row_labels=[HOSTILE, "b"], col_labels=["a", "b"]),
        ],
        examples=[Example(fields={"item title": HOSTILE, "raw output": f"1. Alien\n2. {SCRIPT_END}"})],
        notes=[f"Prompts from the paper; {SCRIPT_END}"],
        references=["Zhang et al., Is ChatGPT Fair for Recommendation?, RecSys 2023", HOSTILE],
        verdict=Verdict(status="fail", evaluated=["snsr.prag@20.max <= 0.05"],
                        breaches=[Breach(metric="snsr.prag@20.max", value=0.12, op="<=", threshold=0.05,
                                         message="snsr.prag@20.max = 0.12 breaches <= 0.05")]),
        reproducibility=Reproducibility(seed=0, duration_s=12.5, cache_stats={"hits": 3, "misses": 37}),
    )
    exposure = CheckResult(
        name="exposure", check="exposure", title="Exposure concentration", risk="robustness",
        metrics=[MetricValue(name="gini", value=0.41, ci_low=0.38, ci_high=0.44, direction="lower_is_better")],
        figures=[
            FigureSpec(name="lorenz", kind="lorenz", title="Lorenz", series=[Series(label="exposure", x=[], y=[1, 1, 2, 8])]),
            FigureSpec(name="hist", kind="histogram", title="Ranks", series=[Series(label="rank", x=[], y=[1, 2, 2, 3, 9])]),
        ],
        verdict=Verdict(status="pass", evaluated=["gini <= 0.5"]),
    )
    broken = CheckResult(name="unlearning", check="unlearning", title="Unlearning", risk="privacy",
                         error=f"RuntimeError: {SCRIPT_END}\n\nTraceback (most recent call last): ...",
                         verdict=Verdict(status="error"))
    return AuditResults(
        audit_name=f"Audit </title>{SCRIPT_END}",
        checks=[fairness, exposure, broken],
        reproducibility=Reproducibility(
            recaudit_version="0.1.0", seed=0, adapter_fingerprint={"adapter": "callable", "name": HOSTILE},
            data_hashes={"catalog:demo": "abc123"}, library_versions={"python": "3.11", "torch": "2.13.0"},
            config={"name": "t", "checks": [{"check": "fairllm", "thresholds": ["snsr.prag@20.max <= 0.05"]}]},
            cache_stats={"hits": 3, "misses": 37}, started_at="2026-11-23T10:00:00+00:00", duration_s=30.0,
            platform="Linux; x86_64; 2 CPUs",
        ),
    )
