"""Mixture(logit_tolerance=...): how far a logit may be off before it is recomputed exactly.

What it certifies: every logit within the tolerance (the engine's rounding bound,
exactness.h), so the log-density moves by at most that much and each weight by at most a
factor exp(2 tol). What it must keep: the float32 reference tolerances of
test_scores.py (realized errors stay far below the certified ones: README, "Accuracy and
speed at large t"), exact logits near the maximum at small t, results that do not depend
on the thread count. The defaults: 3e-3 for float32, the strict rule (64 eps) for
float64 and wherever "strict" is asked for; the CUDA copies strict unless a value is given.
"""

import numpy as np
import pytest

import ledkde
import ledkde.reference as ref
from helpers import ALL, check_against_reference, make_problem

EPS32 = float(np.finfo(np.float32).eps)


def far_queries(seed, n, d, t, q=160):
    """Images-like data in [0, 1] and queries x_i + sqrt(t) z (large t: far from the data).
    160 rows: passes of several tiles of rows and components, not cut into shards."""
    r = np.random.default_rng(seed)
    data = r.random((n, d)) ** 2
    y = data[r.integers(0, n, q)] + np.sqrt(t) * r.normal(size=(q, d))
    return y, data


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_strict_is_the_64_eps_rule(dtype):
    # "strict" and an explicit 64 eps of the working precision are the same pass, bit for bit.
    y, data = far_queries(0, 1500, 200, 3.0)
    y, data = y.astype(dtype), data.astype(dtype)
    base = ledkde.evaluate(y, ledkde.Mixture(data, logit_tolerance="strict"), 3.0, outputs=ALL)
    tol = 64 * float(np.finfo(dtype).eps)
    other = ledkde.evaluate(y, ledkde.Mixture(data, logit_tolerance=tol), 3.0, outputs=ALL)
    for k in ALL:
        np.testing.assert_array_equal(base[k], other[k])
    assert ledkde.Mixture(data, logit_tolerance="strict").logit_tolerance == tol


@pytest.mark.parametrize("dtype,default", [(np.float32, 3e-3), (np.float64, "strict")])
def test_the_default_per_working_precision(dtype, default):
    # None is 3e-3 for float32 and the strict rule for float64, bit for bit.
    y, data = far_queries(1, 1500, 784, 10.0)
    y, data = y.astype(dtype), data.astype(dtype)
    want = ledkde.evaluate(y, ledkde.Mixture(data, logit_tolerance=default), 10.0, outputs=ALL)
    got = ledkde.evaluate(y, ledkde.Mixture(data), 10.0, outputs=ALL)
    for k in ALL:
        np.testing.assert_array_equal(got[k], want[k])


def test_raw_arrays_get_the_default():
    # A call on raw arrays builds its own Mixture without the tile pack (the call layer's
    # Mixture._of_checked): its float32 default is 3e-3 too -- the same pass as such a
    # Mixture with 3e-3, and not the strict one.
    y, data = far_queries(1, 1500, 784, 10.0)
    y, data = y.astype(np.float32), data.astype(np.float32)
    got = ledkde.score(y, data, 10.0)
    mix = ledkde.Mixture._of_checked(data, None, None, np.float32, None, False)
    assert mix.logit_tolerance == 3e-3
    np.testing.assert_array_equal(got, ledkde.score(y, mix, 10.0))
    mix._core.logit_tol = 0.0  # the strict rule
    assert not np.array_equal(got, ledkde.score(y, mix, 10.0))


def test_cuda_copies_are_strict_unless_asked():
    # The tolerance has not been validated on a GPU: a Mixture hands its CUDA copies the
    # strict rule (0) by default and the caller's value when one is given.
    data = np.random.default_rng(2).random((50, 4), dtype=np.float32)
    assert ledkde.Mixture(data).logit_tolerance == 3e-3
    assert ledkde.Mixture(data)._device_logit_tol == 0.0
    assert ledkde.Mixture(data, logit_tolerance=1e-2)._device_logit_tol == 1e-2
    assert ledkde.Mixture(data, logit_tolerance="strict")._device_logit_tol == 0.0


@pytest.mark.parametrize("tol", [1e-3, 1e-2, 0.1])
@pytest.mark.parametrize("d,t", [(64, 0.5), (64, 5.0), (784, 1.0), pytest.param(784, 10.0, marks=pytest.mark.slow)])
def test_large_t_keeps_the_reference_tolerances(tol, d, t):
    # The float32 tolerances of test_scores.py (1e-4 of each quantity's scale), with
    # weights, variances and without; and the certified bound on the log-density.
    y, data = far_queries(d, 2000, d, t)
    check_against_reference(y, data, t, None, None, np.float32, logit_tolerance=tol)
    y2, data2, lw, var = make_problem(d + 1, 20, 900, d, t, weights=True, variances=True, offset=50.0)
    check_against_reference(y2, data2, t, lw, var, np.float32, logit_tolerance=tol)
    y32 = y.astype(np.float32)
    got = ledkde.log_density(y32, ledkde.Mixture(data.astype(np.float32), logit_tolerance=tol), t)
    want = ref.evaluate(y32.astype(np.float64), data.astype(np.float32).astype(np.float64), t)["log_density"]
    # tol, plus the float32 rounding of log p and of its float64 parts (a few eps of |log p|).
    assert np.all(np.abs(got - want) <= tol + 8 * EPS32 * np.abs(want))


