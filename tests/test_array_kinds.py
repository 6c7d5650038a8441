"""A backend returns what it was given: CPU arrays that speak DLPack come back as their own kind."""

import sys
import types

import numpy as np
import pytest

import ledkde

R = np.random.default_rng(4)
DATA = R.normal(size=(30, 3))
Y = DATA[:5] + 0.1


def fake_module():
    """A minimal DLPack array library (as PyTorch or JAX are, for CPU arrays)."""
    mod = types.ModuleType("fakearrays")

    class FakeArray:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return self.a if dtype is None else self.a.astype(dtype)

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    FakeArray.__module__ = "fakearrays"
    mod.FakeArray = FakeArray
    mod.from_dlpack = lambda x: FakeArray(np.from_dlpack(x))
    return mod


@pytest.fixture
def fake():
    mod = fake_module()
    sys.modules["fakearrays"] = mod
    yield mod
    del sys.modules["fakearrays"]


def test_dlpack_cpu_arrays_come_back_as_their_kind(fake):
    y = fake.FakeArray(Y)
    for got, want in ((ledkde.score(y, DATA, 0.5), ledkde.score(Y, DATA, 0.5)),
                      (ledkde.smoothed_score(y, DATA, 0.5, bandwidth=0.1, n_kernel=4),
                       ledkde.smoothed_score(Y, DATA, 0.5, bandwidth=0.1, n_kernel=4)),
                      (ledkde.sample(fake.FakeArray(DATA), 4, t_max=1.0, t_min=0.01, steps=5),
                       ledkde.sample(DATA, 4, t_max=1.0, t_min=0.01, steps=5))):
        assert isinstance(got, fake.FakeArray)
        np.testing.assert_array_equal(got.a, want)
    ev = ledkde.evaluate(y, DATA, 0.5, outputs=("score", "entropy"))
    assert all(isinstance(v, fake.FakeArray) for v in ev.values())
    nb = ledkde.nearest_neighbors(y, DATA, 2)
    assert isinstance(nb.distances, fake.FakeArray) and isinstance(nb.indices, fake.FakeArray)
    np.testing.assert_array_equal(nb.indices.a, ledkde.nearest_neighbors(Y, DATA, 2).indices)
    # NumPy in, NumPy out.
    assert type(ledkde.score(Y, DATA, 0.5)) is np.ndarray


def test_pytorch_cpu_tensors_in_give_tensors_out():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed")
    y = torch.from_numpy(Y)
    got = ledkde.score(y, torch.from_numpy(DATA), 0.5)
    assert isinstance(got, torch.Tensor) and got.dtype == torch.float64
    np.testing.assert_array_equal(got.numpy(), ledkde.score(Y, DATA, 0.5))
    with pytest.raises(TypeError, match="^y: cannot be read as a numeric array"):
        ledkde.score(y.clone().requires_grad_(True), DATA, 0.5)
