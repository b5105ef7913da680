"""``recaudit federate``: the handler end to end on a tiny model, and its input errors."""

from __future__ import annotations

import argparse

from recaudit.cli.federate import add_parser
from recaudit.results import AuditResults


def parse(argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    return parser.parse_args(["federate", *argv])


def test_federate_pplr_vs_fedavg_writes_results(tmp_path, tiny_lm_path):
    from recaudit.data.loaders import demo_catalog, demo_interactions
    from recaudit.federated.check import prepare_federation

    folder = prepare_federation(demo_interactions(), demo_catalog(), tmp_path / "clients", 2, 2,
                                scheme="iid", history_len=3, max_per_user=6)
    out = tmp_path / "fed.json"
    # the 2-block tiny model: keep only block 0 private so block 1 is shared
    args = parse(["pplr", "--data", str(folder), "--clients", "2", "--rounds", "1", "--model", str(tiny_lm_path),
                  "--max-length", "96", "--last-k", "0", "--torch-threads", "1", "--out", str(out)])
    assert args.func(args) == 0
    res = AuditResults.from_json(out.read_text())
    result = res.check("federated")
    names = result.metric_names()
    for key in ("federated.auc.mean", "federated.auc.min", "federated.auc.std", "federated.bytes.up_per_round",
                "federated.params.client_trainable", "federated.baseline.fedavg.auc.mean",
                "federated.auc.min.delta_vs_fedavg"):
        assert key in names
    assert result.metric("federated.params.private").value > 0
    assert result.metric("federated.baseline.fedavg.params.private").value == 0
    assert result.metric("federated.bytes.up_per_round").value < result.metric(
        "federated.baseline.fedavg.bytes.up_per_round").value  # PPLR keeps block 0 at home
    clients = next(t for t in result.tables if t.name == "clients")
    assert len(clients.rows) == 2 and clients.columns[-2:] == ["auc (pplr)", "auc (fedavg)"]
    assert {f.name for f in result.figures} >= {"auc_by_round", "auc_by_client"}


def test_bad_data_folder_is_exit_2(tmp_path, capsys):
    args = parse(["fedavg", "--data", str(tmp_path), "--out", str(tmp_path / "x.json")])
    assert args.func(args) == 2
    assert "neither a federation folder" in capsys.readouterr().err


def test_check_runs_from_the_audit_context(tmp_path, tiny_lm_path):
    import pytest

    from recaudit.checks import CheckContext, load_checks
    from recaudit.data.loaders import demo_catalog, demo_interactions

    cls = load_checks().get("federated")
    check = cls({"n_clients": 2, "users_per_client": 2, "rounds": 1, "compare_fedavg": False, "scheme": "iid",
                 "model": str(tiny_lm_path), "history_len": 3, "max_per_user": 6,
                 "settings": {"alloc_last_k": 0, "max_length": 96, "torch_threads": 1}})
    ctx = CheckContext(adapter=None, catalog=demo_catalog(), interactions=demo_interactions(), workdir=tmp_path)
    result = check.run(ctx)
    assert (tmp_path / "federated" / "clients" / "federation.json").is_file()
    assert result.check == "federated" and result.risk == "fairness"
    assert result.metric("federated.rounds.aggregated").value == 1.0
    assert not any(m.name.startswith("federated.baseline") for m in result.metrics)
    with pytest.raises(ValueError, match="interactions"):
        check.run(CheckContext(adapter=None, catalog=demo_catalog()))


def test_lost_node_below_min_available_is_exit_3_with_records(tmp_path, tiny_lm_path, capsys):
    """Client 1 disconnects after round 1 of 2; all 2 clients are needed: exit 3, results written, report renders."""
    from recaudit.cli.report import read_results, write_report_files
    from recaudit.data.loaders import demo_catalog, demo_interactions
    from recaudit.federated.check import prepare_federation

    folder = prepare_federation(demo_interactions(), demo_catalog(), tmp_path / "clients", 2, 2,
                                scheme="iid", history_len=3, max_per_user=6)
    out = tmp_path / "fed.json"
    args = parse(["fedavg", "--data", str(folder), "--rounds", "2", "--model", str(tiny_lm_path),
                  "--max-length", "96", "--torch-threads", "1", "--lose-partitions", "1@1",
                  "--node-wait-timeout", "0.05", "--out", str(out)])
    assert args.func(args) == 3
    assert "INCOMPLETE fedavg run" in capsys.readouterr().err
    result = read_results(out).check("federated")
    assert result.metric("federated.complete").value == 0.0
    assert result.metric("federated.rounds.aggregated").value == 1.0  # round 1's records are kept
    rounds = next(t for t in result.tables if t.name == "rounds")
    assert [r[1] for r in rounds.rows] == [1]
    html, _ = write_report_files(read_results(out), tmp_path / "r.html", tmp_path / "m.csv")
    assert "INCOMPLETE" in html.read_text()


def test_bad_lose_partitions_is_exit_2(tmp_path, capsys):
    args = parse(["fedavg", "--data", str(tmp_path), "--lose-partitions", "1", "--out", str(tmp_path / "x.json")])
    assert args.func(args) == 2
    assert "P@R" in capsys.readouterr().err
