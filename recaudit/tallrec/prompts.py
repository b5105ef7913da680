"""TALLRec instruction samples from interactions: history → Preference / Unpreference → Yes/No.

Each sample asks whether a user will like a target item given the ``history_len`` items that user
rated just before it (rating > ``like_threshold`` = like, as in TALLRec's MovieLens setup). The
prompt text is package data (``prompt.yaml``) and can be overridden with a ``PromptTemplate``;
its ``input`` uses the one template syntax of ``recaudit.text.prompts`` (``{target}``), checked
when the template is made.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np

from recaudit.adapters.base import Message, Request
from recaudit.data.catalog import Catalog, Interactions
from recaudit.text.prompts import check_placeholders, escape, fill, load_prompt_file

INPUT_PLACEHOLDERS = ("preference", "unpreference", "target")  # {target} is required, the others optional


@dataclass(frozen=True)
class PromptTemplate:
    """The TALLRec instruction, input template and answers."""

    instruction: str
    input: str
    instruction_role: Literal["system", "user"] = "user"
    positive: str = "Yes."
    negative: str = "No."
    options: tuple[str, str] = ("Yes", "No")

    def __post_init__(self) -> None:
        check_placeholders(self.input, {"target"}, "tallrec prompt input", INPUT_PLACEHOLDERS)
        if self.instruction_role not in ("system", "user"):
            raise ValueError(f"tallrec prompt instruction_role must be 'system' or 'user', got {self.instruction_role!r}")

    def messages(self, preference: Sequence[str], unpreference: Sequence[str], target: str) -> tuple[Message, ...]:
        """Chat messages for one sample (titles are quoted; untrusted text is never formatted as a template)."""
        body = fill(self.input, preference=_quote_list(preference), unpreference=_quote_list(unpreference),
                    target=_quote(target))
        if self.instruction_role == "system":
            return (("system", self.instruction), ("user", body))
        if not self.instruction:
            return (("user", body),)
        return (("user", f"{self.instruction}\n\n{body}"),)

    def answer(self, label: int) -> str:
        """The target text for a label (1 → "Yes.", 0 → "No.")."""
        return self.positive if label else self.negative


ALPACA_PREAMBLE = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                   "Write a response that appropriately completes the request.")


def alpaca_template(base: PromptTemplate | None = None) -> PromptTemplate:
    """TALLRec's Alpaca prompt ("### Instruction: … ### Input: … ### Response:") as one user message.

    Differs from TALLRec in one way: the text still goes through the model's chat template (the
    encoder renders every prompt as a chat), where TALLRec feeds the Alpaca text raw to LLaMA.
    """
    base = base or default_template()
    # the preamble and instruction are plain text (escaped); the base input is already a template
    body = f"{escape(ALPACA_PREAMBLE)}\n\n### Instruction:\n{escape(base.instruction)}\n\n### Input:\n{base.input}\n\n### Response:"
    return PromptTemplate(instruction="", input=body, instruction_role="user",
                          positive=base.positive, negative=base.negative, options=base.options)  # fmt: skip


@lru_cache(maxsize=1)
def default_template() -> PromptTemplate:
    """The shipped TALLRec movie prompt (``recaudit/tallrec/prompt.yaml``)."""
    return template_from_mapping(load_prompt_file("prompt.yaml", "recaudit.tallrec"))


def template_from_mapping(raw: dict, where: str = "tallrec prompt") -> PromptTemplate:
    """A ``PromptTemplate`` from a prompt file's mapping (the keys of ``recaudit/tallrec/prompt.yaml``)."""
    missing = [k for k in ("instruction", "input", "answers", "options") if k not in raw]
    if missing:
        raise ValueError(f"{where}: missing keys {missing}")
    return PromptTemplate(
        instruction=raw["instruction"],
        input=raw["input"],
        instruction_role=raw.get("instruction_role", "user"),
        positive=raw["answers"]["positive"],
        negative=raw["answers"]["negative"],
        options=tuple(raw["options"]),
    )


@dataclass(frozen=True)
class TallRecSample:
    """One Yes/No training or test example. ``label`` is 1 when the user liked the target."""

    user_id: str
    item_id: str
    prompt_messages: tuple[Message, ...]
    label: int
    timestamp: int = 0

    def to_request(self, options: tuple[str, str] = ("Yes", "No")) -> Request:
        """The sample as an adapter ``Request`` for ``Adapter.score`` (P(Yes))."""
        return Request(
            messages=self.prompt_messages,
            max_new_tokens=2,
            options=options,
            metadata=(("user_id", self.user_id), ("item_id", self.item_id)),
        )

    @property
    def text(self) -> str:
        """The prompt as plain text (what sample embeddings are computed from)."""
        return "\n".join(content for _, content in self.prompt_messages)


