"""Strategies over numpy arrays through the in-process grid and a numpy-only ClientApp (no model)."""

from __future__ import annotations

import numpy as np
import pytest
from flwr.app import Array, ArrayRecord, Error, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

from recaudit.federated.balance import aggregation_weights, lr_scales
from recaudit.federated.config import FederatedSettings
from recaudit.federated.server_app import run_rounds
from recaudit.federated.simulation import InProcessGrid

LOSS = {0: 0.2, 1: 0.5, 2: 1.1}  # each client's "current loss"
SIZE = {0: 10, 1: 20, 2: 30}
SEEN: list[dict] = []


def numpy_client_app(poison: int | None = None, unavailable: int | None = None) -> ClientApp:
    """Client p returns (received or zeros) + (p + 1), and reports fixed losses and sizes; ``poison`` sends NaN;
    ``unavailable`` gets, from round 2 on, the error reply the SuperLink itself sends for a vanished node."""
    app = ClientApp()

    @app.train()
    def train(msg: Message, context) -> Message:
        pid = int(context.node_config["partition-id"])
        cfg = msg.content["config"]
        if pid == unavailable and int(cfg["server-round"]) > 1:
            reply = Message(Error(code=0, reason="Node Unavailable"), reply_to=msg)
            reply.metadata.__dict__["_src_node_id"] = 1  # the SuperLink answers, not the node
            return reply
        if str(pid) in str(cfg["fail-partitions"]).split(","):
            raise RuntimeError(f"client {pid} broke")
        arrays = msg.content["arrays"]
        SEEN.append({"round": int(cfg["server-round"]), "pid": pid, "lr-scale": float(cfg["lr-scale"]),
                     "w": arrays["w"].numpy().copy() if "w" in arrays else None})
        w = arrays["w"].numpy() if "w" in arrays else np.zeros(4, np.float32)
        met = MetricRecord({"num-examples": SIZE[pid], "partition-id": pid, "loss-before": LOSS[pid],
                            "train-loss": LOSS[pid], "lr-scale": float(cfg["lr-scale"]), "epsilon": -1.0,
                            "trainable-params": 8, "shared-params": 4, "private-params": 4})
        w = w + pid + 1
        if pid == poison:
            w[0] = np.nan
        return Message(RecordDict({"arrays": ArrayRecord({"w": Array(w)}), "metrics": met}), reply_to=msg)

    @app.evaluate()
    def evaluate(msg: Message, context) -> Message:
        pid = int(context.node_config["partition-id"])
        met = MetricRecord({"num-examples": 5, "partition-id": pid, "auc": 0.5 + 0.1 * pid, "acc": 0.5,
                            "logloss": 0.7})
        return Message(RecordDict({"metrics": met}), reply_to=msg)

    return app


def settings(strategy: str, **kw) -> FederatedSettings:
    base = dict(strategy=strategy, num_rounds=2, min_available_clients=3, min_fit_clients=3, balance_tau=0.5,
                balance_beta=0.5)
    return FederatedSettings(**{**base, **kw})



def run(strategy: str, drop=(), **kw):
    SEEN.clear()
    grid = InProcessGrid(numpy_client_app(), 3, drop_partitions=drop)
    s = settings(strategy, **kw)
    return run_rounds(grid, s), s


def test_fedavg_is_the_size_weighted_average():
    rec, _ = run("fedavg", num_rounds=1)
    row = {r.partition_id: r for r in rec.train}
    np.testing.assert_allclose([row[p].weight for p in range(3)], [10 / 60, 20 / 60, 30 / 60])
    assert all(r.lr_scale == 1.0 for r in rec.train)
    assert rec.rounds[0].aggregated and rec.rounds[0].succeeded == 3


