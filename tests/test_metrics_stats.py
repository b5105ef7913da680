"""Vectorised bootstrap and permutation tests equal the one-at-a-time loops they replace (same seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from recaudit.metrics.stats import (
    bootstrap_ci,
    bootstrap_counts,
    group_sums,
    permutation_indices,
    permutation_pvalue,
    permutation_test,
    row_shuffled_means,
)

# --- the reference loops, as recaudit.metrics.stats had them before vectorisation ----------------


def _loop_permutation_test(statistic, labels, n_permutations=1000, seed=0, blocks=None):
    labels = np.asarray(labels)
    observed = float(statistic(labels))
    rng = np.random.default_rng(seed)
    null = np.empty(n_permutations)
    if blocks is None:
        for b in range(n_permutations):
            null[b] = statistic(rng.permutation(labels))
    else:
        blocks = np.asarray(blocks)
        groups = [np.flatnonzero(blocks == u) for u in np.unique(blocks)]
        for b in range(n_permutations):
            perm = labels.copy()
            for g in groups:
                perm[g] = labels[rng.permutation(g)]
            null[b] = statistic(perm)
    return observed, permutation_pvalue(observed, null), null


def _loop_bootstrap_stats(data, statistic, n_resamples, seed):
    arr = np.asarray(data)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.shape[0], size=(n_resamples, arr.shape[0]))
    return np.array([statistic(arr[i]) for i in idx], dtype=float)


def _loop_jackknife(arr, statistic):
    n = arr.shape[0]
    keep = np.ones(n, dtype=bool)
    out = np.empty(n)
    for i in range(n):
        keep[i] = False
        out[i] = statistic(arr[keep])
        keep[i] = True
    return out


def _loop_null(statistic, labels, n_permutations, seed, blocks):
    return _loop_permutation_test(statistic, labels, n_permutations, seed, blocks)[2]


# --- permutations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["global", "equal_blocks", "ragged_blocks", "string_blocks", "singletons"])
def test_permutation_indices_reproduce_the_loop_shuffles(case):
    rng = np.random.default_rng(11)
    if case == "global":
        n, blocks = 37, None
    elif case == "equal_blocks":
        n, blocks = 40, np.repeat(np.arange(8), 5)
    elif case == "ragged_blocks":
        sizes = [3, 1, 7, 2, 9, 4]
        blocks = rng.permutation(np.repeat(np.arange(len(sizes)), sizes))  # interleaved, unsorted
        n = len(blocks)
    elif case == "string_blocks":
        blocks = rng.choice(["de", "fr", "us"], size=29)
        n = len(blocks)
    else:
        blocks = np.array([0, 1, 1, 2, 3, 3, 3])
        n = len(blocks)
    labels = rng.integers(0, 4, size=n)
    ref = []
    r = np.random.default_rng(5)
    groups = None if blocks is None else [np.flatnonzero(blocks == u) for u in np.unique(blocks)]
    for _ in range(23):
        if groups is None:
            ref.append(r.permutation(labels))
        else:
            perm = labels.copy()
            for g in groups:
                perm[g] = labels[r.permutation(g)]
            ref.append(perm)
    got = np.concatenate([labels[i] for i in permutation_indices(n, 23, 5, blocks, chunk=4)])  # chunks keep the stream
    np.testing.assert_array_equal(got, np.array(ref))


def test_permutation_test_equals_loop_on_random_inputs():
    rng = np.random.default_rng(0)
    for trial in range(6):
        n_blocks = int(rng.integers(2, 9))
        sizes = rng.integers(1, 7, size=n_blocks) if trial % 2 else np.full(n_blocks, int(rng.integers(2, 7)))
        blocks = np.repeat(np.arange(n_blocks), sizes)
        x = rng.normal(size=len(blocks))
        labels = np.concatenate([rng.permutation(s) for s in sizes]) % 3

        def stat(lab, x=x):
            return float(np.ptp(np.bincount(lab, weights=x, minlength=3)))

        def vstat(mat, x=x):
            return np.ptp(group_sums(mat, x, 3), axis=1)

        obs, p, null = _loop_permutation_test(stat, labels, 300, trial, blocks)
        assert permutation_test(stat, labels, 300, trial, blocks=blocks) == (obs, p)
        v_obs, v_p = permutation_test(vstat, labels, 300, trial, blocks=blocks, vectorized=True)
        assert abs(v_obs - obs) <= 1e-12 and v_p == p
    # global shuffle with a two-sample statistic
    x = rng.normal(size=30)
    lab = np.repeat([0, 1], 15)
    mean_gap = lambda g: x[g == 1].mean() - x[g == 0].mean()  # noqa: E731
    assert permutation_test(mean_gap, lab, 500, 3) == _loop_permutation_test(mean_gap, lab, 500, 3)[:2]


def test_group_sums_are_the_same_floats_as_bincount():
    rng = np.random.default_rng(1)
    w = rng.random(50)
    mat = rng.integers(0, 6, size=(9, 50))
    ref = np.array([np.bincount(row, weights=w, minlength=6) for row in mat])
    np.testing.assert_array_equal(group_sums(mat, w, 6), ref)


def test_permutation_test_finds_a_planted_effect_and_not_a_null():
    rng = np.random.default_rng(2)
    x = rng.normal(size=40)
    lab = np.repeat([0, 1], 20)
    planted = x + 1.5 * lab
    gap = lambda v: (lambda g: v[g == 1].mean() - v[g == 0].mean())  # noqa: E731
    assert permutation_test(gap(planted), lab, 400, 0)[1] < 0.01
    assert permutation_test(gap(x), lab, 400, 0)[1] > 0.05


# --- bootstrap ------------------------------------------------------------------------------------


def _range_of_means(block):
    return float(np.ptp(block.mean(axis=0)))


def _range_of_means_v(blocks):
    return np.ptp(blocks.mean(axis=1), axis=1)


@pytest.mark.parametrize("method", ["percentile", "basic", "bca"])
def test_bootstrap_vectorised_equals_loop(method):
    rng = np.random.default_rng(4)
    for n in (5, 17, 60):
        x = rng.random(n)
        mat = rng.random((n, 4))
        for data, stat, vstat in ((x, np.mean, None), (mat, _range_of_means, _range_of_means_v)):
            ref_stats = _loop_bootstrap_stats(data, stat if vstat is None else stat, 400, n)
            loop = bootstrap_ci(data, (lambda a: float(np.mean(a))) if vstat is None else stat, 400, seed=n,
                                method=method)
            fast = bootstrap_ci(data, stat if vstat is None else vstat, 400, seed=n, method=method,
                                vectorized=vstat is not None)
            lo, hi = np.nanquantile(ref_stats, [0.025, 0.975])
            if method == "percentile":
                assert abs(loop.low - lo) <= 1e-12 and abs(loop.high - hi) <= 1e-12
            for a, b in ((loop.value, fast.value), (loop.low, fast.low), (loop.high, fast.high)):
                assert abs(a - b) <= 1e-12, (n, method, loop, fast)


def test_vectorised_jackknife_equals_loop():
    from recaudit.metrics.stats import _jackknife

    rng = np.random.default_rng(6)
    mat = rng.random((13, 3))
    np.testing.assert_allclose(_jackknife(mat, _range_of_means_v, True), _loop_jackknife(mat, _range_of_means),
                               atol=1e-12, rtol=0)


# --- fairllm's resample matrices: the gathers they replace, same seeds ----------------------------


def _gather_row_shuffled_means(data, n_permutations, seed):
    """The reference: shuffle an index array per row with Generator.permuted, gather, average."""
    n, v = data.shape
    order = np.random.default_rng(seed).permuted(np.broadcast_to(np.arange(v), (n_permutations, n, v)), axis=2)
    return np.take_along_axis(np.broadcast_to(data, (n_permutations, n, v)), order, axis=2).mean(axis=1)


@pytest.mark.parametrize("shape", [(1, 2), (7, 2), (40, 5), (600, 4)])
def test_row_shuffled_means_equal_the_index_gather(shape):
    data = np.random.default_rng(shape[0]).random(shape)
    for b in (1, 300, 1201):  # 600 × 4 × 1201 spans several chunks of the generator's stream
        got = row_shuffled_means(data, b, np.random.default_rng(11))
        np.testing.assert_array_equal(got, _gather_row_shuffled_means(data, b, 11))  # the same floats
    # every shuffle keeps each row's multiset: the grand mean of every permutation is the data's
    np.testing.assert_allclose(got.mean(axis=1), data.mean(), atol=1e-12)


def test_row_shuffled_means_move_a_planted_column_only_under_shuffling():
    data = np.zeros((30, 3))
    data[:, 0] = 1.0  # value 0 always differs: its mean is 1, the others 0
    null = row_shuffled_means(data, 500, np.random.default_rng(0))
    assert (null.max(axis=1) - null.min(axis=1)).max() < 0.75  # shuffled, no column keeps all 30 ones


@pytest.mark.parametrize("n", [1, 2, 9, 250])
def test_bootstrap_counts_give_the_row_bootstrap_means(n):
    data = np.random.default_rng(n).random((n, 3))
    counts = bootstrap_counts(n, 400, 5)
    idx = np.random.default_rng(5).integers(0, n, size=(400, n))  # the draws bootstrap_ci makes for seed 5
    assert (counts.sum(axis=1) == n).all()
    np.testing.assert_allclose(counts @ data / n, data[idx].mean(axis=1), atol=1e-12, rtol=0)
    np.testing.assert_array_equal(counts[3], np.bincount(idx[3], minlength=n))