def build_samples(
    interactions: Interactions,
    catalog: Catalog,
    history_len: int = 10,
    seed: int = 0,
    *,
    min_history: int | None = None,
    max_per_user: int | None = None,
    like_threshold: float = 3.0,
    template: PromptTemplate | None = None,
) -> list[TallRecSample]:
    """TALLRec samples: each rated item after ``min_history`` earlier ratings becomes one sample.

    The history is the user's last ``history_len`` rated items before the target, split by
    rating > ``like_threshold`` into Preference / Unpreference. Items missing from the catalogue
    are skipped. ``max_per_user`` keeps a seeded random subset of each user's samples (in time
    order). Output order: users in natural id order, each user's samples in time order.
    """
    if history_len < 1:
        raise ValueError(f"history_len must be >= 1, got {history_len}")
    min_history = history_len if min_history is None else min_history
    if not 0 <= min_history <= history_len:
        raise ValueError(f"min_history must be in [0, history_len={history_len}], got {min_history}")
    if max_per_user is not None and max_per_user < 1:
        raise ValueError(f"max_per_user must be >= 1 or None, got {max_per_user}")
    template = template or default_template()
    rng = np.random.default_rng(seed)
    frame = interactions.frame[interactions.frame["item_id"].isin(set(catalog.ids))]
    samples: list[TallRecSample] = []
    for user_id in interactions.user_ids:
        rows = frame[frame["user_id"] == user_id].sort_values(["timestamp", "item_id"], kind="stable")
        items = rows["item_id"].tolist()
        ratings = rows["rating"].to_numpy(dtype=float)
        times = rows["timestamp"].to_numpy()
        positions = list(range(min_history, len(items)))
        if max_per_user is not None and len(positions) > max_per_user:
            positions = sorted(rng.choice(positions, size=max_per_user, replace=False).tolist())
        for t in positions:
            lo = max(0, t - history_len)
            liked = [catalog.get(items[j]).title for j in range(lo, t) if ratings[j] > like_threshold]
            disliked = [catalog.get(items[j]).title for j in range(lo, t) if ratings[j] <= like_threshold]
            samples.append(
                TallRecSample(
                    user_id=str(user_id),
                    item_id=str(items[t]),
                    prompt_messages=template.messages(liked, disliked, catalog.get(items[t]).title),
                    label=int(ratings[t] > like_threshold),
                    timestamp=int(times[t]),
                )
            )
    return samples


def split_samples(
    samples: Sequence[TallRecSample],
    valid_frac: float = 0.1,
    test_frac: float = 0.1,
    by: Literal["time", "user_time", "random"] = "time",
    seed: int = 0,
) -> tuple[list[TallRecSample], list[TallRecSample], list[TallRecSample]]:
    """Deterministic train / valid / test split.

    ``time``: globally oldest → train, newest → test (a global time split; not TALLRec's);
    ``user_time``: by position within each user, every user keeps their newest samples for
    valid/test (TALLRec's split is by position within users); ``random``: seeded. Each part
    keeps the input order, so the split never reorders training data.
    """
    if valid_frac < 0 or test_frac < 0 or valid_frac + test_frac >= 1:
        raise ValueError(f"valid_frac and test_frac must be >= 0 with sum < 1, got {valid_frac}, {test_frac}")
    part = np.empty(len(samples), dtype=np.int8)
    if by == "time":
        _assign_parts(part, sorted(range(len(samples)), key=lambda i: (samples[i].timestamp, i)), valid_frac, test_frac)
    elif by == "user_time":
        users: dict[str, list[int]] = {}
        for i, s in enumerate(samples):
            users.setdefault(s.user_id, []).append(i)
        for idx in users.values():
            _assign_parts(part, sorted(idx, key=lambda i: (samples[i].timestamp, i)), valid_frac, test_frac)
    elif by == "random":
        _assign_parts(part, np.random.default_rng(seed).permutation(len(samples)).tolist(), valid_frac, test_frac)
    else:
        raise ValueError(f"by must be 'time', 'user_time' or 'random', got {by!r}")
    return tuple([s for s, p in zip(samples, part) if p == k] for k in range(3))  # type: ignore[return-value]


def _assign_parts(part: np.ndarray, order: Sequence[int], valid_frac: float, test_frac: float) -> None:
    n = len(order)
    n_test = int(round(n * test_frac))
    n_valid = int(round(n * valid_frac))
    n_train = n - n_valid - n_test
    for rank, i in enumerate(order):
        part[i] = 0 if rank < n_train else (1 if rank < n_train + n_valid else 2)


def _quote(title: str) -> str:
    return f'"{title}"'


def _quote_list(titles: Sequence[str]) -> str:
    return ", ".join(_quote(t) for t in titles)
