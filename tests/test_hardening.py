"""Edges of the API: each case ends as a clear error naming the argument or a right answer.

Every case here crashed, returned NaN or garbage, or allocated without bound before.
"""

import json
import subprocess
import sys

import numpy as np
import pytest

import ledkde

R = np.random.default_rng(0)
X = R.normal(size=(20, 3))
Y = X[:4] + 0.1


def raises(exc, match, fn, *a, **kw):
    with pytest.raises(exc, match=match):
        fn(*a, **kw)


# --------------------------------------------------------------------------- partial states
def test_states_are_checked_before_the_compiled_merge():
    s = ledkde.partial_state(Y, X, 1.0)
    raises(TypeError, r"^states\[0\]: expected a PassState", ledkde.merge_states, [3, s])
    raises(TypeError, r"^states: expected an iterable of PassState, got NoneType", ledkde.merge_states, None)
    raises(TypeError, "^state: expected a PassState", ledkde.finalize, 3)
    raises(TypeError, "^outputs: expected a name", ledkde.finalize, s, None)
    bad = ledkde.PassState(s.log_max[:2], s.sum, s.ent, s.score_num, s.log_mass, s.y, s.t)
    raises(ValueError, r"^states\[1\]: log_max must be a float64 array of shape \(4,\)", ledkde.merge_states, [s, bad])
    raises(ValueError, r"^state: log_max must be", ledkde.finalize, bad)
    bad = ledkde.PassState(s.log_max, s.sum, s.ent, s.score_num[:, :2], s.log_mass, s.y, s.t)
    raises(ValueError, r"^state: score_num must be a float64 array of shape \(4, 3\)", ledkde.finalize, bad)
    bad = ledkde.PassState(s.log_max, s.sum.astype(np.float32), s.ent, s.score_num, s.log_mass, s.y, s.t)
    raises(ValueError, "^state: sum must be a float64 array", ledkde.finalize, bad)
    other = ledkde.partial_state(Y, X, 2.0)
    raises(ValueError, r"^states\[1\]: computed for other queries or another time", ledkde.merge_states, [s, other])


def test_a_state_does_not_alias_the_callers_queries():
    y = Y.copy()
    s = ledkde.partial_state(y, X, 1.0)
    want = ledkde.finalize(s)["denoise"].copy()
    y += 100.0
    np.testing.assert_array_equal(ledkde.finalize(s)["denoise"], want)


def test_a_shard_without_weight_merges_as_the_identity():
    lw = R.normal(size=20)
    full = ledkde.evaluate(Y, X, 0.7, log_weights=lw,
                           outputs=("log_density", "score", "denoise", "entropy", "max_weight"))
    empty = ledkde.partial_state(Y, X[:5], 0.7, log_weights=np.full(5, -np.inf))
    parts = [ledkde.partial_state(Y, X[:12], 0.7, log_weights=lw[:12]), empty,
             ledkde.partial_state(Y, X[12:], 0.7, log_weights=lw[12:])]
    for order in (parts, parts[::-1], [empty] + parts):
        got = ledkde.finalize(ledkde.merge_states(order))
        for k, v in full.items():
            np.testing.assert_allclose(got[k], v, rtol=1e-12, atol=1e-12, err_msg=k)
    raises(ValueError, "^state: every shard had zero weight", ledkde.finalize, ledkde.merge_states([empty, empty]))
    raises(ValueError, r"^log_weights: expected shape \(5,\)", ledkde.partial_state, Y, X[:5], 0.7,
           log_weights=np.full(4, -np.inf))


# --------------------------------------------------------------------------- float range limits
def test_ranges_the_working_type_cannot_hold_are_refused_up_front():
    x32 = X.astype(np.float32)
    raises(ValueError, "^data: the squared distance of a point from the data's mean reaches .* float32 distances "
           "overflow; pass float64", ledkde.score, x32[:2] * 3e19, x32 * 3e19, 1.0)
    raises(ValueError, "^y: the squared distance of a query", ledkde.score, x32[:2] * 3e19, x32, 1.0)
    far = np.array([[1.3e5, 0, 0]], np.float32)
    raises(ValueError, "^t: 1e-29 is too small for queries and points up to 1.3e\\+05", ledkde.score, far,
           np.zeros((2, 3), np.float32), 1e-29)
    raises(ValueError, "^bandwidth: the kernel draws' squared length", ledkde.smoothed_score, x32[:2], x32, 1.0,
           bandwidth=1e20, n_kernel=4)
    raises(ValueError, "^bandwidth: the kernel draws' squared length .* float64", ledkde.smoothed_score, X[:2], X,
           1.0, bandwidth=1e160, n_kernel=4)
    raises(ValueError, "^t: the noise's squared length", ledkde.denoise, x32[:2], x32, 1e45, variances=np.ones(20))
    raises(ValueError, "^t_max: the starting noise's squared length", ledkde.sample, x32, 2, t_max=1e38,
           t_min=0.1, steps=3)
    raises(ValueError, "^data: .* float64 distances overflow", ledkde.score, X[:2], X * 1e200, 1.0)


