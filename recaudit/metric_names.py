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
keeps the full name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

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