def test_pplr_softmax_variant_weights_and_lr_scales_follow_the_balance_formulas():
    rec, s = run("pplr-softmax", num_rounds=2)
    losses, sizes = [LOSS[p] for p in range(3)], [SIZE[p] for p in range(3)]
    expected_w = aggregation_weights(losses, sizes, s.balance())
    for rnd in (1, 2):
        got = {r.partition_id: r.weight for r in rec.train if r.round == rnd}
        np.testing.assert_allclose([got[p] for p in range(3)], expected_w)
    # round 1: no loss known yet -> 1; round 2: scales from round-1 losses
    assert [x["lr-scale"] for x in SEEN if x["round"] == 1] == [1.0, 1.0, 1.0]
    sent2 = {x["pid"]: x["lr-scale"] for x in SEEN if x["round"] == 2}
    np.testing.assert_allclose([sent2[p] for p in range(3)], lr_scales(losses, sizes, s.balance()))
    assert sent2[2] > 1.0 > sent2[0]  # the weakest client learns fastest
    # the highest-loss client weighs more than under FedAvg
    assert expected_w[2] > 30 / 60


def test_global_arrays_are_the_weighted_update():
    rec, s = run("pplr-softmax", num_rounds=1)
    w = aggregation_weights([LOSS[p] for p in range(3)], [SIZE[p] for p in range(3)], s.balance())
    expected = float(np.dot(w, [1, 2, 3]))
    h = __import__("hashlib").sha256()
    h.update(b"w")
    h.update(np.full(4, expected, np.float32).tobytes())
    assert rec.global_arrays_sha256 == h.hexdigest()


def test_raising_client_does_not_stop_the_round():
    rec, _ = run("pplr", fail_partitions="1")
    assert [r.succeeded for r in rec.rounds] == [2, 2] and all(r.aggregated for r in rec.rounds)
    fails = [f for f in rec.failures if f.phase == "train"]
    assert len(fails) == 2 and all("client 1 broke" in f.reason for f in fails)
    assert fails[1].partition_id is None or fails[1].partition_id == 1
    assert {r.partition_id for r in rec.train} == {0, 2}


def test_vanished_client_is_recorded_and_others_aggregate():
    rec, _ = run("fedavg", drop=(2,), num_rounds=1)
    assert rec.rounds[0].aggregated and rec.rounds[0].failed == 1
    assert any("no reply" in f.reason for f in rec.failures)
    row = {r.partition_id: r.weight for r in rec.train}
    np.testing.assert_allclose([row[0], row[1]], [1 / 3, 2 / 3])
    assert {e.partition_id for e in rec.evals} == {0, 1}


def test_too_few_replies_leave_the_global_adapter_unchanged():
    rec, _ = run("fedavg", fail_partitions="0,1", min_replies=2, num_rounds=1)
    assert not rec.rounds[0].aggregated and rec.global_arrays_sha256 == ""


def test_bytes_are_counted_both_ways():
    rec, _ = run("fedavg", num_rounds=2)
    r1, r2 = rec.rounds
    assert r1.bytes_up > 3 * 16 and r2.bytes_down > r1.bytes_down  # round 1 broadcasts no arrays
    assert all(r.bytes_up > 16 for r in rec.train)
    summ = rec.summary()
    assert summ["auc.mean"] == pytest.approx(0.6) and summ["auc.gap"] == pytest.approx(0.2)
    assert summ["auc.std"] == pytest.approx(np.std([0.5, 0.6, 0.7]))


def test_settings_round_trip_and_fedavg_shares_everything():
    s = FederatedSettings(strategy="pplr", alloc_first_k=2, dp_enabled=True, fail_partitions="1,2")
    again = FederatedSettings.from_flwr_config({**s.to_flwr_config(), "server-round": 3, "lr-scale": 1.5})
    assert again == s and s.failing(2, 7) and not s.failing(0, 1)
    assert not FederatedSettings(strategy="fedavg").allocation().enabled
    with pytest.raises(ValueError):
        FederatedSettings(balance_beta=2.0)


