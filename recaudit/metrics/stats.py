"""Uncertainty for every audit number: bootstrap confidence intervals and permutation tests.

All functions are deterministic for a given seed (numpy Generator), so reports reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

import numpy as np


@dataclass(frozen=True)
class Interval:
    """A point estimate with a percentile-bootstrap confidence interval."""

    value: float
    low: float
    high: float
    level: float = 0.95
    n: int = 0


# Resample matrices are built in chunks of about this many cells, so memory stays bounded (tens of
# MB) whatever the number of units and resamples.
_CHUNK_CELLS = 1 << 21


def bootstrap_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """The (n_resamples × n) row-index matrix ``bootstrap_ci`` draws for ``seed`` (one rng.integers call)."""
    key = (n, n_resamples, seed)
    hit = _INDEX_CACHE.get(key)
    if hit is None:
        hit = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
        if n < 2**31:
            hit = hit.astype(np.int32)  # half the cache's memory; values are the same
        _INDEX_CACHE.put(key, hit)
    return hit


class _IndexCache:
    """A small LRU of bootstrap index matrices: probes draw the same (n, seed) several times per evaluate."""

    def __init__(self, max_bytes: int = 64 << 20):
        self.max_bytes = max_bytes
        self._items: dict[tuple, np.ndarray] = {}

    def get(self, key: tuple) -> np.ndarray | None:
        hit = self._items.pop(key, None)
        if hit is not None:
            self._items[key] = hit  # most recent last
        return hit

    def put(self, key: tuple, value: np.ndarray) -> None:
        if value.nbytes > self.max_bytes:
            return
        value.setflags(write=False)
        self._items[key] = value
        while sum(v.nbytes for v in self._items.values()) > self.max_bytes:
            self._items.pop(next(iter(self._items)))


_INDEX_CACHE = _IndexCache()


def _resample_stats(arr: np.ndarray, idx: np.ndarray, statistic: Callable, vectorized: bool) -> np.ndarray:
    """statistic of every resample ``arr[idx[b]]``; a vectorized statistic gets (b, n, ...) blocks at once."""
    if not vectorized:
        return np.array([statistic(arr[i]) for i in idx], dtype=float)
    per_row = max(1, int(np.prod(arr.shape, dtype=np.int64)))
    step = max(1, _CHUNK_CELLS // per_row)
    out = [np.asarray(statistic(arr[idx[lo:lo + step]]), dtype=float).reshape(-1) for lo in range(0, len(idx), step)]
    return np.concatenate(out) if out else np.empty(0)


def _as_vectorized(statistic: Callable, arr: np.ndarray, vectorized: bool) -> tuple[Callable, bool]:
    """np.mean over all cells is vectorised here (same pairwise sums row by row, so the same floats)."""
    if vectorized or statistic is not np.mean:
        return statistic, vectorized
    if arr.ndim == 1:
        return (lambda block: block.mean(axis=1)), True
    return (lambda block: block.reshape(block.shape[0], -1).mean(axis=1)), True


def bootstrap_ci(
    data: Sequence | np.ndarray,
    statistic: Callable[[np.ndarray], float] = np.mean,
    n_resamples: int = 1000,
    level: float = 0.95,
    seed: int = 0,
    method: Literal["percentile", "basic", "bca"] = "percentile",
    vectorized: bool = False,
) -> Interval:
    """Bootstrap CI of ``statistic`` over the first axis of ``data`` (resampling units = rows).

    ``vectorized=True``: ``statistic`` takes a stack of samples (resamples × rows × …) and returns
    one value per resample (reduce axis 1); results equal the per-resample loop's for the same seed.

    For statistics whose plug-in estimate is biased in small samples (entropy, HHI), the bootstrap
    replicates are biased again in the same direction, so the percentile interval sits off the
    estimate and away from the true value. ``"basic"`` reflects the percentiles around the
    estimate ([2θ̂ − q_hi, 2θ̂ − q_lo]), which moves the interval by the bootstrap's estimate of the
    bias; ``"bca"`` (Efron's bias-corrected and accelerated interval) adjusts the percentile levels
    by the median bias and a jackknife skewness (``n`` extra evaluations) and suits moderate bias;
    it degenerates when the estimate lies outside nearly all replicates.
    """
    if method not in ("percentile", "basic", "bca"):
        raise ValueError(f"method must be 'percentile', 'basic' or 'bca', got {method!r}")
    arr = np.asarray(data)
    n = arr.shape[0]
    if n == 0:
        return Interval(float("nan"), float("nan"), float("nan"), level, 0)
    value = float(_point(statistic, arr, vectorized))
    if n == 1:
        return Interval(value, value, value, level, 1)
    stat, vec = _as_vectorized(statistic, arr, vectorized)
    stats = _resample_stats(arr, bootstrap_indices(n, n_resamples, seed), stat, vec)
    alpha = (1 - level) / 2
    quantiles = [alpha, 1 - alpha]
    if method == "bca":
        quantiles = _bca_quantiles(arr, stat, stats, value, alpha, vec)
    lo, hi = np.nanquantile(stats, quantiles)
    if method == "basic":
        lo, hi = 2 * value - hi, 2 * value - lo
    return Interval(value, float(lo), float(hi), level, n)


def bootstrap_or_point(
    data: np.ndarray, statistic: Callable[[np.ndarray], float], n_resamples: int, level: float, seed: int,
    method: str = "percentile", vectorized: bool = False,
) -> Interval:
    """``bootstrap_ci`` over rows; with ``n_resamples == 0`` only the point estimate (low/high None).

    For probes whose settings may switch resampling off. ``vectorized``: ``statistic`` takes
    (resamples × rows × …) and returns one value per resample.
    """
    if n_resamples == 0:
        return Interval(_point(statistic, np.asarray(data), vectorized), None, None, level, len(data))  # type: ignore[arg-type]
    return bootstrap_ci(data, statistic, n_resamples, level, seed, method=method,  # type: ignore[arg-type]
                        vectorized=vectorized)


def _point(statistic: Callable, arr: np.ndarray, vectorized: bool) -> float:
    return float(np.asarray(statistic(arr[None]))[0]) if vectorized else float(statistic(arr))


def _jackknife(arr: np.ndarray, statistic: Callable, vectorized: bool) -> np.ndarray:
    """Leave-one-out values of ``statistic`` (row i dropped), in row order."""
    n = arr.shape[0]
    if not vectorized:
        keep = np.ones(n, dtype=bool)
        jack = np.empty(n)
        for i in range(n):
            keep[i] = False
            jack[i] = statistic(arr[keep])
            keep[i] = True
        return jack
    # row i of the leave-one-out matrix: 0..i-1, i+1..n-1 (the same order arr[keep] has)
    loo = np.arange(n - 1)[None, :] + (np.arange(n - 1)[None, :] >= np.arange(n)[:, None])
    return _resample_stats(arr, loo, statistic, True)


def _bca_quantiles(arr: np.ndarray, statistic: Callable[[np.ndarray], float], stats: np.ndarray, value: float,
                   alpha: float, vectorized: bool = False) -> list[float]:  # fmt: skip
    """BCa's adjusted lower/upper quantile levels (Efron & Tibshirani 1993, ch. 14)."""
    from scipy.stats import norm

    finite = stats[np.isfinite(stats)]
    if len(finite) == 0:
        return [alpha, 1 - alpha]
    # median bias, with ties split so a discrete statistic equal to the estimate adds no bias
    share = (np.sum(finite < value) + 0.5 * np.sum(finite == value)) / len(finite)
    z0 = norm.ppf(np.clip(share, 1e-6, 1 - 1e-6))
    jack = _jackknife(arr, statistic, vectorized)
    d = jack.mean() - jack
    denom = 6.0 * np.sum(d**2) ** 1.5
    a = float(np.sum(d**3) / denom) if denom > 0 else 0.0
    out = []
    for q in (alpha, 1 - alpha):
        z = z0 + norm.ppf(q)
        out.append(float(norm.cdf(z0 + z / (1 - a * z))))
    return out


def permutation_pvalue(observed: float, null_stats: np.ndarray) -> float:
    """One-sided p-value P(null >= observed) with the +1 correction (never exactly 0)."""
    null_stats = np.asarray(null_stats, dtype=float)
    return float((1 + np.sum(null_stats >= observed - 1e-12)) / (1 + len(null_stats)))


def permutation_indices(
    n: int, n_permutations: int, seed: int, blocks: np.ndarray | None = None, chunk: int | None = None,
) -> Iterator[np.ndarray]:
    """Index matrices (rows = permutations, in order) of the shuffles the reference loop draws.

    ``labels[P]`` for each yielded ``P`` is, row by row, ``rng.permutation(labels)`` (no blocks)
    or the within-block shuffle ``perm[g] = labels[rng.permutation(g)]`` over blocks in sorted
    order: the same random stream as drawing one permutation at a time. Equal-size blocks use
    ``Generator.permuted`` on a (permutations·blocks × size) matrix, which makes exactly the
    successive Fisher–Yates calls; unequal sizes take the swap indices from the same bit generator
    through ``RandomState.randint`` (the masked rejection sampler ``Generator.shuffle`` uses, one
    C call for all bounds) and apply the swaps for all permutations at once.
    """
    rng = np.random.default_rng(seed)
    step = chunk or max(1, _CHUNK_CELLS // max(n, 1))
    if blocks is None:
        groups = [np.arange(n)]
    else:
        blocks = np.asarray(blocks)
        if len(blocks) != n:
            raise ValueError(f"blocks has {len(blocks)} entries for {n} labels")
        uniq, inverse = np.unique(blocks, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        sizes = np.bincount(inverse.ravel(), minlength=len(uniq))
        groups = np.split(order, np.cumsum(sizes)[:-1])
    sizes = np.array([len(g) for g in groups])
    order = np.concatenate(groups) if groups else np.empty(0, dtype=np.int64)
    for lo in range(0, n_permutations, step):
        rows = min(step, n_permutations - lo)
        if len(set(sizes.tolist())) <= 1:
            local = _equal_block_shuffles(rng, rows, len(groups), int(sizes[0]) if len(sizes) else 0)
        else:
            local = _ragged_block_shuffles(rng, rows, sizes)
        out = np.empty((rows, n), dtype=np.int64)
        out[:, order] = order[local]
        yield out


def _equal_block_shuffles(rng: np.random.Generator, rows: int, n_blocks: int, size: int) -> np.ndarray:
    """Layout positions after shuffling each of n_blocks consecutive blocks of ``size``, for ``rows`` draws."""
    base = np.tile(np.arange(size), (rows * n_blocks, 1))
    local = rng.permuted(base, axis=1) if size > 1 else base
    return (local.reshape(rows, n_blocks, size) + (np.arange(n_blocks) * size)[None, :, None]).reshape(rows, -1)


def _ragged_block_shuffles(rng: np.random.Generator, rows: int, sizes: np.ndarray) -> np.ndarray:
    """As _equal_block_shuffles for blocks of different sizes (Fisher–Yates swaps applied column-wise)."""
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    n = int(sizes.sum())
    per_perm = np.concatenate([np.arange(s - 1, 0, -1) for s in sizes]) if n else np.empty(0, dtype=np.int64)
    draws_per_perm = len(per_perm)
    # j for bound i: the masked draw random_interval(i) Generator.shuffle makes, in the same order
    js = np.random.RandomState(rng.bit_generator).randint(0, np.tile(per_perm, rows) + 1) if draws_per_perm else None
    js = js.reshape(rows, draws_per_perm) if js is not None else np.empty((rows, 0), dtype=np.int64)
    first_draw = np.concatenate([[0], np.cumsum(sizes - 1)[:-1]]) if len(sizes) else sizes
    work = np.tile(np.arange(n), (rows, 1))
    r = np.arange(rows)[:, None]
    for i in range(int(sizes.max(initial=1)) - 1, 0, -1):
        live = np.flatnonzero(sizes > i)
        ci = offsets[live] + i
        cj = offsets[live][None, :] + js[:, first_draw[live] + sizes[live] - 1 - i]
        a = work[r, ci[None, :]]
        b = work[r, cj]
        work[r, ci[None, :]] = b
        work[r, cj] = a
    return work


def permutation_test(
    statistic: Callable[[np.ndarray], float],
    labels: np.ndarray,
    n_permutations: int = 1000,
    seed: int = 0,
    blocks: np.ndarray | None = None,
    vectorized: bool = False,
) -> tuple[float, float]:
    """Permutation test of ``statistic(labels)``: returns (observed, one-sided p for 'larger than chance').

    Labels are shuffled globally, or within each block when ``blocks`` is given (a paired design:
    e.g. shuffle attribute values within one instruction). ``vectorized=True``: ``statistic``
    takes a (permutations × labels) matrix and returns one value per row. Same seed, same
    shuffles and p-value as drawing one permutation at a time (``permutation_indices``).
    """
    labels = np.asarray(labels)
    observed = float(np.asarray(statistic(labels[None]))[0]) if vectorized else float(statistic(labels))
    parts = []
    for idx in permutation_indices(len(labels), n_permutations, seed, blocks):
        shuffled = labels[idx]
        if vectorized:
            parts.append(np.asarray(statistic(shuffled), dtype=float).reshape(-1))
        else:
            parts.append(np.array([statistic(row) for row in shuffled], dtype=float))
    null = np.concatenate(parts) if parts else np.empty(0)
    return observed, permutation_pvalue(observed, null)


def group_sums(labels: np.ndarray, weights: np.ndarray, n_groups: int) -> np.ndarray:
    """Per row of a label matrix (rows × n), the weight sum of each label 0..n_groups-1 (rows × n_groups).

    One bincount over offset labels: within a row the additions run in the same order as
    ``np.bincount(row, weights, minlength=n_groups)``, so the sums are the same floats.
    """
    labels = np.atleast_2d(labels)
    rows, n = labels.shape
    offset = labels + (np.arange(rows) * n_groups)[:, None]
    w = np.broadcast_to(np.asarray(weights, dtype=float), (rows, n))
    return np.bincount(offset.ravel(), weights=w.ravel(), minlength=rows * n_groups).reshape(rows, n_groups)


def bootstrap_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """(n_resamples × n) float matrix: how often resample b draws row i, for ``bootstrap_indices(n, n_resamples, seed)``.

    ``counts @ data / n`` are the resamples' column means (``data[idx].mean(axis=1)`` up to summation
    order, ~1e-15) at the cost of one matrix product instead of a (resamples × n × columns) gather.
    """
    key = (n, n_resamples, seed)
    idx = _INDEX_CACHE.get(key)
    # drawn here unless cached (the same rng.integers call): the int32 copy of the cache is not needed
    idx = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n)) if idx is None else idx.astype(np.int64)
    idx += (np.arange(n_resamples, dtype=np.int64) * n)[:, None]
    return np.bincount(idx.ravel(), minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def row_shuffled_means(data: np.ndarray, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """(n_permutations × V) column means of ``data`` (n × V) with each row's values shuffled per permutation.

    The draws of ``rng.permuted`` over the (permutations × n × V) index array along its last axis
    (one Fisher–Yates per row, in C order): shuffling the values in place moves them exactly as the
    indices would move, so no gather is needed; blocks of permutations are drawn in order with the
    same generator, so the stream (and every shuffle) is the same as one call over all of them.
    """
    data = np.asarray(data, dtype=float)
    n, v = data.shape
    step = max(1, (_CHUNK_CELLS >> 3) // max(n * v, 1))  # 2 MB blocks: the shuffles stay in cache
    out = np.empty((n_permutations, v))
    for lo in range(0, n_permutations, step):
        rows = min(step, n_permutations - lo)
        mem = np.empty((rows, v, n))  # n innermost: the means are contiguous (pairwise) sums, as
        mem[...] = data.T  # the reference's gathered array has them, so the floats are the same
        rng.permuted(mem.transpose(0, 2, 1), axis=2, out=mem.transpose(0, 2, 1))
        out[lo:lo + rows] = mem.mean(axis=2)
    return out
