"""Parsing answers as they arrive: the ``prepare`` hook of probes whose answers are ranked lists.

A probe that mixes in ``ParsesAnswersEarly`` parses each answer (``parse_list``, recaudit's one
parser) while the model is still writing the others; ``evaluate`` reads the parses back through
``parse_answer`` with the memo from ``take_answer_memo()``. Grounding stays in ``evaluate``: item
probes ground against each user's own candidates, which a hook per answer does not know cheaply.
"""

from __future__ import annotations

from recaudit.adapters.base import Request, Response
from recaudit.checks import AnswerMemo, CheckContext
from recaudit.evidence import Outcome
from recaudit.text.parse import ParsedList, parse_list


def parse_outcome(response: Response, parsed: ParsedList) -> Outcome:
    """A list answer is usable evidence when it parsed to the full list asked for (``status == "ok"``)."""
    if response.error:
        return "adapter_error"
    return "usable" if parsed.ok else "unparsed"


def parse_answer(memo: AnswerMemo, response: Response, k: int) -> ParsedList:
    """The answer's parsed list, from ``memo`` when ``prepare`` parsed it already (an error parses as empty)."""
    if response.error:
        return parse_list(None, k)
    return memo.get(response.text, lambda: parse_list(response.text, k))


class ParsesAnswersEarly:
    """Mixin for a ``Probe`` whose params have ``k``: parse each answer in ``prepare``."""

    def prepare(self, ctx: CheckContext, request: Request, response: Response) -> None:
        """Parse the answer now, while the model writes the others; ``evaluate`` reuses the parse."""
        parse_answer(self.answer_memo(), response, self.params.k)  # type: ignore[attr-defined]
