"""Metric names parsed once: ``MEASURE[@K][.ATTRIBUTE[.VALUE]]`` with an optional trailing statistic.

Checks name their metrics with dots (``sim.jaccard@10.gender.a_boy``, ``snsr.prag@20.max``,
``gu.popularity.b0``). ``parse_metric_name`` splits a name into the parts a table pivots on:

- with ``@K``: everything before ``@`` is the measure (``sim.jaccard``), ``K`` the cut-off, then
  the attribute and the value (the rest, dots kept: ``a_boy``);
- without ``@K``: a two-part name is ``measure.attribute`` (``dgu.popularity``); a longer one ends in
  ``attribute.value`` after the measure (``gu.popularity.b0``, ``implicit.js.gender.news``);
- a last part that is an aggregate over groups (``max``, ``min``, ``mean``, ``median``, ``sum``) is
  the ``stat`` and not an attribute (``snsr.prag@20.max``, ``parse_rate.mean``).

Names are the checks' own: the split is a convention for pivoting, not a schema; ``metric`` always
keeps the full name. A check declares the names it makes once, as ``MetricSpec`` data (its ``metrics``
class attribute): the audit config checks thresholds against them and the report picks its headline.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import product
from typing import Any, Callable, Iterable, Mapping, Sequence

STATS = ("max", "min", "mean", "median", "sum")
_K_RE = re.compile(r"^(?P<measure>[^@]+)@(?P<k>\d+)(?:\.(?P<rest>.+))?$")


@dataclass(frozen=True)
class MetricName:
    """The parts of one metric name (``None`` where the name has no such part)."""

    metric: str
    measure: str
    k: int | None = None
    attribute: str | None = None
    value: str | None = None
    stat: str | None = None


@lru_cache(maxsize=4096)
def parse_metric_name(name: str) -> MetricName:
    """Split ``name`` into measure, k, attribute, value and stat (see the module docstring)."""
    m = _K_RE.match(name)
    if m is not None:
        measure, k = m["measure"], int(m["k"])
        rest = m["rest"].split(".") if m["rest"] else []
    else:
        parts = name.split(".")
        stat = parts[-1] if len(parts) > 1 and parts[-1] in STATS else None
        if stat is not None:
            parts = parts[:-1]
        if len(parts) <= 1:
            return MetricName(name, ".".join(parts), stat=stat)
        cut = 1 if len(parts) == 2 else len(parts) - 2
        rest = parts[cut:]
        return MetricName(name, ".".join(parts[:cut]), None, rest[0], ".".join(rest[1:]) or None, stat)
    stat = rest[-1] if rest and rest[-1] in STATS else None
    if stat is not None:
        rest = rest[:-1]
    attribute = rest[0] if rest else None
    value = ".".join(rest[1:]) or None
    return MetricName(name, measure, k, attribute, value, stat)


_FIELD_RE = re.compile(r"\{(\w+)\}")


@dataclass(frozen=True, eq=False)
class MetricSpec:
    """One family of metric names a check makes, declared once as a template filled from its params.

    ``{field}`` is a field of the check's params, or a key of ``values``; a list gives one name per
    item (every combination when several lists appear). fnmatch wildcards (``*``) stand for what the
    params do not fix (group labels, attack variants). ``when`` keeps the family only for params that
    make it; ``headline`` marks the family the report leads with when no threshold is set.
    """

    pattern: str
    values: Mapping[str, Sequence[Any]] = field(default_factory=dict)
    when: Callable[[Any], bool] | None = None
    headline: bool = False

    def names(self, params: Any) -> list[str]:
        """The names (fnmatch patterns where the template has ``*``) these params produce."""
        if self.when is not None and not self.when(params):
            return []
        fields = list(dict.fromkeys(_FIELD_RE.findall(self.pattern)))
        choices = []
        for name in fields:
            v = self.values[name] if name in self.values else getattr(params, name)
            choices.append(list(v) if isinstance(v, (list, tuple)) else [v])
        return [self.pattern.format_map(dict(zip(fields, combo))) for combo in product(*choices)]

    def glob(self) -> str:
        """The template with every ``{field}`` as ``*``: matches the family whatever the params."""
        return _FIELD_RE.sub("*", self.pattern)


def declared_names(specs: Iterable[MetricSpec], params: Any) -> list[str]:
    """Every name (or pattern) the specs declare for these params, each once, in declaration order."""
    return list(dict.fromkeys(n for spec in specs for n in spec.names(params)))


def matches_any(name: str, patterns: Iterable[str]) -> bool:
    """True when ``name`` is one of ``patterns`` or matches one as an fnmatch pattern."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
