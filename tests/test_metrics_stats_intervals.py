"""interval(): coverage of the recommended method for the mean at n = 10, and clipping."""

from __future__ import annotations

import numpy as np
import pytest

from recaudit.metrics.intervals import ci_unreliable, interval


@pytest.mark.parametrize("kind", ["normal", "skewed"])
def test_auto_interval_for_the_mean_covers_93_to_97_percent_at_n10(kind):
    rng = np.random.default_rng(7)
    reps, n = 400, 10
    if kind == "normal":
        data, truth = np.clip(rng.normal(0.5, 0.1, (reps, n)), 0, 1), 0.5
    else:  # bounded and skewed: Beta(2, 5), mean 2/7
        data, truth = rng.beta(2, 5, (reps, n)), 2 / 7
    hits = [(ci := interval(row)).low <= truth <= ci.high for row in data]
    assert 0.93 <= np.mean(hits) <= 0.97, np.mean(hits)


def test_percentile_bootstrap_undercovers_at_n10_which_is_why_auto_is_t():
    rng = np.random.default_rng(8)
    data = rng.beta(2, 5, (200, 10))
    hits = [(ci := interval(row, "percentile", n_resamples=400, seed=i)).low <= 2 / 7 <= ci.high
            for i, row in enumerate(data)]
    assert np.mean(hits) < 0.93


def test_bounds_are_clipped_and_said():
    ci = interval([0.0, 0.0, 0.0, 0.02, 0.0, 0.01, 0.0, 0.0, 0.0, 0.3])
    assert ci.low == 0.0 and ci.clipped and ci.method == "t"
    assert ci_unreliable(5, "mean") and not ci_unreliable(10, "mean") and ci_unreliable(10, "range")
    with pytest.raises(ValueError):
        interval([0.1, 0.2], "t", statistic="range")
