"""Bad input gets a clear error naming the argument."""

import numpy as np
import pytest

import ledkde

Y = np.zeros((3, 2))
X = np.ones((5, 2))


def raises(exc, match, fn, *a, **kw):
    with pytest.raises(exc, match=match):
        fn(*a, **kw)


@pytest.mark.parametrize("fn", [ledkde.score, ledkde.denoise, ledkde.log_density])
def test_scores_reject_bad_input(fn):
    raises(ValueError, "^y: has dimension 3", fn, np.zeros((3, 3)), X, 1.0)
    raises(ValueError, "^y: expected a 2-D array", fn, np.zeros(3), X, 1.0)
    raises(ValueError, "^data: is empty", fn, Y, np.zeros((0, 2)), 1.0)
    raises(ValueError, "^data: contains NaN", fn, Y, np.array([[0.0, np.nan]]), 1.0)
    raises(ValueError, "^y: contains NaN or infinite", fn, np.array([[np.inf, 0.0]]), X, 1.0)
    raises(ValueError, "^t: must be > 0", fn, Y, X, 0.0)
    raises(ValueError, "^t: must be > 0", fn, Y, X, -1.0)
    raises(ValueError, "^t: must be finite", fn, Y, X, np.inf)
    raises(ValueError, "^t: must be finite", fn, Y, X, np.nan)
    raises(TypeError, "^t: expected a real number", fn, Y, X, "1")
    raises(TypeError, "^t: expected a real number", fn, Y, X, np.ones(2))
    raises(ValueError, "^variances: must be >= 0", fn, Y, X, 1.0, variances=-np.ones(5))
    raises(ValueError, r"^variances: expected shape \(5,\)", fn, Y, X, 1.0, variances=np.ones(4))
    raises(ValueError, "^log_weights: contains NaN or \\+inf", fn, Y, X, 1.0, log_weights=np.array([0, 0, 0, 0, np.inf]))
    raises(ValueError, "^log_weights: contains NaN", fn, Y, X, 1.0, log_weights=np.array([0, 0, 0, 0, np.nan]))
    raises(ValueError, "^log_weights: all entries are -inf", fn, Y, X, 1.0, log_weights=np.full(5, -np.inf))
    raises(TypeError, "^data: dtype complex128 is not supported", fn, Y, X.astype(complex), 1.0)
    raises(TypeError, "^y: dtype <U1 is not supported", fn, np.array([["a", "b"]]), X, 1.0)
    raises(TypeError, "^data: dtype object is not supported", fn, Y, np.array([[None, 1]], dtype=object), 1.0)
    raises(TypeError, "^data: dtype bool is not supported", fn, Y, X > 0, 1.0)
    raises(TypeError, "^threads: expected an integer", fn, Y, X, 1.0, threads=1.5)
    raises(ValueError, "^threads: must be at least 1", fn, Y, X, 1.0, threads=0)
    raises(TypeError, "^data: integers above 2\\*\\*53", fn, Y, np.full((5, 2), 2**60, dtype=np.int64), 1.0)


def test_times_below_the_working_range():
    raises(ValueError, "^t: 1e-35 is below 1e-30, where float32 logits overflow; pass float64",
           ledkde.score, Y.astype(np.float32), X.astype(np.float32), 1e-35)
    raises(ValueError, "^t: 1e-300 is below 1e-290, where float64", ledkde.score, Y, X, 1e-300)
    raises(ValueError, "^t_min: 1e-35 is below 1e-30", ledkde.sample, X.astype(np.float32), 2, t_max=1.0,
           t_min=1e-35, steps=3)
    # At the edge of the range the results are finite and right.
    import ledkde.reference as ref
    y = X[:2] + 1e-3
    np.testing.assert_allclose(ledkde.score(y.astype(np.float32), X.astype(np.float32), 1e-30),
                               ref.score(y.astype(np.float32), X.astype(np.float32), 1e-30), rtol=1e-5)


