"""Kernel-smoothed scores and LED-KDE log-densities."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ledkde
import ledkde.reference as ref
from helpers import RTOL, make_problem


@given(seed=st.integers(0, 2**32 - 1), q=st.integers(1, 6), n=st.integers(1, 40),
       d=st.one_of(st.integers(1, 9), st.just(784)), log_t=st.floats(-3, 2), h=st.floats(0.0, 2.0),
       m=st.integers(1, 9), kernel=st.sampled_from(["gaussian", "uniform"]), anti=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]), weights=st.booleans())
def test_smoothed_matches_reference(seed, q, n, d, log_t, h, m, kernel, anti, dtype, weights):
    t = 10.0**log_t
    if anti:
        m = 2 * m
    y, data, lw, var = make_problem(seed, q, n, d, t, weights=weights)
    y, data = y.astype(dtype), data.astype(dtype)
    kw = dict(bandwidth=h, n_kernel=m, kernel=kernel, antithetic=anti, seed=seed, log_weights=lw)
    got = ledkde.smoothed_score(y, data, t, **kw)
    want = ref.smoothed_score(y.astype(np.float64), data.astype(np.float64), t, **kw)
    # The perturbed queries y + u are rounded to the working dtype once more
    # than in the reference: in float32 that is an extra |y + u| * 6e-8 in each
    # distance, covered by widening the scale by the kernel's reach.
    pert = np.vstack([y, data]).astype(np.float64)
    span = np.ptp(pert) + 6 * h * np.sqrt(d)
    np.testing.assert_allclose(got, want, rtol=0, atol=RTOL[dtype] * span / t * (1 + 9 * (dtype == np.float32)))
    ld = ledkde.led_kde_log_density(y, data, t, **kw)
    ld_want = ref.led_kde_log_density(y.astype(np.float64), data.astype(np.float64), t, **kw)
    np.testing.assert_allclose(ld, ld_want, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_zero_bandwidth_is_the_plain_score_exactly(dtype):
    y, data, lw, var = make_problem(8, 40, 300, 16, 0.05, weights=True, variances=True)
    y, data = y.astype(dtype), data.astype(dtype)
    kw = dict(log_weights=lw, variances=var)
    for m in (1, 5):
        np.testing.assert_array_equal(ledkde.smoothed_score(y, data, 0.05, bandwidth=0.0, n_kernel=m, **kw),
                                      ledkde.score(y, data, 0.05, **kw))
        np.testing.assert_array_equal(ledkde.led_kde_log_density(y, data, 0.05, bandwidth=0.0, n_kernel=m, **kw),
                                      ledkde.log_density(y, data, 0.05, **kw))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_seed_reproducible_across_threads(dtype):
    y, data, _, _ = make_problem(9, 100, 500, 12, 0.1)
    y, data = y.astype(dtype), data.astype(dtype)
    kw = dict(bandwidth=0.3, n_kernel=6, seed=11)
    base = ledkde.smoothed_score(y, data, 0.1, threads=1, **kw)
    for threads in (2, 5):
        np.testing.assert_array_equal(base, ledkde.smoothed_score(y, data, 0.1, threads=threads, **kw))
    assert not np.array_equal(base, ledkde.smoothed_score(y, data, 0.1, bandwidth=0.3, n_kernel=6, seed=12))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_few_queries_cut_the_components_into_shards(dtype):
    # Three queries with their draws make one pass; over 1,500 components in
    # tiles of 128 it is cut into shards whose states merge: the result must
    # match the reference (scores, log-densities, their errors) and not
    # depend on the threads.
    y, data, _, _ = make_problem(12, 3, 1500, 12, 0.1)
    y, data = y.astype(dtype), data.astype(dtype)
    kw = dict(bandwidth=0.3, n_kernel=8, antithetic=True, seed=5)
    got, se = ledkde.smoothed_score(y, data, 0.1, threads=1, tile=(64, 128), return_error=True, **kw)
    ld, ld_se = ledkde.led_kde_log_density(y, data, 0.1, threads=1, tile=(64, 128), return_error=True, **kw)
    for threads in (2, 3):
        np.testing.assert_array_equal(got, ledkde.smoothed_score(y, data, 0.1, threads=threads, tile=(64, 128), **kw))
        np.testing.assert_array_equal(ld, ledkde.led_kde_log_density(y, data, 0.1, threads=threads, tile=(64, 128),
                                                                     **kw))
    y64, d64 = y.astype(np.float64), data.astype(np.float64)
    want, want_se = ref.smoothed_score(y64, d64, 0.1, return_error=True, **kw)
    ld_want, ld_se_want = ref.led_kde_log_density(y64, d64, 0.1, return_error=True, **kw)
    span = np.ptp(np.vstack([y64, d64])) + 6 * 0.3 * np.sqrt(12)  # as test_smoothed_matches_reference
    atol = RTOL[dtype] * span / 0.1 * (1 + 9 * (dtype == np.float32))
    np.testing.assert_allclose(got, want, rtol=0, atol=atol)
    np.testing.assert_allclose(se, want_se, rtol=0, atol=atol)
    np.testing.assert_allclose(ld, ld_want, rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)
    np.testing.assert_allclose(ld_se, ld_se_want, rtol=0, atol=RTOL[dtype] * 10)


def test_monte_carlo_rate():
    # Mean squared error against the expectation falls as 1/M.
    y, data, _, _ = make_problem(10, 4, 50, 3, 0.2)
    kw = dict(bandwidth=0.4, kernel="gaussian")
    truth = ledkde.smoothed_score(y, data, 0.2, n_kernel=1 << 16, seed=999, **kw)
    def mse(m):
        return np.mean([np.mean((ledkde.smoothed_score(y, data, 0.2, n_kernel=m, seed=s, **kw) - truth) ** 2)
                        for s in range(40)])
    ratio = mse(4) / mse(256)
    assert 32 < ratio < 128, ratio  # 64 expected


def test_antithetic_pairs_cancel_odd_terms():
    # For a single Gaussian component the score is linear in y, so an antithetic
    # pair (u, -u) gives the exact expectation, which is the plain score.
    data = np.array([[0.5, -1.0, 2.0]])
    y = np.random.default_rng(0).normal(size=(6, 3))
    s = ledkde.smoothed_score(y, data, 0.3, bandwidth=0.7, n_kernel=2, antithetic=True, variances=[0.2])
    np.testing.assert_allclose(s, ledkde.score(y, data, 0.3, variances=[0.2]), rtol=1e-12, atol=1e-12)


def test_smoothing_is_not_a_time_shift():
    # K_h * p_t = p_{t+h^2}, but K_h * s_t differs from s_{t+h^2} for a mixture.
    data = np.array([[-1.0], [1.0]])
    y = np.array([[0.3]])
    smooth = ledkde.smoothed_score(y, data, 0.05, bandwidth=0.5, n_kernel=1 << 15, seed=1)
    shifted = ledkde.score(y, data, 0.05 + 0.25)
    assert abs(smooth[0, 0] - shifted[0, 0]) > 0.1
