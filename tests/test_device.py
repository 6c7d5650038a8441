"""The device= argument and the CUDA backend.

Without a GPU (CI) these check the build and the dispatch errors; the GPU
tests are skipped there with the reason printed (pytest -ra).
"""

import os
import shutil
import subprocess

import numpy as np
import pytest

import ledkde
import ledkde.reference as ref
from helpers import make_problem
from ledkde import _device

gpu = pytest.mark.skipif(not ledkde.cuda_available(), reason="no usable CUDA device on this machine")


def gpu_listed():
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return False
    run = subprocess.run([smi, "-L"], capture_output=True, text=True)
    return run.returncode == 0 and "GPU" in run.stdout


def test_cuda_module_is_built_when_nvcc_is_present_and_asked_for():
    # The default build (LEDKDE_CUDA=AUTO) compiles the CUDA module where nvcc and a GPU are
    # present; CI asks for it without a GPU (SKBUILD_CMAKE_DEFINE=LEDKDE_CUDA=ON), so that it
    # must compile and import there too.
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc on this machine, so no CUDA module is built")
    asked = "LEDKDE_CUDA=ON" in os.environ.get("SKBUILD_CMAKE_DEFINE", "")
    if not (asked or gpu_listed()):
        pytest.skip("nvcc but no GPU and LEDKDE_CUDA=ON not asked for: the CUDA module is left out")
    cuda = _device.cuda_module()
    assert cuda is not None, "nvcc is present but ledkde._cuda was not built"
    assert cuda.device_count() >= 0
    assert ledkde.cuda_available() == (cuda.device_count() > 0)


def test_device_argument_is_checked():
    y, data, _, _ = make_problem(1, 4, 20, 3, 0.1)
    for bad in ("gpu", "cuda:x", "CPU"):
        with pytest.raises(ValueError, match="^device: expected"):
            ledkde.score(y, data, 0.1, device=bad)
    with pytest.raises(TypeError, match="^device: expected"):
        ledkde.score(y, data, 0.1, device=0)


@pytest.mark.skipif(ledkde.cuda_available(), reason="a CUDA device is present")
def test_cuda_without_a_device_says_why():
    y, data, _, _ = make_problem(2, 4, 20, 3, 0.1)
    for fn, kw in ((ledkde.score, {}), (ledkde.smoothed_score, dict(bandwidth=0.1, n_kernel=2)),
                   (ledkde.evaluate, {}), (ledkde.partial_state, {})):
        with pytest.raises(RuntimeError, match="^device: 'cuda'"):
            fn(y, data, 0.1, device="cuda", **kw)
    with pytest.raises(RuntimeError, match="^device: 'cuda'"):
        ledkde.sample(data, 2, t_max=1.0, t_min=0.1, steps=2, device="cuda")


def test_cpu_and_auto_agree_on_numpy_inputs():
    y, data, lw, var = make_problem(3, 6, 50, 4, 0.2, weights=True, variances=True)
    a = ledkde.evaluate(y, data, 0.2, log_weights=lw, variances=var, device="cpu")
    b = ledkde.evaluate(y, data, 0.2, log_weights=lw, variances=var)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_gpu_array_detection():
    class FakeCuda:
        __cuda_array_interface__ = {}

    class FakeDlpack:
        def __init__(self, kind):
            self.kind = kind

        def __dlpack_device__(self):
            return (self.kind, 0)

    assert _device.is_gpu_array(FakeCuda())
    assert _device.is_gpu_array(FakeDlpack(2))
    assert not _device.is_gpu_array(FakeDlpack(1))  # kDLCPU
    assert not _device.is_gpu_array(np.zeros(3))


# --------------------------------------------------------------------------- with a GPU
ALL = ("log_density", "score", "denoise", "entropy", "max_weight")


@gpu
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 1e-4)])
@pytest.mark.parametrize("d", [1, 7, 64, 784, 3072])
def test_gpu_evaluate_matches_reference(dtype, rtol, d):
    y, data, lw, var = make_problem(4, 33, 700, d, 0.05, weights=True, variances=True)
    y, data = y.astype(dtype), data.astype(dtype)
    got = ledkde.evaluate(y, data, 0.05, outputs=ALL, log_weights=lw, variances=var, device="cuda")
    want = ref.evaluate(y.astype(np.float64), data.astype(np.float64), 0.05, log_weights=lw, variances=var)
    scale = np.ptp(np.vstack([y, data])) / 0.05
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=rtol * scale)
    np.testing.assert_allclose(got["log_density"], want["log_density"], rtol=rtol, atol=rtol)
    np.testing.assert_allclose(got["max_weight"], want["max_weight"], rtol=0, atol=50 * rtol)


@gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gpu_smoothed_and_sampler_match_cpu(dtype):
    y, data, _, _ = make_problem(5, 20, 300, 10, 0.1)
    y, data = y.astype(dtype), data.astype(dtype)
    kw = dict(bandwidth=0.2, n_kernel=6, antithetic=True, seed=3)
    tol = 1e-9 if dtype == np.float64 else 1e-3
    np.testing.assert_allclose(ledkde.smoothed_score(y, data, 0.1, device="cuda", **kw),
                               ledkde.smoothed_score(y, data, 0.1, device="cpu", **kw), rtol=tol, atol=tol)
    for method in ("euler_maruyama", "ode_heun"):
        skw = dict(t_max=2.0, t_min=0.01, steps=20, method=method, bandwidth=0.05, n_kernel=2, seed=4)
        np.testing.assert_allclose(ledkde.sample(data, 16, device="cuda", **skw),
                                   ledkde.sample(data, 16, device="cpu", **skw), rtol=tol, atol=10 * tol)


@gpu
def test_gpu_shards_merge_across_devices():
    y, data, _, _ = make_problem(6, 10, 2000, 8, 0.1)
    whole = ledkde.evaluate(y, data, 0.1, outputs=ALL, device="cpu")
    states = [ledkde.partial_state(y, part, 0.1, device=f"cuda:{i % _device.cuda_module().device_count()}")
              for i, part in enumerate(np.array_split(data, 3))]
    merged = ledkde.finalize(ledkde.merge_states(states))
    for k in ALL:
        np.testing.assert_allclose(merged[k], whole[k], rtol=1e-10, atol=1e-10)


@gpu
def test_cupy_inputs_give_cupy_outputs():
    cp = pytest.importorskip("cupy")
    y, data, _, _ = make_problem(7, 5, 100, 4, 0.1)
    out = ledkde.score(cp.asarray(y), cp.asarray(data), 0.1)
    assert isinstance(out, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(out), ledkde.score(y, data, 0.1, device="cpu"), rtol=1e-10, atol=1e-10)


@gpu
@pytest.mark.parametrize("t", [0.01, 10.0])
def test_gpu_logit_tolerance_keeps_the_reference_tolerances(t):
    # The GPU pass reads the Mixture's logit_tolerance too (test_logit_tolerance.py for
    # the CPU): float32 results within the float32 tolerances, at small t (exact logits
    # near the maximum) and at large t (float32 logits kept).
    r = np.random.default_rng(11)
    data = (r.random((3000, 784)) ** 2).astype(np.float32)
    y = (data[r.integers(0, 3000, 160)] + np.sqrt(t) * r.normal(size=(160, 784))).astype(np.float32)
    got = ledkde.evaluate(y, ledkde.Mixture(data, logit_tolerance=1e-2), t, outputs=ALL, device="cuda")
    want = ref.evaluate(y.astype(np.float64), data.astype(np.float64), t)
    scale = np.ptp(np.vstack([y, data])) / t
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(got["log_density"], want["log_density"], rtol=1e-4, atol=1e-4)


@gpu
def test_gpu_default_is_the_strict_rule():
    # A float32 Mixture's default tolerance (3e-3) stays on the CPU: its CUDA copy uses
    # the strict rule, bit for bit the same pass as an explicit "strict".
    r = np.random.default_rng(12)
    data = (r.random((3000, 784)) ** 2).astype(np.float32)
    y = (data[r.integers(0, 3000, 160)] + np.sqrt(10.0) * r.normal(size=(160, 784))).astype(np.float32)
    got = ledkde.evaluate(y, ledkde.Mixture(data), 10.0, outputs=ALL, device="cuda")
    want = ledkde.evaluate(y, ledkde.Mixture(data, logit_tolerance="strict"), 10.0, outputs=ALL, device="cuda")
    for k in ALL:
        np.testing.assert_array_equal(got[k], want[k])


