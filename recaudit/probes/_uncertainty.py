"""Thin wrappers over recaudit.metrics.stats for probes whose settings may switch resampling off."""

from __future__ import annotations

from typing import Callable

import numpy as np

from recaudit.metrics.stats import Interval, bootstrap_ci


def bootstrap_or_point(
    data: np.ndarray, statistic: Callable[[np.ndarray], float], n_resamples: int, level: float, seed: int,
    method: str = "percentile", vectorized: bool = False,
) -> Interval:
    """``bootstrap_ci`` over rows; with ``n_resamples == 0`` only the point estimate (low/high None).

    ``vectorized``: ``statistic`` takes (resamples × rows × …) and returns one value per resample.
    """
    if n_resamples == 0:
        value = np.asarray(statistic(np.asarray(data)[None]))[0] if vectorized else statistic(data)
        return Interval(float(value), None, None, level, len(data))  # type: ignore[arg-type]
    return bootstrap_ci(data, statistic, n_resamples, level, seed, method=method,  # type: ignore[arg-type]
                        vectorized=vectorized)
