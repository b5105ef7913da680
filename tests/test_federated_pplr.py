"""PPLR's client-specific aggregation with curriculum heating, against a hand-computed 3-client case."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recaudit.federated.pplr import (
    PPLRConfig,
    aggregate_client_specific,
    client_weights,
    heating_weights,
    similarity_matrix,
)

# three clients, one 2-element tensor each
UPDATES = [{"w": np.array([1.0, 0.0])}, {"w": np.array([0.0, 1.0])}, {"w": np.array([1.0, 1.0])}]
# with T = 1 the loss shares are softmax([0, ln 2, ln 5]) = [1, 2, 5] / 8
LOSSES = [0.0, math.log(2.0), math.log(5.0)]
CFG = PPLRConfig(alpha=0.7, beta=1.0, loss_temperature=1.0)


def test_similarity_by_hand():
    s = similarity_matrix(np.stack([u["w"] for u in UPDATES]))
    c = 1 / math.sqrt(2)  # cos between (1,0) or (0,1) and (1,1)
    np.testing.assert_allclose(s, [[1, 0.5, (1 + c) / 2], [0.5, 1, (1 + c) / 2], [(1 + c) / 2, (1 + c) / 2, 1]])


def test_heating_by_hand_and_it_warms_up_over_rounds():
    lam1 = heating_weights(LOSSES, 1, CFG)
    np.testing.assert_allclose(lam1, [math.tanh(0.7 / 0.125), math.tanh(0.7 / 0.25), math.tanh(0.7 / 0.625)])
    # round 3: exponent 3 -> p^3; the worst client (p = 5/8) still leans on itself but less
    lam3 = heating_weights(LOSSES, 3, CFG)
    assert lam3[2] == pytest.approx(math.tanh(0.7 / 0.625 ** 3))
    assert lam1[2] < lam3[2] < 1 and lam1[2] < lam1[1] < lam1[0]  # high loss -> small λ
    assert np.all(heating_weights(LOSSES, 1, PPLRConfig(heating=False)) == 1.0)


def test_three_client_aggregate_by_hand():
    c = (1 + 1 / math.sqrt(2)) / 2
    lam = [math.tanh(0.7 / 0.125), math.tanh(0.7 / 0.25), math.tanh(0.7 / 0.625)]
    # client 0: own weight s_00 = 1, others λ_0·0.5 (client 1) and λ_0·c (client 2)
    w0 = np.array([1.0, lam[0] * 0.5, lam[0] * c])
    w1 = np.array([lam[1] * 0.5, 1.0, lam[1] * c])
    w2 = np.array([lam[2] * c, lam[2] * c, 1.0])
    expected_w = np.stack([w0 / w0.sum(), w1 / w1.sum(), w2 / w2.sum()])
    # θ̃_0 = (1·(1,0) + λ0·0.5·(0,1) + λ0·c·(1,1)) / (1 + λ0·0.5 + λ0·c)
    theta0 = np.array([1 + lam[0] * c, lam[0] * 0.5 + lam[0] * c]) / w0.sum()
    theta2 = np.array([lam[2] * c + 1, lam[2] * c + 1]) / w2.sum()
    agg, w = aggregate_client_specific(UPDATES, LOSSES, 1, CFG)
    np.testing.assert_allclose(w, expected_w, rtol=1e-12)
    np.testing.assert_allclose(agg[0]["w"], theta0, rtol=1e-12)
    np.testing.assert_allclose(agg[2]["w"], theta2, rtol=1e-12)
    np.testing.assert_allclose(w.sum(axis=1), 1.0)
    # client-specific: the three aggregates differ, unlike FedAvg's single average
    assert not np.allclose(agg[0]["w"], agg[1]["w"]) and not np.allclose(agg[0]["w"], agg[2]["w"])
    # heating makes the high-loss client 2 keep more of itself, far more than the low-loss client 0
    _, w_cold = aggregate_client_specific(UPDATES, LOSSES, 1, PPLRConfig(loss_temperature=1.0, heating=False))
    assert w[2, 2] - w_cold[2, 2] > 0.05 > w[0, 0] - w_cold[0, 0] >= 0


def test_client_weights_reduce_to_self_when_heat_is_zero():
    s = similarity_matrix(np.eye(3))
    np.testing.assert_allclose(client_weights(s, np.zeros(3)), np.eye(3))


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="same tensor names"):
        aggregate_client_specific([{"a": np.ones(2)}, {"b": np.ones(2)}], [1.0, 1.0], 1, CFG)
    with pytest.raises(ValueError, match="one loss per update"):
        aggregate_client_specific(UPDATES, [1.0], 1, CFG)
    with pytest.raises(ValueError, match="server_round"):
        heating_weights(LOSSES, 0, CFG)
    with pytest.raises(ValueError, match="alpha"):
        PPLRConfig(alpha=0)