# Tolerances as in test_scores.py: float64 1e-10 of each quantity's scale;
# float32 1e-4 x ptp(y, data)/t for the score and 1e-4 relative for log p.
def _check_against_reference(y, data, t, dtype, lw=None, var=None):
    y, data = y.astype(dtype), data.astype(dtype)
    got = ledkde.evaluate(y, data, t, outputs=ALL, log_weights=lw, variances=var, device="cuda")
    want = ref.evaluate(y.astype(np.float64), data.astype(np.float64), t, log_weights=lw, variances=var)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    both = np.vstack([y.astype(np.float64), data.astype(np.float64)])
    scale = np.ptp(both - both.mean(0)) / t  # spread of the points, not their offset
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=tol * scale)
    np.testing.assert_allclose(got["log_density"], want["log_density"], rtol=tol, atol=tol)
    np.testing.assert_allclose(got["max_weight"], want["max_weight"], rtol=0, atol=50 * tol)


@gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [2, 16, 100])
def test_gpu_many_chunks_far_from_origin_small_t(dtype, d):
    # N above the GPU's component chunk (16384), queries at 1e-3 of the
    # nearest-neighbour scale (the exact recompute of near-maximum logits
    # decides the weights), data and queries 1e3 away from the origin.
    r = np.random.default_rng(11)
    data = r.normal(size=(40000, d)) + 1e3 * r.normal(size=d)
    y = data[r.integers(0, 40000, 37)] + 1e-3 * r.normal(size=(37, d))
    lw, var = r.normal(size=40000), r.uniform(0, 1e-4, size=40000)
    # The reference on the numbers as rounded to the working dtype.
    y, data = y.astype(dtype).astype(np.float64), data.astype(dtype).astype(np.float64)
    _check_against_reference(y, data, 1e-4, dtype)
    _check_against_reference(y, data, 1e-4, dtype, lw=lw, var=var)


@gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gpu_many_equal_maxima(dtype):
    # 128 points repeated 60 times: at small t every query has 60 components of
    # (nearly) equal largest logit, all handled by one thread of the weights
    # kernel (more than it keeps in registers, so the recompute path runs too).
    r = np.random.default_rng(12)
    base = r.normal(size=(128, 24))
    data = np.tile(base, (60, 1))
    y = base[r.integers(0, 128, 50)] + 1e-2 * r.normal(size=(50, 24))
    _check_against_reference(y, data, 1e-3, dtype)


@gpu
def test_gpu_zero_weight_components_and_rows():
    r = np.random.default_rng(13)
    data = r.normal(size=(3000, 40))
    lw = r.normal(size=3000)
    lw[:2000] = -np.inf  # whole chunks of zero weight
    y = r.normal(size=(20, 40))
    for dtype in (np.float64, np.float32):
        _check_against_reference(y, data, 0.5, dtype, lw=lw)


@gpu
def test_gpu_results_repeat_exactly():
    # Fixed reduction order: the same call twice gives the same bits.
    y, data, _, _ = make_problem(14, 300, 20000, 64, 0.05)
    a = ledkde.evaluate(y.astype(np.float32), data.astype(np.float32), 0.05, outputs=ALL, device="cuda")
    b = ledkde.evaluate(y.astype(np.float32), data.astype(np.float32), 0.05, outputs=ALL, device="cuda")
    for k in ALL:
        np.testing.assert_array_equal(a[k], b[k])


@gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_gpu_arrays_are_used_in_place(dtype, monkeypatch):
    cp = pytest.importorskip("cupy")
    y, data, _, _ = make_problem(15, 40, 3000, 32, 0.1)
    y, data = y.astype(dtype), data.astype(dtype)
    mix = ledkde.Mixture(data)
    want = ledkde.evaluate(y, mix, 0.1, outputs=ALL, device="cpu")
    y_gpu = cp.asarray(y)
    before = y_gpu.copy()
    # The queries never travel to the host: make any such copy an error.
    on_gpu = _device.is_gpu_array

    def no_gpu_to_host(name, a):
        assert not on_gpu(a), f"{name} was copied to the host"
        return a

    monkeypatch.setattr(_device, "to_host", no_gpu_to_host)
    got = ledkde.evaluate(y_gpu, mix, 0.1, outputs=ALL)
    tol = 1e-10 if dtype == "float64" else 1e-4
    scale = np.ptp(np.vstack([y, data])) / 0.1
    for k in ALL:
        assert isinstance(got[k], cp.ndarray) and got[k].dtype == np.dtype(dtype)
    np.testing.assert_allclose(cp.asnumpy(got["score"]), want["score"], rtol=0, atol=tol * scale)
    np.testing.assert_allclose(cp.asnumpy(got["log_density"]), want["log_density"], rtol=tol, atol=tol)
    np.testing.assert_allclose(cp.asnumpy(got["denoise"]), want["denoise"], rtol=0, atol=tol * scale * 0.1)
    cp.testing.assert_array_equal(y_gpu, before)  # input untouched
    # Fortran order and a lossless dtype conversion happen on the device too.
    got_f = ledkde.score(cp.asfortranarray(y_gpu), mix, 0.1)
    cp.testing.assert_array_equal(got_f, got["score"])
    sm = ledkde.smoothed_score(y_gpu, mix, 0.1, bandwidth=0.05, n_kernel=4, seed=2)
    sm_cpu = ledkde.smoothed_score(y, mix, 0.1, bandwidth=0.05, n_kernel=4, seed=2, device="cpu")
    assert isinstance(sm, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(sm), sm_cpu, rtol=0, atol=tol * scale)


