"""Every metric a registered check makes on a small run matches the names it declares (``metrics``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from recaudit.adapters.callable import CallableAdapter
from recaudit.checks import CHECK_MODULES, Check, CheckContext, declared_headlines, load_checks
from recaudit.metric_names import MetricSpec, declared_names, matches_any
from recaudit.results import CheckResult

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _fairllm(lm: Path, tmp: Path) -> tuple[Check[Any], CheckResult]:
    from test_probe_fairllm import _probe, _run, random_recommender

    probe = _probe(metrics=["jaccard", "prag"], include_typo=True, n_bootstrap=50, n_permutations=50)
    return probe, _run(probe, random_recommender(0))


def _implicit_names(lm: Path, tmp: Path) -> tuple[Check[Any], CheckResult]:
    from test_probe_implicit_names import _probe, _run, random_recommender

    probe = _probe(conditions=["implicit", "explicit"], n_permutations=20, n_bootstrap=20)
    return probe, _run(probe, random_recommender(0))


def _item_fairness(lm: Path, tmp: Path) -> tuple[Check[Any], CheckResult]:
    from recaudit.data.loaders import demo_catalog, demo_interactions
    from recaudit.probes.item_reference import most_popular
    from recaudit.probes.item_fairness import ItemFairnessProbe

    probe = ItemFairnessProbe(dict(use_embeddings=False, n_bootstrap=50, n_permutations=50, list_construction="ground-titles",
                                   n_users=10, baselines=["toppop"], ks=[1, 5, 20]))
    ctx = CheckContext(adapter=CallableAdapter(most_popular(demo_catalog(), 10)), catalog=demo_catalog(),
                       interactions=demo_interactions())
    return probe, probe.run(ctx)


def _exposure(lm: Path, tmp: Path) -> tuple[Check[Any], CheckResult]:
    from recaudit.probes.item_reference import most_popular, synthetic_world
    from recaudit.probes.exposure import ExposureProbe

    catalog, inter = synthetic_world()
    probe = ExposureProbe(dict(use_embeddings=False, n_bootstrap=50, n_permutations=50, n_users=20, n_repeats=2,
                               strategies=["simple", "diversify"], baselines=["toppop"]))
    ctx = CheckContext(adapter=CallableAdapter(most_popular(catalog, 10)), catalog=catalog, interactions=inter)
    return probe, probe.run(ctx)


def _shilling(lm: Path, tmp: Path) -> tuple[Check[Any], CheckResult]:
    from test_attacks_core import _toy_check_run

    return _toy_check_run()


def _unlearning(lm: Path, tmp: Path) -> tuple[Check[Any], CheckResult]:
    from recaudit.unlearning.check import UnlearningCheck
    from test_unlearning_experiment import tiny_params, toy_movielens

    catalog, inter = toy_movielens()
    check = UnlearningCheck(tiny_params(lm, methods=["ga"]).model_dump())
    ctx = CheckContext(adapter=CallableAdapter(score_fn=lambda reqs: [0.5] * len(reqs)), catalog=catalog,
                       interactions=inter, workdir=tmp)
    return check, check.run(ctx)


def _federated(lm: Path, tmp: Path) -> tuple[Check[Any], CheckResult]:
    from recaudit.data.loaders import demo_catalog, demo_interactions

    check = load_checks().get("federated")({
        "n_clients": 2, "users_per_client": 2, "rounds": 1, "scheme": "iid", "model": str(lm), "history_len": 3,
        "max_per_user": 6, "settings": {"alloc_last_k": 0, "max_length": 96, "torch_threads": 1}})
    ctx = CheckContext(adapter=None, catalog=demo_catalog(), interactions=demo_interactions(), workdir=tmp)
    return check, check.run(ctx)


# one small run per registered check: a new check without one fails test_every_listed_check_has_a_run
SMALL_RUNS: dict[str, Callable[[Path, Path], tuple[Check[Any], CheckResult]]] = {
    "fairllm": _fairllm, "implicit_names": _implicit_names, "item_fairness": _item_fairness, "exposure": _exposure,
    "shilling": _shilling, "unlearning": _unlearning, "federated": _federated,
}


def _listed_checks() -> dict[str, type[Check[Any]]]:
    registry = load_checks()
    classes = {name: registry.get(name) for name in registry.names()}
    return {name: cls for name, cls in classes.items() if cls.__module__ in CHECK_MODULES}


def test_every_listed_check_has_a_run_and_a_declaration():
    listed = _listed_checks()
    assert set(listed) == set(SMALL_RUNS)
    for name, cls in listed.items():
        assert cls.metrics, f"{name} declares no metrics"
        assert sum(spec.headline for spec in cls.metrics) == 1, f"{name} needs exactly one headline family"


# the two that train a tiny model are slow (a few seconds each); test_federated_cli and
# test_unlearning_experiment run them fast, with their own metric assertions
TRAINS = {"unlearning", "federated"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=[pytest.mark.slow] if n in TRAINS else []) for n in sorted(SMALL_RUNS)])
def test_what_evaluate_makes_is_what_the_check_declares(name, request, tmp_path):
    lm = request.getfixturevalue("tiny_lm_path") if name in TRAINS else tmp_path  # built only where trained
    check, result = SMALL_RUNS[name](lm, tmp_path)
    assert type(check).name == name and result.metrics
    declared = type(check).metric_names(check.params)
    undeclared = [m.name for m in result.metrics if not matches_any(m.name, declared)]
    assert not undeclared, f"{name} makes metrics it does not declare: {undeclared[:10]}"
    headline = declared_headlines()[name]
    assert any(matches_any(m.name, headline) for m in result.metrics), f"{name}'s headline {headline} is not made"
    # a gate may read METRIC.p_adj of any test: one alone in its family carries p_adj = p, never nothing
    unadjusted = [m.name for m in result.metrics if m.p_value is not None and (m.p_adj is None or not m.p_adj_method)]
    assert not unadjusted, f"{name} makes tests without p_adj: {unadjusted[:10]}"


def test_declared_patterns_reject_a_misspelt_or_foreign_name():
    fairllm = load_checks().get("fairllm")
    params = fairllm.Params.model_validate({"k": 10, "metrics": ["jaccard"], "figure_metric": "jaccard"})
    declared = fairllm.metric_names(params)
    assert matches_any("snsr.jaccard@10.gender", declared) and matches_any("parse_rate.neutral", declared)
    assert not matches_any("snsr.jaccard@20.gender", declared)  # another k
    assert not matches_any("snsr.prag@10.gender", declared)  # a list metric not asked for
    assert not matches_any("snrs.jaccard@10.max", declared)


class _P:
    k = 5
    metrics = ["a", "b"]
    groups = ("x", "y")
    on = False


def test_metric_spec_fills_fields_lists_values_and_conditions():
    spec = MetricSpec("{m}.{metrics}@{k}.{groups}", values={"m": ("sim", "snsv")})
    assert spec.names(_P()) == [
        "sim.a@5.x", "sim.a@5.y", "sim.b@5.x", "sim.b@5.y", "snsv.a@5.x", "snsv.a@5.y", "snsv.b@5.x", "snsv.b@5.y"]
    assert spec.glob() == "*.*@*.*"
    assert MetricSpec("gated.{k}", when=lambda p: p.on).names(_P()) == []
    specs = (MetricSpec("rate.{metrics}"), MetricSpec("rate.a"), MetricSpec("total"))
    assert declared_names(specs, _P()) == ["rate.a", "rate.b", "total"]  # each once, in declaration order
    with pytest.raises(AttributeError):
        MetricSpec("{nope}").names(_P())  # a misspelt field fails at once, not by declaring nothing


def test_the_report_leads_with_the_declared_headline(tmp_path):
    from recaudit.cli.report import write_report_files
    from recaudit.reports.html import headline_metric
    from recaudit.results import AuditResults, MetricValue

    metrics = [MetricValue(name="gu.popularity.b0", value=0.3, p_value=0.01),
               MetricValue(name="dgu.popularity", value=float("nan")),  # not finite: never the headline
               MetricValue(name="dgu.genre", value=0.21)]
    result = CheckResult(name="items", check="item_fairness", metrics=metrics)
    assert headline_metric(result).name == "gu.popularity.b0"  # without declarations: the first tested
    assert headline_metric(result, declared_headlines()["item_fairness"]).name == "dgu.genre"
    html, _ = write_report_files(AuditResults(checks=[result]), tmp_path / "report.html", tmp_path / "metrics.csv")
    assert "dgu.genre = 0.21" in html.read_text()  # the CLI hands the report the declarations