def test_longdouble_is_refused_not_truncated():
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is float64 here")
    raises(TypeError, "^data: dtype float128 is not supported", ledkde.score, Y, X.astype(np.longdouble), 1.0)


def test_smoothed_rejects_bad_input():
    kw = dict(bandwidth=0.1, n_kernel=4)
    raises(ValueError, "^bandwidth: must be >= 0", ledkde.smoothed_score, Y, X, 1.0, bandwidth=-1, n_kernel=2)
    raises(ValueError, "^n_kernel: must be at least 1", ledkde.smoothed_score, Y, X, 1.0, bandwidth=0.1, n_kernel=0)
    raises(ValueError, "^n_kernel: must be even", ledkde.smoothed_score, Y, X, 1.0, bandwidth=0.1, n_kernel=3,
           antithetic=True)
    raises(ValueError, "^kernel: expected one of", ledkde.smoothed_score, Y, X, 1.0, kernel="box", **kw)
    raises(ValueError, "^seed: must be in", ledkde.smoothed_score, Y, X, 1.0, seed=-1, **kw)
    raises(TypeError, "^seed: expected a non-negative integer", ledkde.smoothed_score, Y, X, 1.0, seed=1.0, **kw)


def test_sampler_rejects_bad_input():
    kw = dict(t_max=1.0, t_min=0.01, steps=5)
    raises(ValueError, "^t_min: must be below t_max", ledkde.sample, X, 2, t_max=1.0, t_min=2.0, steps=3)
    raises(ValueError, "^steps: must be at least 1", ledkde.sample, X, 2, t_max=1.0, t_min=0.1, steps=0)
    raises(ValueError, "^method: expected one of", ledkde.sample, X, 2, method="rk4", **kw)
    raises(ValueError, "^schedule: expected one of", ledkde.sample, X, 2, schedule="cosine", **kw)
    raises(ValueError, "^schedule: times must be strictly decreasing", ledkde.sample, X, 2, schedule=[1.0, 2.0])
    raises(ValueError, "^schedule: times must be finite and > 0", ledkde.sample, X, 2, schedule=[1.0, 0.0])
    raises(ValueError, "^bandwidth: expected 5 values", ledkde.sample, X, 2, bandwidth=np.ones(3), **kw)
    raises(ValueError, "^bandwidth \\(callable\\): values must be finite", ledkde.sample, X, 2,
           bandwidth=lambda t: -t, **kw)
    raises(ValueError, "^init: expected one of", ledkde.sample, X, 2, init="zeros", **kw)
    raises(ValueError, "^return_trajectory: step indices must lie in", ledkde.sample, X, 2,
           return_trajectory=[6], **kw)
    raises(ValueError, "^n_samples: must be at least 1", ledkde.sample, X, 0, **kw)
    raises(TypeError, "^progress: expected a callable", ledkde.sample, X, 2, progress=3, **kw)
    # Left out, t_min comes from the data's nearest-neighbour distance, which these points lack.
    raises(ValueError, "^data: all its points are the same point", ledkde.sample, X, 2, t_max=1.0)


def test_mixture_and_states_reject_misuse():
    mix = ledkde.Mixture(X.astype(np.float32))
    raises(TypeError, "^y: float64 queries with a float32 Mixture", ledkde.score, Y, mix, 1.0)
    raises(ValueError, "^log_weights/variances: give them when building", ledkde.score, Y.astype(np.float32), mix, 1.0,
           log_weights=np.zeros(5))
    raises(TypeError, "^dtype: float32 would lose precision", ledkde.Mixture, X, dtype=np.float32)
    a = ledkde.partial_state(Y, X, 1.0)
    b = ledkde.partial_state(Y + 1, X, 1.0)
    raises(ValueError, r"^states\[1\]: computed for other queries", ledkde.merge_states, [a, b])
    raises(ValueError, "^states: give at least one", ledkde.merge_states, [])
    raises(ValueError, "^outputs: expected one of", ledkde.evaluate, Y, X, 1.0, outputs=("gradient",))
