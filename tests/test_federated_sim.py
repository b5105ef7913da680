"""End-to-end federated TALLRec on the tiny model: the real ClientApp, ServerApp and strategies."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recaudit.federated.allocation import split_names
from recaudit.federated.check import prepare_federation
from recaudit.federated.config import FederatedSettings
from recaudit.federated.simulation import run_federated


@pytest.fixture(scope="module")
def tiny4(tmp_path_factory):
    """A 4-block tiny Llama, so first/last-block allocation leaves blocks to share."""
    from recaudit.testing import tiny_causal_lm

    return tiny_causal_lm(tmp_path_factory.mktemp("tiny4"), num_layers=4)


@pytest.fixture(scope="module")
def federation(tmp_path_factory):
    from recaudit.data.loaders import demo_catalog, demo_interactions

    return prepare_federation(demo_interactions(), demo_catalog(), tmp_path_factory.mktemp("fed") / "clients",
                              n_clients=3, users_per_client=2, scheme="genre", history_len=3, max_per_user=8)


def fed_settings(tiny4, federation, **kw) -> FederatedSettings:
    base = dict(strategy="pplr", num_rounds=2, model=str(tiny4), data_dir=str(federation), max_length=96,
                batch_size=4, eval_batch_size=8, min_available_clients=3, min_fit_clients=3, torch_threads=1)
    return FederatedSettings(**{**base, **kw})


def initial_shared_hash(tiny4, s: FederatedSettings) -> str:
    from flwr.app import ArrayRecord

    from recaudit.federated.strategy import arrays_sha256
    from recaudit.tallrec import attach_lora, init_lora_state, load_base_model

    model, _ = load_base_model(tiny4)
    model = attach_lora(model, s.train_config())
    state = init_lora_state(model, s.seed)
    alloc = split_names(state, 4, s.allocation())
    return arrays_sha256(ArrayRecord({k: state[k] for k in alloc.server}))


def test_three_clients_two_rounds_pplr_changes_the_global_adapter(tiny4, federation):
    s = fed_settings(tiny4, federation)
    run = run_federated(s, 3)
    assert [r.aggregated for r in run.rounds] == [True, True] and not run.failures
    assert {(r.round, r.partition_id) for r in run.train} == {(k, p) for k in (1, 2) for p in range(3)}
    assert run.global_arrays_sha256 and run.global_arrays_sha256 != initial_shared_hash(tiny4, s)
    # allocation: blocks 0 and 3 (q/v LoRA, 4 tensors each) are private, blocks 1-2 shared
    row = run.train[0]
    assert row.private_params == row.shared_params == row.trainable_params // 2
    assert 0 < run.summary()["params.client_model_share"] < 1  # embeddings/head and blocks 0, 3 of 4
    assert all(math.isfinite(r.loss_before) and r.bytes_up > 4 * row.shared_params for r in run.train)
    assert {e.partition_id for e in run.evals if e.round == 2} == {0, 1, 2}
    # PPLR (paper): one aggregate per client; each row of the weight matrix sums to 1, the recorded
    # weight is the client's own share, and every client has a heating weight in (0, 1]
    for agg in run.aggregation:
        np.testing.assert_allclose(np.sum(agg["weights"], axis=1), 1.0)
    assert all(0 < r.weight <= 1 and 0 < r.heat <= 1 for r in run.train)
    assert all(r.lr_scale == 1.0 for r in run.train)  # the paper's learning speed is the heating, not the lr


def test_dropped_client_does_not_stop_the_round(tiny4, federation):
    run = run_federated(fed_settings(tiny4, federation, strategy="fedavg", num_rounds=1, fail_partitions="1"), 3)
    assert run.rounds[0].aggregated and run.rounds[0].succeeded == 2 and run.rounds[0].failed == 1
    assert run.failures[0].phase == "train" and "InjectedFailure" in run.failures[0].reason
    assert {r.partition_id for r in run.train} == {0, 2}
    # FedAvg shares everything
    assert all(r.private_params == 0 for r in run.train)
    assert run.summary()["params.client_model_share"] == 1.0


def test_dp_reports_finite_epsilon_that_grows(tiny4, federation):
    run = run_federated(fed_settings(tiny4, federation, strategy="fedavg", dp_enabled=True, dp_epsilon=4.0,
                                     num_rounds=2, local_epochs=1), 3)
    eps = run.epsilon_by_client()
    assert set(eps) == {0, 1, 2}
    for series in eps.values():
        (r1, e1), (r2, e2) = series
        assert (r1, r2) == (1, 2) and 0 < e1 < e2 <= 4.0 * 1.05 and np.isfinite(e2)
    # ε re-derived by anyone from what each client reports: σ, q, steps (all rounds) and δ
    from opacus.accountants import RDPAccountant

    for r in run.train:
        acc = RDPAccountant()
        acc.history = [(r.dp_noise_multiplier, r.dp_sample_rate, r.dp_steps)]
        assert acc.get_epsilon(delta=run.settings["dp_delta"]) == pytest.approx(r.epsilon, rel=1e-6)
        assert r.dp_secure_noise is True
    summ = run.summary()
    assert summ["dp.secure_noise"] == 1.0 and summ["dp.steps"] == max(r.dp_steps for r in run.train)
    assert any("validation loss" in x for x in run.unnoised_outputs)


@pytest.mark.slow
def test_ray_simulation_runs_the_same_apps(tiny4, federation):
    run = run_federated(fed_settings(tiny4, federation, num_rounds=1), 3, backend="ray")
    assert run.mode == "ray-simulation" and run.rounds[0].aggregated and len(run.train) == 3


def test_split_execution_runs_the_federation_and_counts_activations(tiny4, federation):
    run = run_federated(fed_settings(tiny4, federation, num_rounds=1, split_execution=True), 3)
    assert run.rounds[0].aggregated and not run.failures
    assert all(r.activation_bytes > 0 for r in run.train)
    summ = run.summary()
    assert summ["split.activation_bytes_per_round"] == sum(r.activation_bytes for r in run.train)
    assert {e.partition_id for e in run.evals} == {0, 1, 2}
