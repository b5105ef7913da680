"""Results model: JSON round trip without loss, metric lookup, CI helpers."""

import math

import numpy as np
import pytest

from recaudit.results import (
    AuditResults,
    CheckResult,
    Example,
    FigureSpec,
    GroupTable,
    MetricValue,
    Reproducibility,
    Series,
    Verdict,
)


def _sample_audit() -> AuditResults:
    check = CheckResult(
        name="fairllm",
        check="fairllm",
        title="FaiRLLM",
        params={"k": 20, "domains": ["music"]},
        metrics=[
            MetricValue(name="snsr.prag@20.gender", value=np.float64(0.125), ci_low=0.05, ci_high=0.2, p_value=0.004,
                        n=30, direction="lower_is_better", variant="paper"),
            MetricValue(name="odd", value=float("nan")),
            MetricValue(name="big", value=float("inf")),
        ],
        tables=[GroupTable(name="sim", columns=["value", "sim", "n"], rows=[["a female", 0.5, 3], ["a male", None, 0]])],
        figures=[
            FigureSpec(name="simk", kind="line", title="Sim vs K", series=[Series(label="x", x=[1, 2], y=[0.1, 0.2])]),
            FigureSpec(name="hm", kind="heatmap", title="SNSR", matrix=[[0.1, None]], row_labels=["a"], col_labels=["b", "c"]),
        ],
        examples=[Example(fields={"title": "<img src=x onerror=alert(1)>", "out": "</script>"})],
        verdict=Verdict(status="pass", evaluated=["snsr.prag@20.gender"]),
        reproducibility=Reproducibility(seed=3, adapter_fingerprint={"adapter": "callable"}),
    )
    return AuditResults(checks=[check], reproducibility=Reproducibility(seed=3))


def test_json_round_trip_is_lossless():
    audit = _sample_audit()
    again = AuditResults.from_json(audit.to_json())
    assert again.checks[0].metrics[0] == audit.checks[0].metrics[0]
    assert math.isnan(again.checks[0].metric("odd").value)
    assert again.checks[0].metric("big").value == float("inf")
    # NaN != NaN, so compare the dumps rather than the models
    assert again.to_json() == audit.to_json()
    assert again.checks[0].examples[0].fields["title"] == "<img src=x onerror=alert(1)>"


def test_numpy_scalars_become_floats_and_unknown_keys_fail():
    m = MetricValue(name="x", value=np.float32(0.5), p_value=np.float64(0.1))
    assert type(m.value) is float and type(m.p_value) is float
    with pytest.raises(Exception, match="extra"):
        MetricValue(name="x", value=1.0, bogus=2)


def test_metric_lookup_names_alternatives():
    audit = _sample_audit()
    with pytest.raises(KeyError, match="snsr.prag@20.gender"):
        audit.checks[0].metric("nope")
    assert audit.check("fairllm").metric("snsr.prag@20.gender").ci_excludes(0.0)
    assert not audit.check("fairllm").metric("snsr.prag@20.gender").ci_excludes(0.1)


def test_group_table_records():
    t = GroupTable(name="t", columns=["a", "b"], rows=[[1, "x"]])
    assert t.as_records() == [{"a": 1, "b": "x"}]
