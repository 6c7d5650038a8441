"""What several test modules share: the problem generator and the comparison with the reference."""

import numpy as np

import ledkde
import ledkde.reference as ref

ALL = ("log_density", "score", "denoise", "entropy", "max_weight")

def make_problem(seed, q, n, d, t_scale, *, weights=False, variances=False, offset=0.0):
    """Queries near the data at distance ~sqrt(t), data of unit scale, optional mixture parts."""
    r = np.random.default_rng(seed)
    data = r.normal(size=(n, d)) + offset
    j = r.integers(0, n, size=q)
    y = data[j] + np.sqrt(t_scale) * r.normal(size=(q, d))
    lw = r.normal(size=n) * 2 if weights else None
    var = r.uniform(0, 2 * t_scale, size=n) if variances else None
    return y, data, lw, var


RTOL = {np.float64: 1e-10, np.float32: 1e-4}


def scale_of(y, data, t, var):
    """Natural scale of the score: largest |mu - y| / v over the problem."""
    return (np.ptp(np.vstack([y, data])) + 1e-300) / t


def check_against_reference(y, data, t, lw, var, dtype, tile=None, prepared=False, logit_tolerance=None):
    # prepared: through a Mixture built first (it lays float32 data out for the
    # built-in tile products whatever the number of queries; a one-shot call
    # with few queries uses BLAS); logit_tolerance: that Mixture's.
    yc, dc = y.astype(dtype), data.astype(dtype)
    if prepared or logit_tolerance is not None:
        mix = ledkde.Mixture(dc, log_weights=lw, variances=var, logit_tolerance=logit_tolerance)
        got = ledkde.evaluate(yc, mix, t, outputs=ALL, tile=tile)
    else:
        got = ledkde.evaluate(yc, dc, t, outputs=ALL, log_weights=lw, variances=var, tile=tile)
    want = ref.evaluate(yc.astype(np.float64), dc.astype(np.float64), t, log_weights=lw, variances=var)
    rtol = RTOL[dtype]
    for k in ALL:
        assert got[k].dtype == dtype, k
    s_scale = scale_of(yc, dc, t, var)
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=rtol * s_scale)
    # The denoiser is y + t s: its error is t times the score's.
    np.testing.assert_allclose(got["denoise"], want["denoise"], rtol=0,
                               atol=rtol * (t * s_scale + np.abs(yc).max()))
    # log p: relative to its own size (float32 output rounding is 6e-8 of it).
    np.testing.assert_allclose(got["log_density"], want["log_density"], rtol=rtol, atol=rtol)
    # Entropy is in [0, log N], max weight in [1/N, 1]: absolute tolerances.
    n = dc.shape[0]
    np.testing.assert_allclose(got["entropy"], want["entropy"], rtol=0, atol=rtol * 50 * (1 + np.log(n)))
    np.testing.assert_allclose(got["max_weight"], want["max_weight"], rtol=0, atol=rtol * 50)
