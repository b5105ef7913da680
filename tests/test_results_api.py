"""The Python API: tidy frames with parsed metric names, one check on an adapter, strict JSON."""

from __future__ import annotations

import json
import math

import jsonschema
import pytest

import recaudit
from recaudit.adapters.base import Request
from recaudit.metric_names import parse_metric_name
from recaudit.results import FRAME_COLUMNS, AuditResults, Breach, CheckResult, Coverage, MetricValue
from test_audit_support import sample_results


def _strict_loads(text: str):
    """json.loads that refuses NaN / Infinity, as JavaScript's JSON.parse and jq do."""
    def refuse(token: str):
        raise ValueError(f"non-standard JSON constant {token}")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.parametrize("name,parts", [
    ("sim.jaccard@10.gender.a_boy", ("sim.jaccard", 10, "gender", "a_boy", None)),
    ("snsr.prag@20.max", ("snsr.prag", 20, None, None, "max")),
    ("snsr.jaccard@10.gender", ("snsr.jaccard", 10, "gender", None, None)),
    ("implicit.u_ndcg@5.region.news", ("implicit.u_ndcg", 5, "region", "news", None)),
    ("gu.popularity.b0", ("gu", None, "popularity", "b0", None)),
    ("dgu.popularity", ("dgu", None, "popularity", None, None)),
    ("parse_rate.mean", ("parse_rate", None, None, None, "mean")),
    ("gini", ("gini", None, None, None, None)),
    ("sim.serp@10.race.an_african.american", ("sim.serp", 10, "race", "an_african.american", None)),
])
def test_metric_names_parse(name, parts):
    p = parse_metric_name(name)
    assert (p.measure, p.k, p.attribute, p.value, p.stat) == parts and p.metric == name


def test_to_frame_is_tidy_and_numeric():
    results = sample_results()
    results.checks[0].metrics.append(
        MetricValue(name="sim.jaccard@10.gender.a_boy", value=0.25, ci_low=0.1, ci_high=0.4, p_value=0.03, p_adj=0.09, n=12))
    frame = results.to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert len(frame) == 4  # 3 metrics + 1; the errored check has none
    row = frame[frame.metric == "sim.jaccard@10.gender.a_boy"].iloc[0]
    assert (row.check, row.measure, row.k, row.attribute, row.value, row.status) == (
        "fairllm", "sim.jaccard", 10, "gender", "a_boy", "fail")
    assert (row.estimate, row.ci_low, row.ci_high, row.p, row.p_adj, row.n) == (0.25, 0.1, 0.4, 0.03, 0.09, 12)
    gini = frame[frame.metric == "gini"].iloc[0]
    assert math.isnan(gini.p) and gini.status == "pass"
    assert frame.pivot_table(index="measure", values="estimate", aggfunc="count").loc["sim.jaccard", "estimate"] == 1


def test_results_json_is_strict_and_valid_against_the_schema(capsys):
    results = sample_results()
    check = results.checks[1]
    check.metrics += [
        MetricValue(name="nan_metric", value=float("nan"), p_value=float("nan")),
        MetricValue(name="inf_metric", value=float("inf")),
    ]
    check.figures[0].series[0].y[0] = float("nan")
    check.coverage = Coverage(requested=4, answered=4, usable=0, usable_rate=float("nan"))
    results.checks[0].verdict.breaches.append(Breach(metric="nan_metric", value=float("nan"), op="<=", threshold=1))
    text = results.to_json()
    data = _strict_loads(text)  # raises on a bare NaN / Infinity
    from recaudit.cli import main
    assert main(["schema"]) == 0
    schema = _strict_loads(capsys.readouterr().out)
    jsonschema.validate(data, schema)
    metrics = {m["name"]: m for m in data["checks"][1]["metrics"]}
    assert metrics["nan_metric"]["value"] is None and metrics["nan_metric"]["null_reason"] == "not computable (NaN)"
    assert metrics["inf_metric"]["value"] is None and metrics["inf_metric"]["null_reason"] == "+inf"
    back = AuditResults.from_json(text)
    m = {x.name: x for x in back.checks[1].metrics}
    assert math.isnan(m["nan_metric"].value) and m["inf_metric"].value == math.inf
    assert math.isnan(back.checks[1].figures[0].series[0].y[0])
    assert math.isnan(back.checks[0].verdict.breaches[-1].value)
    assert back.to_json() == text  # the round trip is exact


def test_a_bare_nan_is_refused_by_the_strict_parser():
    with pytest.raises(ValueError, match="NaN"):
        _strict_loads('{"value": NaN}')


def test_run_check_runs_one_check_with_evidence_and_verdict():
    from recaudit.adapters import CallableAdapter
    from recaudit.data import loaders

    titles = loaders.demo_catalog().titles[:10]
    # a planted model: every user gets the same ten titles of the demo catalogue
    adapter = CallableAdapter(generate_fn=lambda r: "\n".join(f"{i + 1}. {t}" for i, t in enumerate(titles)))
    result = recaudit.run_check("exposure", adapter, n_users=4, strategies=["simple"], system_prompts=["normal"],
                                baselines=[], n_bootstrap=0, use_embeddings=False,
                                thresholds=["exposure.gini.simple.normal <= 0.999"])
    assert isinstance(result, CheckResult) and result.error is None
    assert result.coverage is not None and result.coverage.requested == 4 == adapter.calls
    assert result.coverage.usable == 4, result.coverage
    assert result.status == "pass", result.verdict
    gini = result.metric("exposure.gini.simple.normal").value
    assert 0.5 < gini < 1  # ten items of many get all exposure: highly concentrated


def test_run_check_errors_are_results_or_one_line():
    from recaudit.adapters import CallableAdapter

    def broken(request: Request) -> str:
        raise RuntimeError("planted crash")

    result = recaudit.run_check("exposure", CallableAdapter(generate_fn=broken), n_users=2, strategies=["simple"],
                                system_prompts=["normal"], baselines=[], n_bootstrap=0, use_embeddings=False)
    assert result.status == "error" and "planted crash" in result.error
    with pytest.raises(ValueError, match="unknown check 'exposur'"):
        recaudit.run_check("exposur", CallableAdapter(generate_fn=broken))
    with pytest.raises(ValueError, match="n_users"):
        recaudit.run_check("exposure", CallableAdapter(generate_fn=broken), n_users="many")
