"""Probes whose answers are ranked lists parse each answer once, as it arrives (``prepare``), and
``evaluate`` reuses those parses: the same metrics as evaluating without ``prepare``."""

from __future__ import annotations

import pytest

import recaudit.check_parsing as early
from recaudit.adapters import CallableAdapter
from recaudit.checks import CheckContext, answers_of
from recaudit.probes.item_reference import numbered, synthetic_world, uniform_random
from recaudit.probes.exposure import ExposureProbe
from recaudit.probes.implicit_names import ImplicitNamesProbe
from recaudit.probes.item_fairness import ItemFairnessProbe

ITEM = dict(use_embeddings=False, n_bootstrap=50, baselines=[], n_users=12)


def _headlines(request) -> str:
    seed = sum(map(ord, request.user_text))  # differs per name, so answers differ
    return numbered([f"Markets move on day {seed % (i + 7)}" for i in range(10)])


def _cases():
    catalog, inter = synthetic_world()
    items = CheckContext(adapter=CallableAdapter(uniform_random(catalog, 10, seed=3), name="random"),
                         catalog=catalog, interactions=inter)
    names = CheckContext(adapter=CallableAdapter(_headlines, name="headlines"))
    implicit = dict(domains=["news"], locales=["en_US", "ja_JP"], n_names=3, conditions=["implicit"], n_interests=1,
                    k=10, category_method="keyword", n_bootstrap=50, n_permutations=50)
    return [
        (lambda: ItemFairnessProbe(ITEM), items),
        (lambda: ExposureProbe(dict(ITEM, strategies=["simple"], system_prompts=["normal", "fair"])), items),
        (lambda: ImplicitNamesProbe(implicit), names),
    ]


@pytest.mark.parametrize("case", range(3), ids=["item_fairness", "exposure", "implicit_names"])
def test_answers_are_parsed_once_as_they_arrive_and_evaluate_reuses_them(case, monkeypatch):
    make, ctx = _cases()[case]
    probe = make()
    reqs = probe.requests(ctx)
    resps = ctx.generate(reqs)
    direct = make().evaluate(ctx, answers_of(reqs, resps))  # no prepare: evaluate parses everything itself

    calls = {"n": 0}
    real = early.parse_list

    def counting(*a, **kw):
        calls["n"] += 1
        return real(*a, **kw)

    monkeypatch.setattr(early, "parse_list", counting)
    at_evaluate = []
    real_evaluate = probe.evaluate
    monkeypatch.setattr(probe, "evaluate", lambda *a: (at_evaluate.append(calls["n"]), real_evaluate(*a))[1])
    streamed = probe.run(ctx)
    distinct = len({r.text for r in resps if not r.error})
    assert distinct > 1
    assert at_evaluate == [distinct]  # every distinct answer parsed before evaluate began
    assert calls["n"] == distinct  # and none parsed again by evaluate
    assert probe.__dict__.get("_answer_memo") is None  # evaluate took (and freed) the memo
    assert {m.name: m.value for m in streamed.metrics} == {m.name: m.value for m in direct.metrics}