def test_a_tolerance_takes_the_float32_route_at_large_t():
    # d = 784 at t = 10: the strict rule recomputes every logit in float64 (their bound
    # is ~1e-3, far above 64 eps); with 0.01 the float32 logits are kept, so the results
    # differ in their last bits -- and only there.
    y, data = far_queries(5, 2000, 784, 10.0)
    y, data = y.astype(np.float32), data.astype(np.float32)
    exact = ledkde.evaluate(y, ledkde.Mixture(data, logit_tolerance="strict"), 10.0)
    fast = ledkde.evaluate(y, ledkde.Mixture(data, logit_tolerance=1e-2), 10.0)
    assert not np.array_equal(exact["score"], fast["score"])
    scale = np.abs(exact["score"]).max()
    np.testing.assert_allclose(fast["score"], exact["score"], rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize("tol", [1e-3, 0.1])
@pytest.mark.parametrize("d", [16, 784])
def test_small_t_stays_exact_near_the_maximum(d, tol):
    # Four clusters far from each other and from the data's mean, queries at t = 0.01
    # (a hundredth of a cluster's spread): the float32 expansion's rounding is far above
    # any tolerance here, so the components near the maximum must still be recomputed
    # exactly whatever the tolerance (a build that left them approximate under the
    # opt-in failed the d = 16 cases). Enough queries and components for several tiles
    # per pass (few rows are cut into shards of one tile, whose first product runs in
    # float64 anyway).
    # (Centres at 100 / sqrt(d) per coordinate: far enough that the expansion's rounding
    # is 0.06 of a logit at d = 16, near enough that float32 holds the coordinates to
    # 1e-4 of the noise's scale sqrt(t), as it must to take the call.)
    r = np.random.default_rng(d)
    centres = 100.0 * r.normal(size=(4, d)) / np.sqrt(d)
    data = centres[r.integers(0, 4, 3000)] + r.random((3000, d))
    y = data[r.integers(0, 3000, 160)] + 0.1 * r.normal(size=(160, d))
    check_against_reference(y, data, 0.01, None, None, np.float32, logit_tolerance=tol)


def test_thread_count_independence():
    y, data = far_queries(7, 3000, 784, 10.0)
    mix = ledkde.Mixture(data.astype(np.float32), logit_tolerance=1e-3)
    base = ledkde.evaluate(y.astype(np.float32), mix, 10.0, outputs=ALL, threads=1)
    for threads in (2, 3):
        other = ledkde.evaluate(y.astype(np.float32), mix, 10.0, outputs=ALL, threads=threads)
        for k in ALL:
            np.testing.assert_array_equal(base[k], other[k])
    # Few rows: the pass cut into shards of components.
    few = ledkde.evaluate(y[:5].astype(np.float32), mix, 10.0, outputs=ALL, threads=1)
    for threads in (2, 3):
        other = ledkde.evaluate(y[:5].astype(np.float32), mix, 10.0, outputs=ALL, threads=threads)
        for k in ALL:
            np.testing.assert_array_equal(few[k], other[k])


def test_sampler_and_smoothed_score_take_it():
    # The Mixture carries the tolerance into every pass: the sampler's and the smoothed
    # score's results stay within float32 tolerance of the strict rule's.
    y, data = far_queries(9, 1500, 784, 10.0)
    y, data = y.astype(np.float32), data.astype(np.float32)
    exact, fast = ledkde.Mixture(data, logit_tolerance="strict"), ledkde.Mixture(data, logit_tolerance=1e-3)
    a = ledkde.smoothed_score(y, exact, 10.0, bandwidth=0.5, n_kernel=4, seed=3)
    b = ledkde.smoothed_score(y, fast, 10.0, bandwidth=0.5, n_kernel=4, seed=3)
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * np.abs(a).max())
    kw = dict(steps=20, seed=4, t_max=10.0, t_min=0.5)
    sa, sb = ledkde.sample(exact, 6, **kw), ledkde.sample(fast, 6, **kw)
    np.testing.assert_allclose(sb, sa, rtol=0, atol=1e-4 * np.abs(sa).max())


@pytest.mark.parametrize("value,error,words", [
    (0, ValueError, "must be > 0"), (-1e-3, ValueError, "must be > 0"), (0.5, ValueError, "at most 0.1"),
    (float("nan"), ValueError, "finite"), (float("inf"), ValueError, "finite"), (True, TypeError, "real number"),
    ("1e-3", TypeError, "real number"), ("exact", TypeError, "'strict'"), (np.array([1e-3]), TypeError, "shape"),
])
def test_bad_values_name_the_argument(value, error, words):
    data = np.random.default_rng(0).random((50, 4))
    with pytest.raises(error, match="logit_tolerance") as info:
        ledkde.Mixture(data, logit_tolerance=value)
    assert words in str(info.value)
