"""Multiple-testing corrections: Holm (family-wise error) and Benjamini–Hochberg (false discovery rate).

BH is scipy.stats.false_discovery_control. Holm is the ten lines below rather than statsmodels'
multipletests: one function does not justify two new locked dependencies (statsmodels, patsy);
tests check it against a hand-computed case and against Bonferroni's bound.
"""

from __future__ import annotations

from typing import Literal, Sequence

import numpy as np


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values: max over j ≤ rank of (m − j + 1)·p_(j), capped at 1."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    m = int(ok.sum())
    if m == 0:
        return out
    order = np.argsort(p[ok], kind="stable")
    scaled = (m - np.arange(m)) * p[ok][order]
    adj = np.minimum(np.maximum.accumulate(scaled), 1.0)
    vals = np.empty(m)
    vals[order] = adj
    out[ok] = vals
    return out


def bh(pvalues: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (scipy.stats.false_discovery_control); NaN stays NaN."""
    from scipy.stats import false_discovery_control  # imported here: a warm re-run needs no scipy.stats

    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out


def adjust(pvalues: Sequence[float | None], method: Literal["holm", "bh"] = "holm") -> list[float | None]:
    """Adjusted p-values in input order (None in, None out) by Holm or BH."""
    raw = np.array([np.nan if v is None else v for v in pvalues], dtype=float)
    adj = holm(list(raw)) if method == "holm" else bh(list(raw)) if method == "bh" else None
    if adj is None:
        raise ValueError(f"method must be 'holm' or 'bh', got {method!r}")
    return [None if v is None else float(a) for v, a in zip(pvalues, adj)]