def test_flwr_app_run_config_mirrors_the_settings():
    import tomllib
    from pathlib import Path

    import recaudit.federated

    app_dir = Path(recaudit.federated.__file__).parent / "flwr_app"
    cfg = tomllib.loads((app_dir / "pyproject.toml").read_text())["tool"]["flwr"]["app"]
    assert cfg["config"] == FederatedSettings().to_flwr_config()
    assert cfg["components"] == {"serverapp": "recaudit.federated.server_app:app",
                                 "clientapp": "recaudit.federated.client_app:app"}


def test_poisoned_update_is_rejected_and_recorded():
    """A client sending NaNs is a failure of that client, not of the round."""
    app = numpy_client_app(poison=0)
    rec = run_rounds(InProcessGrid(app, 3), settings("fedavg", num_rounds=1))
    assert rec.rounds[0].aggregated and rec.rounds[0].succeeded == 2
    assert "non-finite" in rec.failures[0].reason and rec.failures[0].node_id == 1001


def test_superlink_error_reply_is_attributed_to_the_vanished_node():
    rec = run_rounds(InProcessGrid(numpy_client_app(unavailable=2), 3), settings("fedavg", num_rounds=2))
    assert len(rec.failures) == 1
    f = rec.failures[0]
    assert (f.round, f.node_id, f.partition_id) == (2, 1003, 2) and "Unavailable" in f.reason
    assert rec.rounds[1].aggregated and rec.rounds[1].failed == 1


def test_fedavg_is_flowers_own_fedavg():
    from flwr.serverapp.strategy import FedAvg

    from recaudit.federated.strategy import STRATEGIES, RecordingFedAvg

    assert all(issubclass(cls, FedAvg) for cls in STRATEGIES.values())
    # the baseline overrides no aggregation of Flower's: only recaudit's bookkeeping hooks
    assert RecordingFedAvg.combine.__qualname__ == "RecordingFedAvg.combine"
    assert "aggregate_arrayrecords" not in RecordingFedAvg.__dict__


def test_pplr_sends_each_client_its_own_aggregate():
    """Round 2: client p receives Σ_j W_pj θ_j with θ_j = j + 1 (the numpy client's round-1 update)."""
    from recaudit.federated.pplr import aggregate_client_specific

    rec, s = run("pplr", num_rounds=2)
    updates = [{"w": np.full(4, p + 1, np.float32)} for p in range(3)]
    expected, w = aggregate_client_specific(updates, [LOSS[p] for p in range(3)], 1, s.pplr())
    got = {x["pid"]: x["w"] for x in SEEN if x["round"] == 2}
    for p in range(3):
        np.testing.assert_allclose(got[p], expected[p]["w"], rtol=1e-6)
    # colinear updates: s_ij = 1, so the low-loss clients (λ ≈ 1) get the plain mean 2.0, while the
    # high-loss client 2 (λ < 1 under T = 0.05) leans on its own update 3: not one shared average
    np.testing.assert_allclose([got[0][0], got[1][0]], [2.0, 2.0], rtol=1e-6)
    assert 2.0 < got[2][0] < 3.0
    agg = rec.aggregation[0]
    np.testing.assert_allclose(agg["weights"], w)
    row = {r.partition_id: r for r in rec.train if r.round == 1}
    np.testing.assert_allclose([row[p].weight for p in range(3)], np.diag(w))
    assert all(row[p].heat is not None and 0 < row[p].heat <= 1 for p in range(3))
    assert rec.variant.startswith("PPLR dynamic balance as in the paper")


def test_lost_node_below_min_available_stops_with_records():
    """Partition 2 answers round 1 and then leaves; min_available = 3, so round 2 cannot start."""
    grid = InProcessGrid(numpy_client_app(), 3, lose_after={2: 1})
    rec = run_rounds(grid, settings("fedavg", num_rounds=3, node_wait_timeout=0.05))
    assert rec.incomplete and "only 2 SuperNodes" in rec.stop_reason
    assert [r.round for r in rec.rounds] == [1] and rec.rounds[0].aggregated
    assert {r.partition_id for r in rec.train} == {0, 1, 2}
    # the node left before round 1's evaluation: the others are still evaluated
    assert {e.partition_id for e in rec.evals} == {0, 1}
    assert rec.summary()["complete"] == 0.0 and rec.summary()["rounds.planned"] == 3.0


