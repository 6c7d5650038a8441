"""The estimators of the kernel-smoothed score and LED-KDE log-density
(naive, control; antithetic, orthogonal draws) and their standard errors."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ledkde
import ledkde.reference as ref
from ledkde import _core
from helpers import RTOL, make_problem

OPTIONS = [(e, a, o) for e in ("naive", "control") for a in (False, True) for o in (False, True)]


@given(seed=st.integers(0, 2**32 - 1), q=st.integers(1, 5), n=st.integers(1, 40),
       d=st.one_of(st.integers(1, 12), st.just(784)), log_t=st.floats(-3, 1), h=st.floats(0.01, 1.0),
       m=st.integers(2, 7), kernel=st.sampled_from(["gaussian", "uniform"]),
       option=st.sampled_from(OPTIONS), dtype=st.sampled_from([np.float64, np.float32]),
       weights=st.booleans(), variances=st.booleans())
def test_every_estimator_matches_reference(seed, q, n, d, log_t, h, m, kernel, option, dtype, weights, variances):
    estimator, anti, orth = option
    t = 10.0**log_t
    if anti:
        m = 2 * m
    y, data, lw, var = make_problem(seed, q, n, d, t, weights=weights, variances=variances)
    y, data = y.astype(dtype), data.astype(dtype)
    kw = dict(bandwidth=h, n_kernel=m, kernel=kernel, estimator=estimator, antithetic=anti, orthogonal=orth,
              seed=seed, log_weights=lw, variances=var, return_error=True)
    y64, data64 = y.astype(np.float64), data.astype(np.float64)
    got, got_se = ledkde.smoothed_score(y, data, t, **kw)
    want, want_se = ref.smoothed_score(y64, data64, t, **kw)
    # As in test_smoothed: the rows y + u are rounded to the working dtype, an
    # error of |y + u| eps in each distance, so the scale covers the kernel's
    # reach; the standard error sums d coordinates' variances.
    span = np.ptp(np.vstack([y64, data64])) + 6 * h * np.sqrt(d)
    tol = RTOL[dtype] * span / t * (1 + 9 * (dtype == np.float32))
    np.testing.assert_allclose(got, want, rtol=0, atol=tol)
    np.testing.assert_allclose(got_se, want_se, rtol=0, atol=2 * tol * np.sqrt(d))
    ld, ld_se = ledkde.led_kde_log_density(y, data, t, **kw)
    want_ld, want_ld_se = ref.led_kde_log_density(y64, data64, t, **kw)
    # The log-density's linear term s_t(y) . u adds |s| |u| eps of rounding.
    ltol = RTOL[dtype] * (span**2 / t + np.abs(want_ld).max() + span * h * np.sqrt(d) * span / t) \
        * (1 + 9 * (dtype == np.float32))
    np.testing.assert_allclose(ld, want_ld, rtol=0, atol=ltol)
    np.testing.assert_allclose(ld_se, want_ld_se, rtol=0, atol=2 * ltol)


def test_orthogonal_draws_are_orthogonal_and_match_reference():
    d, m = 6, 9  # a block of d orthogonal draws, then a new block
    for anti in (False, True):
        for kernel, code in (("gaussian", 0), ("uniform", 1)):
            mm = 2 * m if anti else m
            u = _core.kernel_draws(5, 3, 1, mm, anti, True, code, 0.4, d)
            np.testing.assert_allclose(u, ref.kernel_draws(5, 4, 1, mm, d, 0.4, kernel, anti, 0, True)[3],
                                       rtol=0, atol=1e-14)
            base = u[::2] if anti else u
            if anti:
                np.testing.assert_array_equal(u[1::2], -u[::2])
            gram = base[:d] @ base[:d].T
            off = gram - np.diag(np.diag(gram))
            assert np.abs(off).max() < 1e-12 * np.abs(gram).max()
            # Each draw keeps the length of the iid draw of the same stream numbers.
            iid = _core.kernel_draws(5, 3, 1, mm, anti, False, code, 0.4, d)
            np.testing.assert_allclose(np.linalg.norm(u, axis=1), np.linalg.norm(iid, axis=1), rtol=1e-12)


def _truth(y, data, t, h, n_kernel=1 << 14, **kw):
    """A low-variance reference value of the smoothed score and its standard error."""
    return ledkde.smoothed_score(y, data, t, bandwidth=h, n_kernel=n_kernel, antithetic=True, seed=12345,
                                 return_error=True, **kw)


@pytest.mark.parametrize("t", [0.002, 0.05, 1.0])
@pytest.mark.parametrize("variances", [False, True])
def test_every_estimator_is_unbiased(t, variances):
    # A mean over many draws of each estimator (so over many seeds' worth of
    # draws) agrees with a large-draw reference within the standard errors.
    r = np.random.default_rng(3)
    data = r.uniform(size=(30, 4))
    var = r.uniform(0, 0.01, size=30) if variances else None
    y = data[:5] + np.sqrt(t) * r.normal(size=(5, 4))
    h = 0.15
    truth, truth_se = _truth(y, data, t, h, variances=var)
    for estimator, anti, orth in OPTIONS:
        est, se = ledkde.smoothed_score(y, data, t, bandwidth=h, n_kernel=4096, estimator=estimator,
                                        antithetic=anti, orthogonal=orth, seed=7, return_error=True,
                                        variances=var)
        err = np.linalg.norm(est - truth, axis=1)
        # 5 standard errors, plus a rounding floor for the cases whose error is
        # zero to rounding (control at small t: se = 0).
        bound = 5 * np.sqrt(se**2 + truth_se**2) + 1e-9 * np.abs(truth).max()
        assert (err <= bound).all(), (estimator, anti, orth, err, bound)
    ld_truth, ld_se = ledkde.led_kde_log_density(y, data, t, bandwidth=h, n_kernel=1 << 14, antithetic=True,
                                                 seed=12345, return_error=True, variances=var)
    for estimator, anti, orth in OPTIONS:
        ld, se = ledkde.led_kde_log_density(y, data, t, bandwidth=h, n_kernel=4096, estimator=estimator,
                                            antithetic=anti, orthogonal=orth, seed=7, return_error=True,
                                            variances=var)
        # (the same 5 standard errors and rounding floor)
        assert (np.abs(ld - ld_truth) <= 5 * np.sqrt(se**2 + ld_se**2) + 1e-9).all(), (estimator, anti, orth)


def _memorization_case():
    """Image-like data in high dimension, queries at small t near training points
    (the memorization regime of SPEC section 1): h sqrt(d) = the NN distance."""
    r = np.random.default_rng(11)
    data = r.uniform(size=(300, 784))
    nn = ledkde.median_nn_distance(data)
    t = 1e-3 * nn**2
    y = data[:16] + np.sqrt(t) * r.normal(size=(16, 784))
    return y, data, t, nn / np.sqrt(784)


def test_control_estimator_removes_the_linear_term_in_the_memorization_regime():
    y, data, t, h = _memorization_case()
    truth, _ = _truth(y, data, t, h, n_kernel=1024)  # (d = 784: a smaller reference keeps memory low)
    def mse(estimator):
        return np.mean([np.mean(np.sum((ledkde.smoothed_score(y, data, t, bandwidth=h, n_kernel=8,
                                                              estimator=estimator, seed=s) - truth) ** 2, axis=1))
                        for s in range(6)])
    naive, control = mse("naive"), mse("control")
    # The naive average carries the -u/t term (|u| / t = h sqrt(d) / t); the control
    # estimator is left with what the weights' changes contribute, nearly nothing
    # here: far more than the 100x asked for.
    assert naive / max(control, 1e-300) > 1e4, (naive, control)


@pytest.mark.parametrize("estimator,anti", [("naive", False), ("control", False), ("naive", True),
                                            ("control", True)])
def test_standard_error_agrees_with_the_spread_over_seeds(estimator, anti):
    r = np.random.default_rng(5)
    data = r.uniform(size=(40, 3))
    t = 0.02
    y = data[:4] + np.sqrt(t) * r.normal(size=(4, 3))
    kw = dict(bandwidth=0.2, n_kernel=8, estimator=estimator, antithetic=anti, return_error=True,
              variances=r.uniform(0, 0.01, size=40))
    runs = [ledkde.smoothed_score(y, data, t, seed=s, **kw) for s in range(300)]
    est = np.stack([a for a, _ in runs])
    spread = est.var(axis=0, ddof=1).sum(axis=1)          # (Q,) the real variance of the estimate
    reported = np.mean([se**2 for _, se in runs], axis=0)  # (Q,) the mean reported variance
    # 300 seeds: the spread's own relative error is about sqrt(2 / 300) = 8%.
    np.testing.assert_allclose(reported / spread, 1.0, atol=0.3)
    lds = [ledkde.led_kde_log_density(y, data, t, seed=s, **kw) for s in range(300)]
    spread = np.stack([a for a, _ in lds]).var(axis=0, ddof=1)
    reported = np.mean([se**2 for _, se in lds], axis=0)
    np.testing.assert_allclose(reported / spread, 1.0, atol=0.3)


@pytest.mark.parametrize("estimator,anti,orth", OPTIONS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_every_option_is_thread_count_independent(estimator, anti, orth, dtype):
    y, data, _, var = make_problem(9, 50, 400, 12, 0.1, variances=True)
    y, data = y.astype(dtype), data.astype(dtype)
    kw = dict(bandwidth=0.3, n_kernel=6, estimator=estimator, antithetic=anti, orthogonal=orth, seed=11,
              variances=var, return_error=True)
    base = ledkde.smoothed_score(y, data, 0.1, threads=1, **kw)
    base_ld = ledkde.led_kde_log_density(y, data, 0.1, threads=1, **kw)
    for threads in (2, 3):
        for a, b in zip(base, ledkde.smoothed_score(y, data, 0.1, threads=threads, **kw)):
            np.testing.assert_array_equal(a, b)
        for a, b in zip(base_ld, ledkde.led_kde_log_density(y, data, 0.1, threads=threads, **kw)):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("estimator,anti,orth", OPTIONS)
def test_zero_bandwidth_is_the_plain_score_for_every_option(estimator, anti, orth):
    y, data, lw, var = make_problem(8, 20, 300, 16, 0.05, weights=True, variances=True)
    y, data = y.astype(np.float32), data.astype(np.float32)
    kw = dict(bandwidth=0.0, n_kernel=4, estimator=estimator, antithetic=anti, orthogonal=orth,
              log_weights=lw, variances=var)
    s, se = ledkde.smoothed_score(y, data, 0.05, return_error=True, **kw)
    np.testing.assert_array_equal(s, ledkde.score(y, data, 0.05, log_weights=lw, variances=var))
    np.testing.assert_array_equal(se, 0.0)
    np.testing.assert_array_equal(ledkde.led_kde_log_density(y, data, 0.05, **kw),
                                  ledkde.log_density(y, data, 0.05, log_weights=lw, variances=var))


def test_bad_estimator_arguments_are_named():
    y, data, _, _ = make_problem(1, 3, 10, 2, 0.1)
    with pytest.raises(ValueError, match="estimator"):
        ledkde.smoothed_score(y, data, 0.1, bandwidth=0.1, n_kernel=4, estimator="bogus")
    with pytest.raises(TypeError, match="orthogonal"):
        ledkde.smoothed_score(y, data, 0.1, bandwidth=0.1, n_kernel=4, orthogonal="yes")
    with pytest.raises(TypeError, match="return_error"):
        ledkde.led_kde_log_density(y, data, 0.1, bandwidth=0.1, n_kernel=4, return_error=1)
    with pytest.raises(ValueError, match="n_kernel"):
        ledkde.smoothed_score(y, data, 0.1, bandwidth=0.1, n_kernel=1, return_error=True)
    with pytest.raises(ValueError, match="n_kernel"):
        ledkde.smoothed_score(y, data, 0.1, bandwidth=0.1, n_kernel=2, antithetic=True, return_error=True)
    with pytest.raises(ValueError, match="n_kernel"):
        ledkde.sample(data, 4, t_max=1.0, t_min=0.01, steps=3, bandwidth=0.1, n_kernel=1, return_error=True)


@pytest.mark.parametrize("method", ["euler_maruyama", "ode_heun"])
@pytest.mark.parametrize("estimator,orth", [("naive", False), ("control", False), ("control", True)])
def test_sampler_estimators_match_reference_and_report_their_error(method, estimator, orth):
    r = np.random.default_rng(2)
    data = r.normal(size=(60, 5))
    times = ledkde.time_grid(2.0, 0.01, 6)
    kw = dict(method=method, n_kernel=4, estimator=estimator, orthogonal=orth, seed=3)
    x, traj, err = ledkde.sample(data, 10, schedule=times, bandwidth=0.2, return_trajectory=range(7),
                                 return_error=True, **kw)
    want, _ = ref.sample(data, 10, times, np.full(7, 0.2), **kw)
    np.testing.assert_allclose(x, want, rtol=0, atol=1e-9)
    assert err.shape == (7,)
    # Entry k is the mean relative standard error of the scores at the states of step k.
    mix = ledkde.Mixture(data)
    for k in (0, 3, 6):
        evals = [2 * k] if (method != "ode_heun" or k == 6) else None
        if evals is None:
            continue  # Heun's corrector states are not in the trajectory
        sm = _core.SmoothOptions(bandwidth=0.2, n_kernel=4, kernel=0, estimator=1 if estimator == "control" else 0,
                                 antithetic=False, orthogonal=orth, seed=3, eval=2 * k)
        _, _, se, _ = _core.smoothed(mix._core, traj[k], times[k], sm, True, False, True,
                                     _core.PassOptions(threads=1, tile_q=128, tile_n=512))
        s = ref.smoothed_score(traj[k], data, times[k], bandwidth=0.2, n_kernel=4, estimator=estimator,
                               orthogonal=orth, seed=3, eval_index=2 * k)
        np.testing.assert_allclose(err[k], np.mean(se / np.linalg.norm(s, axis=1)), rtol=1e-6)