@gpu
def test_gpu_array_errors_name_the_argument():
    cp = pytest.importorskip("cupy")
    y, data, _, _ = make_problem(16, 5, 100, 6, 0.1)
    mix = ledkde.Mixture(data.astype(np.float32))
    bad = cp.asarray(y, dtype=np.float32)
    bad[1, 2] = cp.nan
    with pytest.raises(ValueError, match="^y: contains NaN"):
        ledkde.score(bad, mix, 0.1)
    with pytest.raises(ValueError, match="^y: has dimension 5"):
        ledkde.score(cp.zeros((3, 5), dtype=np.float32), mix, 0.1)
    with pytest.raises(TypeError, match="^y: dtype complex64"):
        ledkde.score(cp.zeros((3, 6), dtype=np.complex64), mix, 0.1)
    with pytest.raises(TypeError, match="^y: float64 queries with a float32 Mixture"):
        ledkde.score(cp.zeros((3, 6)), mix, 0.1)


@gpu
def test_torch_cuda_tensors_are_accepted():
    torch = pytest.importorskip("torch")
    cp = pytest.importorskip("cupy")
    y, data, _, _ = make_problem(17, 12, 500, 10, 0.1)
    got = ledkde.score(torch.from_numpy(y).cuda(), torch.from_numpy(data).cuda(), 0.1)
    assert isinstance(got, cp.ndarray)
    np.testing.assert_allclose(cp.asnumpy(got), ledkde.score(y, data, 0.1, device="cpu"), rtol=1e-10, atol=1e-10)


def test_set_cuda_tf32_checks_its_argument():
    with pytest.raises(TypeError, match="^enabled: expected True or False"):
        ledkde.set_cuda_tf32("yes")


@gpu
def test_tf32_mode_changes_only_the_weighted_sums():
    y, data, _, _ = make_problem(18, 200, 5000, 96, 0.1)
    y, data = y.astype(np.float32), data.astype(np.float32)
    exact = ledkde.evaluate(y, data, 0.1, outputs=ALL, device="cuda")
    assert ledkde.set_cuda_tf32(True) is False
    try:
        fast = ledkde.evaluate(y, data, 0.1, outputs=ALL, device="cuda")
    finally:
        assert ledkde.set_cuda_tf32(False) is True
    want = ref.evaluate(y.astype(np.float64), data.astype(np.float64), 0.1)
    scale = np.ptp(np.vstack([y, data])) / 0.1
    err = np.abs(fast["score"] - want["score"]).max() / scale
    # TF32 rounds P and M to 11 significant bits: the stated accuracy is 1e-3 of
    # the score's scale; the logits are untouched.
    assert 1e-7 < err < 1e-3, err
    np.testing.assert_array_equal(fast["log_density"], exact["log_density"])
    np.testing.assert_array_equal(fast["max_weight"], exact["max_weight"])
    again = ledkde.evaluate(y, data, 0.1, outputs=ALL, device="cuda")
    np.testing.assert_array_equal(again["score"], exact["score"])


@gpu
def test_sampler_with_gpu_data_writes_gpu_samples():
    cp = pytest.importorskip("cupy")
    _, data, _, _ = make_problem(19, 1, 400, 12, 0.1)
    data = data.astype(np.float32)
    kw = dict(t_max=2.0, t_min=0.01, steps=10, seed=5, return_trajectory=[0, 5, 10])
    s_gpu, tr_gpu = ledkde.sample(cp.asarray(data), 300, **kw)
    s_np, tr_np = ledkde.sample(data, 300, device="cuda", **kw)
    assert isinstance(s_gpu, cp.ndarray) and isinstance(tr_gpu, cp.ndarray)
    assert isinstance(s_np, np.ndarray)
    # Same run, only where the results are written differs.
    np.testing.assert_array_equal(cp.asnumpy(s_gpu), s_np)
    np.testing.assert_array_equal(cp.asnumpy(tr_gpu), tr_np)