def test_float64_computes_right_what_float32_refuses():
    # The same problems in float64: finite and equal to the reference.
    far = np.array([[1.3e5, 0, 0]])
    data = np.array([[0.0, 0, 0], [1.0, 0, 0]])
    got = ledkde.score(far, data, 1e-29)
    np.testing.assert_allclose(got, ledkde.reference.score(far, data, 1e-29), rtol=1e-12)
    big = X * 3e19
    got = ledkde.score(big[:2] + 1e19, big, 1e40)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ledkde.reference.score(big[:2] + 1e19, big, 1e40), rtol=1e-12)


def test_time_grid_with_far_end_points():
    g = ledkde.time_grid(1e300, 1e-280, 10)
    assert (g > 0).all() and (np.diff(g) < 0).all()
    np.testing.assert_allclose(np.log10(g), np.linspace(300, -280, 11), rtol=1e-12, atol=1e-9)
    raises(ValueError, "^steps: .* repeat times in float64", ledkde.time_grid, 1.0, 1.0 - 1e-15, 10, "uniform")
    raises(ValueError, "^steps: must be at most", ledkde.time_grid, 1.0, 0.1, 10**12)


# --------------------------------------------------------------------------- bounded resources
def test_absurd_sizes_are_refused_with_the_argument_named():
    raises(ValueError, "^threads: must be at most 4096", ledkde.score, Y, X, 1.0, threads=10**7)
    raises(ValueError, "^threads: must be at most 4096", ledkde.score, Y, X, 1.0, threads=2**31)
    raises(ValueError, r"^tile\[0\] \(tile_q\): must be at most", ledkde.score, Y, X, 1.0, tile=(2**40, 2**40))
    raises(ValueError, "^tile: tile_q x tile_n must be at most 16777216", ledkde.score, Y, X, 1.0, tile=(8192, 8192))
    raises(ValueError, "^n_samples: 1000000000000 samples need", ledkde.sample, X, 10**12, t_max=1.0, t_min=0.1,
           steps=3)


@pytest.mark.parametrize("args", [["--threads", "1000000000"], ["--steps", "1000000000000"],
                                  ["--n-samples", "1000000000000"]])
def test_the_command_line_gives_one_line_and_exit_2(tmp_path, args):
    np.save(tmp_path / "d.npy", X.astype(np.float32))
    res = subprocess.run([sys.executable, "-m", "ledkde", "sample", "--data", str(tmp_path / "d.npy"),
                          "--out", str(tmp_path / "o"), *args], capture_output=True, text=True)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert args[0].lstrip("-").replace("-", "_") in res.stderr


