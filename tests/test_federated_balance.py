"""PPLR dynamic balance: aggregation weights and learning-rate scales against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from recaudit.federated.balance import BalanceConfig, aggregation_weights, loss_softmax, lr_scales, size_weights


def test_weights_match_hand_computation():
    losses, sizes = [1.0, 2.0, 3.0], [10, 30, 60]
    cfg = BalanceConfig(tau=1.0, beta=0.5)
    e = [math.exp(1), math.exp(2), math.exp(3)]
    soft = [x / sum(e) for x in e]  # 0.0900, 0.2447, 0.6652
    expected = [0.5 * s + 0.5 * n / 100 for s, n in zip(soft, sizes)]
    got = aggregation_weights(losses, sizes, cfg)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(got, [0.0950153, 0.2723642, 0.6326205], atol=1e-6)
    assert got.sum() == pytest.approx(1.0)


def test_beta_zero_is_fedavg_and_beta_one_is_loss_softmax():
    losses, sizes = [0.7, 0.2], [1, 3]
    np.testing.assert_allclose(aggregation_weights(losses, sizes, BalanceConfig(beta=0.0)), [0.25, 0.75])
    # tau = 0.5: softmax([1.4, 0.4]) = [e/(e+1), 1/(e+1)]
    np.testing.assert_allclose(aggregation_weights(losses, sizes, BalanceConfig(tau=0.5, beta=1.0)),
                               [math.e / (math.e + 1), 1 / (math.e + 1)])


def test_higher_loss_client_gains_weight_over_fedavg():
    losses, sizes = [0.3, 0.9], [50, 50]
    w = aggregation_weights(losses, sizes, BalanceConfig(tau=0.5, beta=0.5))
    assert w[1] > 0.5 > w[0]


def test_lr_scales_hand_computed_and_clipped():
    cfg = BalanceConfig(lr_gamma=1.0, lr_min=0.5, lr_max=2.0)
    # weighted mean loss = (1*1 + 1*2 + 2*4) / 4 = 2.75
    # ratios 1/2.75 = 0.364 (clipped up to 0.5), 2/2.75 = 0.727, 4/2.75 = 1.455
    np.testing.assert_allclose(lr_scales([1.0, 2.0, 4.0], [1, 1, 2], cfg), [0.5, 2 / 2.75, 4 / 2.75])
    # gamma 2 squares the ratio before clipping: (0.2/0.5)^2 = 0.16 -> 0.5; (0.8/0.5)^2 = 2.56 -> 2.0
    np.testing.assert_allclose(lr_scales([0.2, 0.8], [1, 1], BalanceConfig(lr_gamma=2.0)), [0.5, 2.0])
    np.testing.assert_allclose(lr_scales([0.4, 0.6], [1, 1], BalanceConfig(lr_gamma=0.0)), [1.0, 1.0])


def test_equal_losses_give_unit_scales_and_uniform_loss_part():
    np.testing.assert_allclose(lr_scales([0.5, 0.5, 0.5], [1, 2, 3], BalanceConfig()), [1, 1, 1])
    # softmax of equal losses is uniform: 0.7 * 0.5 + 0.3 * [0.25, 0.75]
    np.testing.assert_allclose(aggregation_weights([0.5, 0.5], [1, 3], BalanceConfig(beta=0.7)), [0.425, 0.575])


def test_softmax_is_stable_for_large_losses():
    w = loss_softmax([1000.0, 1001.0], tau=1.0)
    np.testing.assert_allclose(w, [1 / (1 + math.e), math.e / (1 + math.e)])
    np.testing.assert_allclose(size_weights([2, 6]), [0.25, 0.75])


@pytest.mark.parametrize("kwargs", [{"tau": 0}, {"beta": 1.5}, {"lr_gamma": -1}, {"lr_min": 1.5}, {"lr_max": 0.9}])
def test_bad_config_rejected(kwargs):
    with pytest.raises(ValueError):
        BalanceConfig(**kwargs)


def test_bad_inputs_rejected():
    with pytest.raises(ValueError, match="equal length"):
        aggregation_weights([1.0], [1, 2], BalanceConfig())
    with pytest.raises(ValueError, match="sizes"):
        lr_scales([1.0, 2.0], [0, 2], BalanceConfig())
    with pytest.raises(ValueError, match="finite"):
        aggregation_weights([float("nan")], [1], BalanceConfig())