def test_gpu_array_checks_name_the_argument():
    # _checks.gpu_array2d runs on CuPy arrays; NumPy has the same interface,
    # so its messages are checked here without a GPU.
    from ledkde import _checks
    ok = np.zeros((3, 4), dtype=np.float32)
    assert _checks.gpu_array2d("y", ok, np, d=4) is ok
    cases = [
        (np.zeros((3, 4), dtype=np.complex64), TypeError, "^y: dtype complex64 is not supported"),
        (np.zeros(4, dtype=np.float32), ValueError, r"^y: expected a 2-D array"),
        (np.zeros((3, 0), dtype=np.float32), ValueError, "^y: the dimension d"),
        (np.zeros((3, 5), dtype=np.float32), ValueError, "^y: has dimension 5, but the data have dimension 4"),
        (np.array([[0.0, np.inf, 0.0, 0.0]]), ValueError, "^y: contains NaN or infinite values"),
        (np.full((1, 4), 2**60, dtype=np.int64), TypeError, r"^y: integers above 2\*\*53"),
    ]
    for arr, exc, msg in cases:
        with pytest.raises(exc, match=msg):
            _checks.gpu_array2d("y", arr, np, d=4)


@gpu
@pytest.mark.parametrize("estimator,anti,orth", [(e, a, o) for e in ("naive", "control") for a in (False, True)
                                                 for o in (False, True)])
@pytest.mark.parametrize("d", [3, 40])
def test_gpu_estimators_and_errors_match_reference(estimator, anti, orth, d):
    # Every estimator on the GPU (direct pass for d <= 8, tiled above) against the
    # float64 reference, with per-component variances (the pilot row) and the
    # standard errors; and the sampler's per-step errors against the CPU's.
    y, data, lw, var = make_problem(6, 12, 200, d, 0.05, weights=True, variances=True)
    kw = dict(bandwidth=0.1, n_kernel=6, estimator=estimator, antithetic=anti, orthogonal=orth, seed=5,
              log_weights=lw, variances=var, return_error=True)
    for fn in ("smoothed_score", "led_kde_log_density"):
        got, got_se = getattr(ledkde, fn)(y, data, 0.05, device="cuda", **kw)
        want, want_se = getattr(ref, fn)(y, data, 0.05, **kw)
        scale = np.abs(want).max() + 1.0
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-9 * scale)
        np.testing.assert_allclose(got_se, want_se, rtol=0, atol=1e-8 * scale)
    skw = dict(t_max=2.0, t_min=0.01, steps=10, bandwidth=0.1, n_kernel=4, estimator=estimator,
               antithetic=anti, orthogonal=orth, seed=4, return_error=True)
    xg, eg = ledkde.sample(data, 9, device="cuda", **skw)
    xc, ec = ledkde.sample(data, 9, device="cpu", **skw)
    np.testing.assert_allclose(xg, xc, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(eg, ec, rtol=1e-6, atol=1e-12)


def test_set_cuda_prune_checks_its_argument_and_is_off_by_default():
    with pytest.raises(TypeError, match="^enabled: expected True or False"):
        ledkde.set_cuda_prune(1)
    m = _device.cuda_module()
    if m is not None:  # off until the GPU's pruned pass has run on a device
        assert m.prune_enabled() is False


# The GPU's certified pruning (cuda/prune_cuda.cu, opt-in: set_cuda_prune), by the
# CPU's rule: results within the dense pass's tolerances of the NumPy reference.
def _pruned_on_gpu(fn):
    m = _device.cuda_module()
    m.prune_counts(True)
    assert ledkde.set_cuda_prune(True) is False
    try:
        out = fn()
    finally:
        assert ledkde.set_cuda_prune(False) is True
    return out, m.prune_counts(True)


def _assert_close_to_reference(got, y, data, t, dtype):
    want = ref.evaluate(y.astype(np.float64), data.astype(np.float64), t)
    tol = 1e-10 if dtype == np.float64 else 1e-4
    both = np.vstack([y.astype(np.float64), data.astype(np.float64)])
    scale = np.ptp(both - both.mean(0)) / t
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=tol * scale)
    np.testing.assert_allclose(got["denoise"], want["denoise"], rtol=0, atol=tol * scale * t)
    np.testing.assert_allclose(got["log_density"], want["log_density"], rtol=tol, atol=tol)
    np.testing.assert_allclose(got["entropy"], want["entropy"], rtol=0, atol=50 * tol)
    np.testing.assert_allclose(got["max_weight"], want["max_weight"], rtol=0, atol=50 * tol)


@gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gpu_pruned_pass_matches_reference_at_small_t(dtype):
    r = np.random.default_rng(21)
    data = (r.random((6000, 160)) ** 2).astype(dtype)  # pruning needs d >= 160 (_mixture.PRUNE_MIN_DIM)
    t = 2.5e-3  # queries 0.05 per coordinate from their point, about a tenth of the nearest-neighbour distance
    y = (data[r.integers(0, 6000, 300)] + np.sqrt(t) * r.normal(size=(300, 160))).astype(dtype)
    mix = ledkde.Mixture(data)
    assert mix.pruning
    dense = ledkde.evaluate(y, mix, t, outputs=ALL, device="cuda")
    (got, again), (considered, computed) = _pruned_on_gpu(
        lambda: [ledkde.evaluate(y, mix, t, outputs=ALL, device="cuda") for _ in range(2)])
    assert considered == 2 * 300 * 6000
    assert computed < 0.05 * considered, (computed, considered)  # most components skipped
    _assert_close_to_reference(got, y, data, t, dtype)
    _assert_close_to_reference(dense, y, data, t, dtype)
    for k in ALL:  # fixed orders: the same bits on every run
        np.testing.assert_array_equal(got[k], again[k])


@gpu
def test_gpu_pruned_pass_goes_dense_at_large_t():
    # Queries far from the data (t above its variance): the probe finds most rows
    # near many components and the whole pass takes the dense route, bit for bit.
    r = np.random.default_rng(22)
    data = (r.random((6000, 160)) ** 2).astype(np.float32)
    y = (data[r.integers(0, 6000, 200)] + 3.0 * r.normal(size=(200, 160))).astype(np.float32)
    mix = ledkde.Mixture(data)
    dense = ledkde.evaluate(y, mix, 9.0, outputs=ALL, device="cuda")
    got, (considered, computed) = _pruned_on_gpu(lambda: ledkde.evaluate(y, mix, 9.0, outputs=ALL, device="cuda"))
    assert considered == computed == 200 * 6000
    for k in ALL:
        np.testing.assert_array_equal(got[k], dense[k])


@gpu
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gpu_pruned_pass_sends_crowded_rows_dense(dtype):
    # 2000 copies of one point: queries near it keep more than a quarter of the
    # components as candidates and go through the dense pass, the others are
    # pruned; both kinds in one call, each row's state put back in its place.
    r = np.random.default_rng(23)
    data = (r.random((6000, 160)) ** 2).astype(dtype)
    data[::3] = data[0]
    t = 1e-3
    others = 3 * r.integers(0, 2000, 160) + 1  # never a copy
    near = data[np.r_[np.zeros(40, dtype=int), others]]
    y = (near + np.sqrt(t) * r.normal(size=near.shape)).astype(dtype)
    mix = ledkde.Mixture(data)
    got, (considered, computed) = _pruned_on_gpu(lambda: ledkde.evaluate(y, mix, t, outputs=ALL, device="cuda"))
    assert considered == 200 * 6000
    assert 40 * 6000 <= computed < 0.5 * considered, (computed, considered)
    _assert_close_to_reference(got, y, data, t, dtype)


@gpu
def test_gpu_pruned_sampler_and_smoothed_match_cpu():
    # The CPU prunes by the same rule: a whole run (large t dense, small t pruned)
    # and a smoothed score agree as they do without pruning.
    r = np.random.default_rng(24)
    data = r.random((5000, 160)) ** 2
    mix = ledkde.Mixture(data)
    skw = dict(t_max=2.0, t_min=1e-4, steps=30, bandwidth=0.0, seed=6)
    y = data[r.integers(0, 5000, 20)] + 0.01 * r.normal(size=(20, 160))
    kw = dict(bandwidth=0.02, n_kernel=6, antithetic=True, seed=3)
    (gpu_samples, gpu_smooth), (considered, computed) = _pruned_on_gpu(
        lambda: (ledkde.sample(mix, 32, device="cuda", **skw), ledkde.smoothed_score(y, mix, 1e-4, device="cuda", **kw)))
    assert computed < considered
    np.testing.assert_allclose(gpu_samples, ledkde.sample(mix, 32, device="cpu", **skw), rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(gpu_smooth, ledkde.smoothed_score(y, mix, 1e-4, device="cpu", **kw), rtol=1e-9,
                               atol=1e-9 * np.abs(gpu_smooth).max())