def test_the_command_line_refuses_lossy_npy_files(tmp_path):
    for name, arr, match in (("f128.npy", X.astype(np.longdouble), "float128"),
                             ("i16.npy", (X * 1000).astype(np.int16), "8-bit images")):
        if arr.dtype.itemsize <= 8:  # platforms whose long double is float64
            continue
        np.save(tmp_path / name, arr)
        res = subprocess.run([sys.executable, "-m", "ledkde", "sample", "--data", str(tmp_path / name),
                              "--out", str(tmp_path / "o")], capture_output=True, text=True)
        assert res.returncode == 2 and match in res.stderr and "Traceback" not in res.stderr
    np.save(tmp_path / "i16.npy", (X * 1000).astype(np.int16))
    res = subprocess.run([sys.executable, "-m", "ledkde", "sample", "--data", str(tmp_path / "i16.npy"),
                          "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert res.returncode == 2 and "8-bit images" in res.stderr


def test_float64_npy_stays_float64_in_the_main_job(tmp_path):
    data = np.random.default_rng(2).random((120, 16)) + 1e-9 * np.arange(16)
    np.save(tmp_path / "d.npy", data)
    res = subprocess.run([sys.executable, "-m", "ledkde", "sample", "--data", str(tmp_path / "d.npy"), "--steps", "5",
                          "--n-samples", "4", "--n-kernel", "4", "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "o" / "summary.json").read_text())["settings"]["n_train"] == 96


# --------------------------------------------------------------------------- toolkit gaps
def test_toolkit_arguments_are_checked():
    gm = ledkde.GaussianMixture(weights=[1.0], means=np.zeros((1, 2)), variances=[1.0])
    raises(ValueError, "^t: must be finite", gm.sample, 3, np.random.default_rng(0), t=float("nan"))
    raises(ValueError, "^t: must be >= 0", gm.sample, 3, np.random.default_rng(0), t=-1.0)
    raises(TypeError, "^rng: expected a numpy.random.Generator", gm.sample, 3, 0)
    raises(ValueError, "^data: all points are the same", ledkde.collapse_time, np.zeros((10, 3)))
    raises(ValueError, "^data: spread over .* beyond the float64 range", ledkde.collapse_time, X * 1e200)
    raises(ValueError, r"^plain_mse: expected shape \(2,\)", ledkde.effective_dataset_size, [1, 2], [1.0], 0.5)
    raises(ValueError, "^n_values: sizes must be finite, > 0 and increasing", ledkde.effective_dataset_size,
           [2, 1], [1.0, 0.5], 0.7)
    raises(ValueError, "^plain_mse: errors must be finite and > 0", ledkde.effective_dataset_size, [1, 2],
           [1.0, 0.0], 0.7)
    raises(TypeError, "^log_weights: dtype complex128 is not supported", ledkde.score, Y, X, 1.0,
           log_weights=np.zeros(20, complex))
    raises(TypeError, "^bandwidth \\(callable\\): must return a real number .* ndarray", ledkde.sample, X, 2,
           t_max=1.0, t_min=0.1, steps=3, bandwidth=lambda t: np.ones(3), n_kernel=2)
    raises(TypeError, "^bandwidth \\(callable\\): must return a real number .* str", ledkde.sample, X, 2,
           t_max=1.0, t_min=0.1, steps=3, bandwidth=lambda t: "a", n_kernel=2)
    raises(ValueError, "^dtype: the Mixture works in float32, not float64", ledkde.sample,
           ledkde.Mixture(X.astype(np.float32)), 2, t_max=1.0, t_min=0.1, steps=3, dtype=np.float64)
    raises(TypeError, "^outputs: expected a name", ledkde.evaluate, Y, X, 1.0, outputs=None)
    raises(TypeError, "^dtype: expected float32 or float64, got 'bogus'", ledkde.Mixture, X, dtype="bogus")
    raises(ValueError, "^held_out: contains NaN", ledkde.memorization, Y, X, held_out=np.full((3, 3), np.nan))
    raises(ValueError, "^samples: has dimension 2", ledkde.memorization, Y[:, :2], X)


def test_collapse_time_and_energy_distance_are_scale_covariant():
    t1 = ledkde.collapse_time(X)
    np.testing.assert_allclose(ledkde.collapse_time(X * 1e100), t1 * 1e200, rtol=1e-10)
    # X + 1e8 rounds the data themselves by up to ulp(1e8) / 2 = 7.5e-9 of their unit spread.
    np.testing.assert_allclose(ledkde.collapse_time(X + 1e8), t1, rtol=1e-7)
    a, b = X[:10], X[10:] + 0.5
    e = ledkde.energy_distance(a, b)
    # Far from the origin and far out in scale: the same number (it was -0.1 off at 1e8); at 1e8 the
    # points themselves are rounded by up to 7.5e-9 of their unit spread (6.7e-9 measured).
    np.testing.assert_allclose(ledkde.energy_distance(a + 1e8, b + 1e8), e, rtol=2e-8)
    np.testing.assert_allclose(ledkde.energy_distance(a * 1e200, b * 1e200), e * 1e200, rtol=1e-10)


# --------------------------------------------------------------------------- many kernel draws
@pytest.mark.parametrize("kw", [dict(antithetic=True), dict(), dict(orthogonal=True, antithetic=True),
                                dict(estimator="naive"), dict(variances=np.full(20, 0.1))])
def test_draws_beyond_one_pass_are_chunked_exactly(kw):
    """More draws than one pass holds (8192 rows) go through it in chunks: the same estimate."""
    y, m = Y[:3], 16386
    got = ledkde.smoothed_score(y, X, 0.3, bandwidth=0.5, n_kernel=m, return_error=True, threads=2, **kw)
    one = ledkde.smoothed_score(y, X, 0.3, bandwidth=0.5, n_kernel=m, return_error=True, threads=1, **kw)
    want = ledkde.reference.smoothed_score(y, X, 0.3, bandwidth=0.5, n_kernel=m, return_error=True, **kw)
    for a, b, c in zip(got, one, want):
        np.testing.assert_array_equal(a, b)  # thread-count independent
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-13)
    ld = ledkde.led_kde_log_density(y, X, 0.3, bandwidth=0.5, n_kernel=m, return_error=True, **kw)
    want = ledkde.reference.led_kde_log_density(y, X, 0.3, bandwidth=0.5, n_kernel=m, return_error=True, **kw)
    np.testing.assert_allclose(ld[0], want[0], rtol=1e-12)
    np.testing.assert_allclose(ld[1], want[1], rtol=1e-12)


def test_a_million_draws_of_one_query_stay_in_bounded_memory():
    code = ("import numpy as np, ledkde\n"
            "x = np.random.default_rng(0).normal(size=(20, 3))\n"
            "ledkde.smoothed_score(x[:1], x, 0.3, bandwidth=0.5, n_kernel=10**6)\n"
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1])\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    peak_mib = int(res.stdout.strip()) / 1024
    assert peak_mib < 400, f"peak {peak_mib:.0f} MiB (4 GB before the draws were chunked)"
    raises(ValueError, "^n_kernel: must be at most 1073741824", ledkde.smoothed_score, Y, X, 1.0, bandwidth=0.1,
           n_kernel=2**31)


# --------------------------------------------------------------------------- the reference
def test_the_reference_is_as_exact_as_the_engine():
    """Scores from coordinate differences: t = 1e-30 next to a point (was 1.4e-2 off) and data far from the
    origin (was 1.1e-7 off) are exact to rounding in both."""
    x = np.random.default_rng(0).normal(size=(5, 3))
    y = x[:1] + 1e-14
    exact = (x[0] - y) / 1e-30  # the nearest point holds all the weight
    for got in (ledkde.reference.score(y, x, 1e-30), ledkde.score(y, x, 1e-30)):
        np.testing.assert_allclose(got, exact, rtol=1e-12)
    xo = x + 1e8
    yo = xo[:2] + 0.3
    # The same problem moved back to the origin (exact shifts of representable numbers).
    want = ledkde.reference.score(yo - 1e8, xo - 1e8, 0.5)
    for got in (ledkde.reference.score(yo, xo, 0.5), ledkde.score(yo, xo, 0.5)):
        np.testing.assert_allclose(got, want, rtol=1e-13)
    sm = ledkde.reference.smoothed_score(yo, xo, 0.5, bandwidth=0.1, n_kernel=4)
    np.testing.assert_allclose(sm, ledkde.smoothed_score(yo, xo, 0.5, bandwidth=0.1, n_kernel=4), rtol=1e-10)


def test_the_command_line_scales_mostly_duplicated_data_by_their_distinct_points(tmp_path):
    # Half the rows are copies: the median distance to the nearest
    # *distinct* point gives the bandwidth and the distances their scale.
    x = np.random.default_rng(0).random((100, 8)).astype(np.float32)
    x[50:] = x[:50]
    x[25:50] = x[:25]
    np.save(tmp_path / "dup.npy", x)
    res = subprocess.run([sys.executable, "-m", "ledkde", "sample", "--data", str(tmp_path / "dup.npy"),
                          "--out", str(tmp_path / "o"), "--held-out", "0", "--steps", "20"],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    x64 = x.astype(np.float64)
    dist = np.sqrt(((x64[:, None] - x64[None]) ** 2).sum(-1))
    dist[dist == 0] = np.inf  # a point's copies (and itself) are passed over
    assert summary["settings"]["median_nn_distance"] == pytest.approx(np.median(dist.min(1)), rel=1e-6)


def test_threads_reach_the_preparation_of_the_mixture():
    raises(ValueError, "^threads: must be at least 1", ledkde.Mixture, X, threads=0)
    a = ledkde.score(Y, ledkde.Mixture(X, threads=1), 0.4)
    np.testing.assert_array_equal(a, ledkde.score(Y, X, 0.4, threads=2))
    raises(ValueError, "^threads: must be at most 4096", ledkde.nearest_neighbors, Y, X, threads=5000)
