"""Core contracts: Request hashing, registry, catalogue helpers, check base, statistics."""

import numpy as np
import pandas as pd
import pytest

from recaudit.adapters.base import Request, fingerprint_id
from recaudit.adapters.callable import CallableAdapter
from recaudit.checks import CHECKS, CheckContext, CheckParams, Probe, register_check
from recaudit.data.catalog import Catalog, Interactions, Item
from recaudit.metrics.stats import bootstrap_ci, permutation_pvalue, permutation_test
from recaudit.registry import Registry


def test_request_key_depends_on_content_not_metadata():
    a = Request.chat("hi", system="sys", metadata=(("user", "1"),))
    b = Request.chat("hi", system="sys", metadata=(("user", "2"),))
    c = Request.chat("hi", system="sys", temperature=0.7)
    assert a.key() == b.key() and a.key() != c.key()
    assert a.user_text == "hi" and a.system_text == "sys" and a.meta() == {"user": "1"}
    with pytest.raises(ValueError):
        Request(messages=())
    with pytest.raises(TypeError):
        Request(messages=(("user",),))


def test_fingerprint_id_is_order_independent():
    assert fingerprint_id({"a": 1, "b": 2}) == fingerprint_id({"b": 2, "a": 1})
    assert fingerprint_id({"a": 1}) != fingerprint_id({"a": 2})


def test_registry_rejects_duplicates_and_lists_known():
    reg = Registry("thing")
    reg.register("x")(int)
    with pytest.raises(ValueError):
        reg.register("x")(float)
    with pytest.raises(KeyError, match="known: x"):
        reg.get("y")


def _catalog():
    return Catalog([Item(str(i), f"Movie {i}", ("Drama",) if i % 2 else ("Comedy",), 1990 + i) for i in range(10)])


def _interactions():
    rows = [(u, str(i), 4.0, t) for t, (u, i) in enumerate([("1", 0), ("1", 1), ("2", 1), ("2", 1), ("3", 9)])]
    return Interactions(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]))


def test_catalog_popularity_and_buckets():
    cat = _catalog().with_popularity(_interactions())
    assert cat.get("1").popularity == 3 and cat.get("5").popularity == 0
    buckets = cat.popularity_buckets(5)
    assert buckets["1"] == 4  # most popular in top bucket
    assert sorted(np.bincount(list(buckets.values()))) == [2, 2, 2, 2, 2]
    with pytest.raises(ValueError):
        Catalog([Item("a", "x"), Item("a", "y")])
    assert cat.replace_title("1", "New").get("1").title == "New"
    assert cat.content_hash() != cat.replace_title("1", "New").content_hash()


def test_interactions_sampling_is_seeded():
    inter = _interactions()
    assert inter.user_ids == ["1", "2", "3"]
    assert inter.sample_users(2, seed=1) == inter.sample_users(2, seed=1)
    assert inter.sample_users(2, seed=1, min_interactions=2) == ["1", "2"]
    assert len(inter.filter_users(["1"], keep=False)) == 3


def test_probe_runs_through_context_and_registry():
    @register_check("_test_echo_probe")
    class Echo(Probe):
        class Params(CheckParams):
            n: int = 3

        def requests(self, ctx):
            return [Request.chat(f"q{i}") for i in range(self.params.n)]

        def evaluate(self, ctx, answers):
            from recaudit.results import MetricValue

            share = np.mean([a.response.text == "Q" for a in answers])
            return self.new_result(metrics=[MetricValue(name="share", value=share)])

    adapter = CallableAdapter(lambda r: "Q" if r.user_text != "q0" else "x")
    res = CHECKS.get("_test_echo_probe")({"n": 4}).run(CheckContext(adapter=adapter, batch_size=3))
    assert res.metric("share").value == pytest.approx(0.75) and res.params["n"] == 4
    with pytest.raises(Exception, match="bogus"):
        Echo({"bogus": 1})


