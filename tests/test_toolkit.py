"""Measuring instruments against brute force and closed-form answers."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ledkde
import ledkde.reference as ref


def brute_knn(y, data, k):
    d = np.sqrt(((y[:, None, :].astype(np.float64) - data[None].astype(np.float64)) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, 1), order, d


@given(seed=st.integers(0, 2**32 - 1), q=st.integers(1, 20), n=st.integers(1, 1500),
       d=st.one_of(st.integers(1, 10), st.sampled_from([33, 100, 784])), k=st.integers(1, 5),
       dtype=st.sampled_from([np.float64, np.float32]), offset=st.sampled_from([0.0, 1e3]))
def test_nearest_neighbors_are_exact(seed, q, n, d, k, dtype, offset):
    k = min(k, n)
    r = np.random.default_rng(seed)
    data = (r.normal(size=(n, d)) + offset).astype(dtype)
    y = (data[r.integers(0, n, q)] + 0.05 * r.normal(size=(q, d))).astype(dtype)
    got = ledkde.nearest_neighbors(y, data, k)
    assert got.distances.dtype == dtype and got.indices.dtype == np.int64
    want_d, want_i, full = brute_knn(y, data, k)
    # Distances: the inputs' own rounding after centring (a few eps of |x|).
    tol = 8 * np.finfo(dtype).eps * (np.abs(data).max() + 1) * np.sqrt(d) * (1 if dtype == np.float64 else 4)
    np.testing.assert_allclose(got.distances, want_d, rtol=0, atol=tol + 1e-12)
    # Indices: exactly the brute-force ones wherever the ranking is not a near-tie.
    chosen = np.take_along_axis(full, got.indices, 1)
    np.testing.assert_allclose(chosen, want_d, rtol=0, atol=2 * tol + 1e-12)
    sorted_d = np.sort(full, axis=1)
    clear = np.ones((q, k), dtype=bool)
    for j in range(k):
        lo = sorted_d[:, j - 1] if j > 0 else -np.inf
        hi = sorted_d[:, j + 1] if j + 1 < n else np.inf
        clear[:, j] = (sorted_d[:, j] - lo > 2 * tol) & (hi - sorted_d[:, j] > 2 * tol)
    np.testing.assert_array_equal(got.indices[clear], want_i[clear])


def test_nearest_neighbors_threads_and_errors():
    r = np.random.default_rng(1)
    data = r.normal(size=(5000, 20)).astype(np.float32)
    y = r.normal(size=(700, 20)).astype(np.float32)
    a = ledkde.nearest_neighbors(y, data, 3, threads=1)
    b = ledkde.nearest_neighbors(y, data, 3, threads=3)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.distances, b.distances)
    with pytest.raises(ValueError, match="^k: asks for 6 neighbours but the data have only 5"):
        ledkde.nearest_neighbors(y, data[:5], 6)
    with pytest.raises(ValueError, match="^k: must be at least 1"):
        ledkde.nearest_neighbors(y, data, 0)


def test_memorization_on_constructed_cases():
    data = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    samples = np.array([
        [0.0, 0.0],    # a training point: d1 = 0, memorized
        [5.0, 0.0],    # half-way between two: d1 = d2, not memorized
        [2.0, 0.0],    # d1 = 2, d2 = 8: ratio 1/4 < 1/3, memorized
        [4.0, 0.0],    # d1 = 4, d2 = 6: ratio 2/3, not memorized
    ])
    held_out = np.array([[1.0, 0.0]])
    rep = ledkde.memorization(samples, data, held_out=held_out)
    np.testing.assert_allclose(rep.d1, [0, 5, 2, 4])
    np.testing.assert_allclose(rep.d2, [10, 5, 8, 6])
    np.testing.assert_array_equal(rep.memorized, [True, False, True, False])
    assert rep.fraction == 0.5
    np.testing.assert_allclose(rep.held_out_d1, [1, 4, 1, 3])
    np.testing.assert_array_equal(rep.nearest, [0, 0, 0, 0])
    assert rep.distinct_nearest == 0.25
    assert "| memorized_fraction | 0.5 |" in str(rep)
    assert ledkde.memorization(samples, data, ratio=0.7).fraction == 0.75
    with pytest.raises(ValueError, match="^ratio: must be below 1"):
        ledkde.memorization(samples, data, ratio=1.5)


@pytest.mark.parametrize("n,d,s2", [(2000, 10, 2.0), (500, 4, 0.3), (10000, 50, 1.0)])
def test_collapse_time_of_gaussian_data(n, d, s2):
    data = np.sqrt(s2) * np.random.default_rng(n).normal(size=(n, d)) + 3.0
    formula = s2 / (n ** (2 / d) - 1)
    iso = ledkde.collapse_time(data, method="isotropic")
    # The sample variance is within a few 1/sqrt(n d) of s2.
    assert iso == pytest.approx(formula, rel=5 / np.sqrt(n * d))
    # The spectrum estimate sees the sample eigenvalues (spread ~ sqrt(d/n)).
    assert ledkde.collapse_time(data) == pytest.approx(formula, rel=0.1 + 2 * np.sqrt(d / n))


def test_collapse_time_entropy_condition_holds():
    # Anisotropic data: the returned t solves sum log(1 + lambda / t) = 2 log N.
    r = np.random.default_rng(3)
    scales = np.array([3.0, 1.0, 0.5, 0.1, 0.01])
    data = r.normal(size=(800, 5)) * scales
    t = ledkde.collapse_time(data)
    lam = np.linalg.eigvalsh(np.cov(data.T))
    assert np.log1p(lam / t).sum() == pytest.approx(2 * np.log(800), rel=1e-9)


def test_score_error_study_single_gaussian_closed_form():
    # One training point x1 ~ N(mu, s2 I): the empirical score (x1 - x)/t has
    # variance s2/t^2 per coordinate and bias (mu - x)(1/t - 1/(s2 + t)); over
    # x ~ p_t the squared bias per coordinate is s2^2 / (t^2 (s2 + t)). A
    # smoothed score adds the Monte Carlo variance h^2 / (M t^2) of its draws.
    mu = np.array([[1.0, -2.0, 0.5]])
    s2, t, h, m = 0.5, 0.8, 0.6, 4
    target = ledkde.GaussianMixture(weights=[1.0], means=mu, variances=[s2])
    res = ledkde.score_error_study(target, 1, [t], [0.0, h], n_repeats=600, n_eval=1500, n_kernel=m, seed=2)
    var_plain = s2 / t**2
    bias2 = s2**2 / (t**2 * (s2 + t))
    assert res["variance"][0, 0] == pytest.approx(var_plain, rel=0.15)
    assert res["variance"][0, 1] == pytest.approx(var_plain + h**2 / (m * t**2), rel=0.15)
    assert res["bias2"][0, 0] == pytest.approx(bias2, rel=0.15)
    assert res["bias2"][0, 1] == pytest.approx(bias2, rel=0.15)  # smoothing a linear score adds no bias
    np.testing.assert_allclose(res["mse"], res["bias2"] + res["variance"])


def test_effective_dataset_size_on_a_power_law():
    n = np.array([100, 200, 400, 800, 1600])
    mse = 3.0 / n**0.7
    assert ledkde.effective_dataset_size(n, mse, 3.0 / 500**0.7) == pytest.approx(500, rel=1e-9)
    assert ledkde.effective_dataset_size(n, mse, 1e-9) == np.inf
    assert ledkde.effective_dataset_size(n, mse, 10.0) == 100


def test_energy_distance_closed_form():
    # 1-D N(0,1) against N(delta,1): 2 E|X-Y| - 2 E|X-X'| with X-Y ~ N(-delta, 2).
    def mean_abs(m, s):
        return s * math.sqrt(2 / math.pi) * math.exp(-m * m / (2 * s * s)) + m * math.erf(m / (s * math.sqrt(2)))

    r = np.random.default_rng(4)
    delta = 1.0
    x = r.normal(size=(4000, 1))
    y = r.normal(size=(4000, 1)) + delta
    want = 2 * mean_abs(delta, math.sqrt(2)) - 2 * mean_abs(0.0, math.sqrt(2))
    # The estimate moves with the samples' mean difference, whose standard error
    # (0.022) it turns into about 0.023: 0.08 is about 3.5 of those.
    assert ledkde.energy_distance(x, y) == pytest.approx(want, abs=0.08)
    assert abs(ledkde.energy_distance(x, r.normal(size=(4000, 1)))) < 0.01


def test_mixture_log_likelihood_against_reference():
    r = np.random.default_rng(5)
    means = r.normal(size=(4, 3))
    w = np.array([0.1, 0.2, 0.3, 0.4])
    var = np.array([0.2, 0.5, 1.0, 0.05])
    target = ledkde.GaussianMixture(weights=w, means=means, variances=var)
    x = target.sample(50, r)
    want = ref.log_density(x, means, 0.0, log_weights=np.log(w), variances=var)
    np.testing.assert_allclose(target.log_likelihood(x), want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="^variances: the log-likelihood at t = 0"):
        ledkde.GaussianMixture(weights=[1.0], means=[[0.0]], variances=[0.0]).log_likelihood([[0.0]])