def test_lost_node_above_min_available_goes_on():
    grid = InProcessGrid(numpy_client_app(), 3, lose_after={2: 1})
    rec = run_rounds(grid, settings("fedavg", num_rounds=2, min_available_clients=2, min_fit_clients=2,
                                    node_wait_timeout=0.05))
    assert not rec.incomplete and [r.aggregated for r in rec.rounds] == [True, True]
    assert {r.partition_id for r in rec.train if r.round == 2} == {0, 1}


def test_incomplete_run_writes_renderable_results(tmp_path):
    from recaudit.cli.report import read_results

    out = tmp_path / "run.json"
    grid = InProcessGrid(numpy_client_app(), 3, lose_after={1: 1})
    rec = run_rounds(grid, settings("pplr", num_rounds=2, node_wait_timeout=0.05, out=str(out)))
    assert rec.incomplete
    results = read_results(out)  # what `recaudit report` loads: refuses anything but AuditResults
    check = results.check("federated")
    assert check.metric("federated.complete").value == 0.0
    assert any(n.startswith("INCOMPLETE pplr run") for n in check.notes)
    from recaudit.federated.records import FederatedRun

    raw = FederatedRun.model_validate_json(out.with_suffix(".records.json").read_text())
    assert raw.incomplete and len(raw.train) == 3
    # the raw records render too (converted), and a file that is neither stays refused
    assert read_results(out.with_suffix(".records.json")).check("federated").metric("federated.complete").value == 0
    bad = tmp_path / "bad.json"
    bad.write_text('{"strategy": 3}')
    with pytest.raises(ValueError, match="not a recaudit results file"):
        read_results(bad)


def test_results_from_runs_is_the_checks_own_result():
    # results.py builds the check's result without importing the check (which imports the ServerApp)
    from recaudit.federated.check import FederatedCheck
    from recaudit.federated.results import result_fields, results_from_runs

    rec, _ = run("pplr")
    made = results_from_runs({"pplr": rec}, "pplr", {}, audit_name="a")
    assert made.audit_name == "a" and len(made.checks) == 1
    check = FederatedCheck({"strategy": "pplr", "compare_fedavg": False, "train": made.checks[0].params["train"]})
    assert made.checks[0].model_dump_json() == check.new_result(**result_fields({"pplr": rec}, "pplr", {})).model_dump_json()
    # the params show the TrainConfig the run trained with (from its settings), not the check's preset
    rec, _ = run("pplr", lr=5e-4, local_epochs=2)
    train = results_from_runs({"pplr": rec}, "pplr", {}).checks[0].params["train"]
    assert (train["lr"], train["epochs"], train["max_length"], train["batch_size"]) == (5e-4, 2, 512, 8)


def test_round_loss_metrics_are_flowers_weighted_average_of_the_losses_only():
    from recaudit.federated.strategy import loss_metrics

    replies = [RecordDict({"metrics": MetricRecord({"num-examples": n, "train-loss": tl, "loss-before": lb,
                                                    "partition-id": p, "epsilon": -1.0})})
               for p, (n, tl, lb) in enumerate([(10, 0.2, 1.0), (30, 0.6, 2.0)])]
    agg = loss_metrics(replies, "num-examples")
    assert set(agg) == {"train-loss", "loss-before"}  # ids and ε are per client: not averaged
    assert agg["train-loss"] == pytest.approx(0.25 * 0.2 + 0.75 * 0.6)  # 0.5
    assert agg["loss-before"] == pytest.approx(0.25 * 1.0 + 0.75 * 2.0)  # 1.75