def test_bootstrap_and_permutation():
    iv = bootstrap_ci(np.ones(20))
    assert iv.low == iv.high == 1.0
    iv = bootstrap_ci(np.arange(100), seed=0)
    assert iv.low < 49.5 < iv.high
    assert permutation_pvalue(1.0, np.zeros(99)) == pytest.approx(0.01)
    rng = np.random.default_rng(0)
    x = rng.normal(size=40)
    labels = np.r_[np.zeros(20), np.ones(20)]
    _, p = permutation_test(lambda lab: x[lab == 1].mean() - x[lab == 0].mean(), labels, 300, seed=0)
    assert p > 0.01


def test_request_key_is_the_hash_of_its_settings_json():
    """The cache key is sha256 of the sorted JSON of every field but metadata (cache files stay valid)."""
    import hashlib
    import json
    from dataclasses import asdict

    from recaudit.adapters.base import Request

    r = Request.chat("hi ü", system="s", stop=("a", "b"), metadata=(("x", "y"),), repetition_penalty=1.3)
    d = asdict(r)
    d.pop("metadata")
    blob = json.dumps(d, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    assert r.key() == hashlib.sha256(blob.encode("utf-8")).hexdigest()
    assert r.key() != Request.chat("hi ü", system="s", stop=("a",), repetition_penalty=1.3).key()
    assert r.key() == Request.chat("hi ü", system="s", stop=("a", "b"), repetition_penalty=1.3).key()


def test_generic_check_takes_its_params_class_from_the_type_argument():
    from recaudit.checks import Check

    class KParams(CheckParams):
        k: int = 3

    class K(Probe[KParams]):
        pass

    class Explicit(Check[KParams]):
        Params = CheckParams  # a Params set in the class wins over the type argument

    assert K.Params is KParams and isinstance(K({"k": 5}).params, KParams) and K({"k": 5}).params.k == 5
    with pytest.raises(Exception, match="extra|k2"):
        K({"k2": 1})
    assert Explicit.Params is CheckParams
    assert K.metric_names(K().params) is None  # nothing declared: the config checks thresholds at run time only


def test_check_modules_table_names_every_registering_module_and_only_those():
    import pathlib

    import recaudit
    from recaudit.checks import CHECK_MODULES, load_checks

    root = pathlib.Path(recaudit.__file__).parent
    registering = {
        "recaudit." + ".".join(p.relative_to(root).with_suffix("").parts)
        for p in root.rglob("*.py")
        if "@register_check(" in p.read_text(encoding="utf-8") and p.name != "checks.py"
    }
    assert registering == set(CHECK_MODULES)
    assert {c.__module__ for c in (load_checks().get(n) for n in load_checks().names())} >= set(CHECK_MODULES)


def test_import_modules_skips_a_missing_extra_by_name_and_raises_otherwise(tmp_path, monkeypatch):
    from recaudit.registry import import_modules

    (tmp_path / "needs_extra_mod.py").write_text("import nosuchextra_pkg\n")
    (tmp_path / "broken_mod.py").write_text("import nosuch_core_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    missing = import_modules(["json", "needs_extra_mod"], {"nosuchextra_pkg": "federated"})
    assert missing == {"needs_extra_mod": "the federated extra (nosuchextra_pkg is not installed)"}
    with pytest.raises(ModuleNotFoundError, match="nosuch_core_pkg"):
        import_modules(["broken_mod"], {"nosuchextra_pkg": "federated"})


def test_load_checks_imports_the_table_and_nothing_else(monkeypatch):
    import importlib

    from recaudit import registry
    from recaudit.checks import CHECK_MODULES, MISSING_EXTRAS, load_checks

    asked: list[str] = []
    real = importlib.import_module
    monkeypatch.setattr(registry.importlib, "import_module", lambda name, *a: asked.append(name) or real(name, *a))
    shipped = {"exposure", "fairllm", "federated", "implicit_names", "item_fairness", "shilling", "unlearning"}
    assert shipped <= set(load_checks().names())  # the names as before (tests may register more)
    assert [n for n in asked if n.startswith("recaudit.")] == list(CHECK_MODULES)  # no folder walk: a helper module is never imported for discovery
    assert MISSING_EXTRAS == {}  # no check module needs an extra at import time (test_install_core hides them)
