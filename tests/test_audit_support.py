"""Support for the audit tests (no tests here): tiny registered checks and callable model functions.

Imported by the audit tests and, through the audit config's ``plugins: [test_audit_support]``,
by `recaudit audit` subprocesses (with tests/ on PYTHONPATH). Checks are named ``t_*`` so they
never clash with real ones. Model calls are appended to the file named by $RECAUDIT_TEST_CALLS, so
a test can count them across processes.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from recaudit.adapters.base import Request, Response
from recaudit.checks import CheckContext, CheckParams, Probe, register_check
from recaudit.results import CheckResult, Example, FigureSpec, MetricValue, Series

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

    def evaluate(self, ctx: CheckContext, requests: list[Request], responses: list[Response]) -> CheckResult:
        lengths = [len(r.text) for r in responses]
        mean = sum(lengths) / len(lengths)
        return self.new_result(
            metrics=[
                MetricValue(name="length.mean", value=mean, ci_low=mean - 0.5, ci_high=mean + 0.5, n=len(lengths), direction="lower_is_better"),
                MetricValue(name="length.max", value=max(lengths), n=len(lengths)),
            ],
            figures=[FigureSpec(name="lengths", kind="bar", title="Answer lengths", series=[Series(label="length", x=list(range(len(lengths))), y=lengths)])],
            examples=[Example(fields={"prompt": q.user_text, "answer": r.text}) for q, r in zip(requests[:2], responses[:2])],
            notes=["Lengths are counted in characters."],
        )


@register_check("t_fail")
class FailingCheck(Probe):
    """Always raises after asking the model once (failure isolation)."""

    title = "Test: always fails"
    risk = "robustness"

    def requests(self, ctx: CheckContext) -> list[Request]:
        return [Request.chat("t_fail item 0")]

    def evaluate(self, ctx: CheckContext, requests: list[Request], responses: list[Response]) -> CheckResult:
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

    def evaluate(self, ctx: CheckContext, requests: list[Request], responses: list[Response]) -> CheckResult:
        flag = os.environ.get(HANG_ENV)
        if flag:
            Path(flag).touch()
            time.sleep(600)
        return self.new_result(metrics=[MetricValue(name="answers", value=len(responses), n=len(responses))])


def count_calls(path: Path, prefix: str = "") -> int:
    """Model calls recorded in ``path`` whose prompt starts with ``prefix``."""
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if line.split("\t", 1)[1].startswith(prefix))
