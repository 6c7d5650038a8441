"""The device= argument and the CUDA backend.

Without a GPU (CI) these check the build and the dispatch errors; the GPU
tests are skipped there with the reason printed (pytest -ra).
"""

import shutil

import numpy as np
import pytest

import ledkde
import ledkde.reference as ref
from conftest import make_problem
from ledkde import _device

gpu = pytest.mark.skipif(not ledkde.cuda_available(), reason="no usable CUDA device on this machine")


def test_cuda_module_is_built_when_nvcc_is_present():
    # CI has nvcc but no GPU: the CUDA module must still compile and import.
    if shutil.which("nvcc") is None:
        pytest.skip("no nvcc on this machine, so no CUDA module is built")
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
