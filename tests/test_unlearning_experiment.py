"""End to end on the tiny model: every method runs, is verified, lands in a CheckResult; the CLI handler."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from unlearning_toys import tiny_params, toy_movielens, write_ml100k

from recaudit.results import AuditResults
from recaudit.unlearning.check import UnlearningCheck, run_to_result
from recaudit.unlearning.data import prepare_data
from recaudit.unlearning.experiment import run_unlearning

def test_prepare_data_separates_forget_retain_and_never_seen(tiny_lm_path):
    catalog, inter = toy_movielens()
    data = prepare_data(catalog, inter, tiny_params(tiny_lm_path))
    forget_users = set(data.forget_users)
    assert len(forget_users) == 2 and {s.user_id for s in data.forget} == forget_users
    assert not forget_users & {s.user_id for s in data.retain + data.test}
    train_users = {s.user_id for s in data.train}
    assert not train_users & {s.user_id for s in data.never_seen}
    assert len(data.train) == len(data.forget) + len(data.retain)
    again = prepare_data(catalog, inter, tiny_params(tiny_lm_path))
    assert again.forget_users == data.forget_users and again.train == data.train
    explicit = prepare_data(catalog, inter, tiny_params(tiny_lm_path, forget_users=[data.retain[0].user_id]))
    assert explicit.forget_users == [data.retain[0].user_id]
    with pytest.raises(ValueError, match="forget_users"):
        prepare_data(catalog, inter, tiny_params(tiny_lm_path, forget_users=["nobody"]))


def test_all_methods_run_and_verify(tiny_lm_path, tmp_path):
    catalog, inter = toy_movielens()
    params = tiny_params(tiny_lm_path, train={"lora_layers": 1})  # also exercises the frozen-prefix cache
    run = run_unlearning(catalog, inter, params, tmp_path)
    assert run.prefix_cache_seconds > 0
    by = {r.method: r for r in run.reports}
    assert set(by) == {"retrain", "original", "sisa", "receraser", "apa_d", "apa_nd", "e2urec", "badt", "neggrad", "ga"}
    assert by["retrain"].js_to_retrain_forget == 0.0
    for r in run.reports:
        assert 0.0 <= r.test["auc"] <= 1.0 and 0.0 <= r.mia_advantage <= 1.0
        assert r.mia_advantage_low <= r.mia_advantage <= r.mia_advantage_high + 1e-12
        if r.method not in ("retrain", "original"):
            assert r.unlearn_seconds > 0
    assert run.exactness["retrained_bitwise_equal"] and run.exactness["untouched_byte_identical"]
    assert (tmp_path / "apa" / "manifest.json").is_file() and (tmp_path / "retrain.safetensors").is_file()
    for gone in ("original", "e2urec", "badt", "neggrad", "ga"):  # trained with the forgotten users: deleted
        assert not (tmp_path / f"{gone}.safetensors").exists()
    assert sorted(run.erasure["deleted_artifacts"]) == sorted(f"{g}.safetensors" for g in ("original", "e2urec", "badt", "neggrad", "ga"))
    for r in run.reports:  # E2URec's vocabulary measures: 0 for the reference, finite for single-adapter methods
        if r.method == "retrain":
            assert r.jsd_forget == 0.0 and r.l2_forget == 0.0
        elif r.method != "receraser":
            assert np.isfinite(r.jsd_forget) and r.jsd_forget >= 0 and 0 <= r.l2_forget <= np.sqrt(2)
        assert 0.0 <= r.confidence_forget <= 1.0
    manifest = json.loads((tmp_path / "apa" / "manifest.json").read_text())
    forgotten = set(json.loads(json.dumps(run.params))["forget_users"] if isinstance(run.params["forget_users"], list) else [])
    assert all(k[0] not in forgotten for s in manifest["shards"] for k in s["keys"])
    result = run_to_result(UnlearningCheck(params.model_dump()), run)
    assert result.risk == "privacy" and result.check == "unlearning"
    names = result.metric_names()
    for m in ("apa_d", "apa_nd", "sisa", "e2urec", "ga", "retrain"):
        assert f"auc.test.{m}" in names and f"mia.advantage.{m}" in names and f"js_to_retrain.forget.{m}" in names
    assert "unlearn_seconds.apa_d" in names and result.metric("apa.exact_retrained_shards").value == 1.0
    assert len(result.tables[0].rows) == len(run.reports)
    AuditResults(checks=[result]).to_json()  # serialisable


def test_cli_handler_writes_audit_results(tiny_lm_path, tmp_path, capsys):
    from recaudit.cli.unlearn import add_parser, parse_forget_users

    catalog, inter = toy_movielens()
    write_ml100k(tmp_path / "ml", catalog, inter)
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    out = tmp_path / "u.json"
    args = parser.parse_args([
        "unlearn", "apa", "--data", str(tmp_path / "ml"), "--model", str(tiny_lm_path), "--users", "8",
        "--never-seen-users", "3", "--forget-users", "2", "--history-len", "3", "--max-per-user", "3",
        "--batch-size", "4", "--max-length", "256", "--shards", "2", "--embedding", "hashing", "--no-original",
        "--workdir", str(tmp_path / "w"), "--out", str(out), "--torch-threads", "1",
    ])  # fmt: skip
    assert args.func(args) == 0
    results = AuditResults.from_json(out.read_text())
    check = results.checks[0]
    assert {r[0] for r in check.tables[0].rows} == {"retrain", "apa_d", "apa_nd"}
    assert "apa_d" in capsys.readouterr().out
    assert parse_forget_users("3") == 3 and parse_forget_users("12, 85") == ["12", "85"]
    bad = parser.parse_args(["unlearn", "apa", "--data", str(tmp_path / "nowhere")])
    assert bad.func(bad) == 2


def test_check_is_registered_and_runs_through_a_context(tiny_lm_path, tmp_path):
    from recaudit.adapters.callable import CallableAdapter
    from recaudit.checks import CheckContext, load_checks

    assert load_checks().get("unlearning") is UnlearningCheck
    catalog, inter = toy_movielens()
    params = tiny_params(tiny_lm_path, methods=["ga"], include_original=False).model_dump()
    ctx = CheckContext(adapter=CallableAdapter(score_fn=lambda reqs: [0.5] * len(reqs)), catalog=catalog,
                       interactions=inter, workdir=tmp_path)  # fmt: skip
    result = UnlearningCheck(params).run(ctx)
    assert {r[0] for r in result.tables[0].rows} == {"retrain", "ga"}  # original trained for GA, not reported
    # both were trained with the forgotten users: deleted once the request is done (erasure hygiene)
    assert not (tmp_path / "unlearning" / "original.safetensors").exists()
    assert not (tmp_path / "unlearning" / "ga.safetensors").exists()
    assert (tmp_path / "unlearning" / "retrain.safetensors").is_file()
    kept = UnlearningCheck({**params, "keep_artifacts": True}).run(
        CheckContext(adapter=ctx.adapter, catalog=catalog, interactions=inter, workdir=tmp_path / "keep"))
    assert kept.params["erasure"]["kept_artifacts"] and (tmp_path / "keep" / "unlearning" / "ga.safetensors").is_file()
    with pytest.raises(ValueError, match="catalogue"):
        UnlearningCheck(params).run(CheckContext(adapter=ctx.adapter))


def test_users_zero_means_every_user_not_held_out(tiny_lm_path):
    catalog, inter = toy_movielens(n_users=14)
    data = prepare_data(catalog, inter, tiny_params(tiny_lm_path, n_users=0, n_never_seen_users=3))
    train_users = {s.user_id for s in data.train}
    unseen = {s.user_id for s in data.never_seen}
    assert len(unseen) == 3 and len(train_users) == 14 - 3 and not train_users & unseen
    with pytest.raises(ValueError, match="n_users"):
        prepare_data(catalog, inter, tiny_params(tiny_lm_path, n_users=1))


def test_device_is_validated(tiny_lm_path):
    from pydantic import ValidationError

    assert tiny_params(tiny_lm_path, device="cuda:1").device == "cuda:1"
    with pytest.raises(ValidationError, match="device"):
        tiny_params(tiny_lm_path, device="gpu")


def test_model_embedder_is_the_frozen_base_and_deterministic(tiny_lm_path):
    """Mean hidden states of the base LLM: right shape, repeatable, blind to the LoRA weights."""
    import torch

    from recaudit.tallrec.config import TrainConfig
    from recaudit.tallrec.lora import attach_lora
    from recaudit.tallrec.model import load_base_model
    from recaudit.unlearning.partition import model_embedder

    base, tok = load_base_model(str(tiny_lm_path))
    model = attach_lora(base, TrainConfig(seed=0))
    embed = model_embedder(model, tok, batch_size=2)
    texts = ["Space tale 1, Love tale 2", "War tale 3", "Farm tale 4 and more words here", "War tale 3"]
    a = embed(texts)
    assert a.shape == (4, base.config.hidden_size) and a.dtype == np.float64
    np.testing.assert_allclose(a[1], a[3], atol=1e-6)  # same text, different batch: same vector
    assert np.abs(a[0] - a[1]).max() > 1e-4
    with torch.no_grad():  # a trained adapter must not move the partition
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.add_(1.0)
    np.testing.assert_allclose(embed(texts), a, atol=1e-6)


def test_partial_results_are_written_after_each_method(tiny_lm_path, tmp_path):
    catalog, inter = toy_movielens()
    run_unlearning(catalog, inter, tiny_params(tiny_lm_path, methods=["sisa"], include_original=False), tmp_path)
    saved = json.loads((tmp_path / "partial_results.json").read_text())
    assert [r["method"] for r in saved["reports"]] == ["retrain", "sisa"]
    assert saved["data"]["forget_users"] == 2


def test_apa_results_name_their_exactness_sub_model_auc_and_per_shard_time(tiny_lm_path, tmp_path):
    catalog, inter = toy_movielens()
    run = run_unlearning(catalog, inter, tiny_params(tiny_lm_path, methods=["apa"], include_original=False,
                                                     apa_partition="user_hash", n_shards=3), tmp_path)  # fmt: skip
    apa = next(r for r in run.reports if r.method == "apa_d")
    assert apa.details["exactness"] == "whole-pipeline exact" == run.exactness["exactness"]
    assert apa.details["shared_init"] is True and len(apa.details["shard_test_auc"]) == 3
    assert sorted(apa.details["per_shard_unlearn_seconds"]) == sorted(map(str, apa.details["affected_shards"]))
    assert run.exactness["retrained_bitwise_equal"] and run.exactness["untouched_byte_identical"]
    assert apa.inference_ms_per_sample > 0
    result = run_to_result(UnlearningCheck(tiny_params(tiny_lm_path).model_dump()), run)
    assert any("whole-pipeline exact" in n and "sub-model test AUC" in n for n in result.notes)
    assert result.params["forget_users"]["count"] == 2 and "salted_sha256" in result.params["forget_users"]
