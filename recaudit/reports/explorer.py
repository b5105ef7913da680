"""The report's per-sample explorer: evidence records shown and filtered without any script.

Filters are radio buttons placed before the record list; generated CSS rules hide the records a
checked filter excludes (``#sx-c-2:checked ~ .sx-list .sx-rec:not(.sx-c-2) {display:none}``), so
filters by check, outcome and attribute combine (AND) under the report's CSP (no script at all).
Every class and id is built from a counter, never from record text; record text goes through
Jinja2 autoescaping like everything else. The size is bounded: at most ``MAX_PER_CHECK`` records
per check, long texts clipped, and the report says how many were left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

MAX_PER_CHECK = 200
MAX_TEXT = 1200
MAX_TAG_VALUES = 8  # a unit field with more distinct values (ids, names) is not offered as a filter
MAX_TAGS = 40
# unit fields that identify a request rather than a group: never offered as attribute filters
_ID_FIELDS = ("user_id", "item_id", "name", "unit", "instruction", "index", "check", "interest")


@dataclass
class Option:
    """One filter chip: its input id, label and how many shown records it matches."""

    id: str
    label: str
    count: int


@dataclass
class Record:
    """One evidence record as the explorer shows it (texts clipped)."""

    css: str
    check: str
    index: int
    kind: str
    outcome: str
    unit: str
    prompt: str
    system: str
    answer: str
    score: str
    parse: list[str]
    grounded: list[str]
    error: str
    note: str
    preview: str


@dataclass
class Explorer:
    """Everything the template needs to draw the explorer."""

    checks: list[Option] = field(default_factory=list)
    outcomes: list[Option] = field(default_factory=list)
    tags: list[Option] = field(default_factory=list)
    records: list[Record] = field(default_factory=list)
    hidden: dict[str, int] = field(default_factory=dict)
    total: int = 0
    css: str = ""


def build_explorer(
    checks: Sequence[Any], samples: Mapping[str, Sequence[Mapping[str, Any]]], totals: Mapping[str, int] | None = None,
) -> Explorer:
    """The explorer over ``samples`` (check name → records), in the order of ``checks`` (views with
    ``result.name``); checks without records are left out. ``totals`` (check → records that exist)
    counts records the caller did not pass (read only up to ``MAX_PER_CHECK``)."""
    ex = Explorer()
    names = [c.result.name for c in checks if samples.get(c.result.name)]
    names += [n for n in samples if n not in names and samples[n]]
    outcome_ids: dict[str, str] = {}
    tag_ids: dict[tuple[str, str], str] = {}
    outcome_counts: Counter[str] = Counter()
    tag_counts: Counter[tuple[str, str]] = Counter()
    for ci, name in enumerate(names):
        records = list(samples[name])
        exist = max(len(records), (totals or {}).get(name, 0))
        ex.total += exist
        shown = records[:MAX_PER_CHECK]
        if exist > len(shown):
            ex.hidden[name] = exist - len(shown)
        fields = _tag_fields(shown)
        ex.checks.append(Option(f"sx-c-{ci}", name, len(shown)))
        for rec in shown:
            outcome = str(rec.get("outcome") or "unchecked")
            oid = outcome_ids.setdefault(outcome, f"sx-o-{len(outcome_ids)}")
            outcome_counts[outcome] += 1
            unit = rec.get("unit") or {}
            classes = ["sx-rec", f"sx-c-{ci}", oid]
            for key in fields:
                if key in unit:
                    tag = (key, str(unit[key]))
                    if tag not in tag_ids and len(tag_ids) >= MAX_TAGS:
                        continue
                    tid = tag_ids.setdefault(tag, f"sx-t-{len(tag_ids)}")
                    tag_counts[tag] += 1
                    classes.append(tid)
            ex.records.append(_record(" ".join(classes), name, rec, outcome, unit))
    ex.outcomes = [Option(oid, o, outcome_counts[o]) for o, oid in outcome_ids.items()]
    ex.tags = [Option(tid, f"{k} = {v}", tag_counts[(k, v)]) for (k, v), tid in tag_ids.items()]
    ex.css = _filter_css(ex)
    return ex


def _tag_fields(records: Sequence[Mapping[str, Any]]) -> list[str]:
    """Unit fields that name groups (2..MAX_TAG_VALUES distinct values), ``attribute`` first."""
    values: dict[str, set[str]] = {}
    for rec in records:
        for k, v in (rec.get("unit") or {}).items():
            if k not in _ID_FIELDS and not k.endswith("_id") and v not in (None, ""):
                values.setdefault(k, set()).add(str(v))
    keys = [k for k, vs in values.items() if 2 <= len(vs) <= MAX_TAG_VALUES]
    return sorted(keys, key=lambda k: (k != "attribute", k))


def _record(css: str, check: str, rec: Mapping[str, Any], outcome: str, unit: Mapping[str, Any]) -> Record:
    messages = rec.get("messages") or []
    user = [c for r, c in messages if r == "user"]
    system = [c for r, c in messages if r == "system"]
    prompt = user[-1] if user else (messages[-1][1] if messages else "")
    answer = rec.get("answer") or ""
    score = rec.get("score")
    error = rec.get("error") or ""
    preview = error or answer or ("" if score is None else f"score {score:.4g}")
    return Record(
        css=css,
        check=check,
        index=int(rec.get("index", 0) or 0),
        kind=str(rec.get("kind") or ""),
        outcome=outcome,
        unit=", ".join(f"{k}={v}" for k, v in unit.items()),
        prompt=_clip(str(prompt)),
        system=_clip(str(system[0])) if system else "",
        answer=_clip(str(answer)),
        score="" if score is None else f"{float(score):.4g}",
        parse=[_clip(str(p), 200) for p in (rec.get("parse") or [])],
        grounded=["—" if g is None else _clip(str(g), 200) for g in (rec.get("grounded") or [])],
        error=_clip(str(error)),
        note=_clip(str(rec.get("note") or "")),
        preview=_clip(" ".join(preview.split()), 110),
    )


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit} more characters]"


def _filter_css(ex: Explorer) -> str:
    """One hide rule and one highlight rule per filter option (ids are counters: safe in CSS)."""
    rules = []
    for opt in [*ex.checks, *ex.outcomes, *ex.tags]:
        rules.append(f"#{opt.id}:checked ~ .sx-list .sx-rec:not(.{opt.id}) {{ display:none; }}")
        rules.append(f"#{opt.id}:checked ~ .sx-filters label[for={opt.id}] {{ background:#1f2a44; color:#fff; }}")
    for group in ("c", "o", "t"):
        rules.append(f"#sx-{group}-all:checked ~ .sx-filters label[for=sx-{group}-all] {{ background:#1f2a44; color:#fff; }}")
    return "\n".join(rules)
