"""The one call layer (ledkde._call.resolve): every compute function reads and checks
each argument once, and the data are prepared once per call."""

from collections import Counter

import numpy as np
import pytest

import ledkde
from ledkde import _checks, _device

rng = np.random.default_rng(0)
X = rng.standard_normal((300, 5))
Y = rng.standard_normal((7, 5))

CALLS = {
    "evaluate": lambda: ledkde.evaluate(Y, X, 0.5, outputs=("score", "entropy")),
    "score": lambda: ledkde.score(Y, X, 0.5),
    "partial_state": lambda: ledkde.partial_state(Y, X, 0.5),
    "smoothed_score": lambda: ledkde.smoothed_score(Y, X, 0.5, bandwidth=0.1, n_kernel=4),
    "led_kde_log_density": lambda: ledkde.led_kde_log_density(Y, X, 0.5, bandwidth=0.1, n_kernel=4),
    "nearest_neighbors": lambda: ledkde.nearest_neighbors(Y, X, 3),
    "sample": lambda: ledkde.sample(X, 4, t_max=2.0, t_min=0.01, steps=3),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_each_argument_is_read_once(name, monkeypatch):
    checked, looked_at, prepared = Counter(), Counter(), Counter()
    array2d, is_gpu, build = _checks.array2d, _device.is_gpu_array, ledkde.Mixture._build

    def count_check(arg, a, **kw):
        checked[arg] += 1
        return array2d(arg, a, **kw)

    def count_look(a):
        looked_at[id(a)] += 1
        return is_gpu(a)

    def count_build(self, *args):
        prepared["data"] += 1
        return build(self, *args)

    monkeypatch.setattr(_checks, "array2d", count_check)
    monkeypatch.setattr(_device, "is_gpu_array", count_look)
    monkeypatch.setattr(ledkde.Mixture, "_build", count_build)
    CALLS[name]()
    expected = {"data": 1} if name == "sample" else {"y": 1, "data": 1}
    assert dict(checked) == expected
    assert set(looked_at.values()) == {1}, "an input was asked twice whether it lives on a GPU"
    assert prepared["data"] == 1


def test_a_mixture_is_not_prepared_again(monkeypatch):
    mix = ledkde.Mixture(X)
    calls = []
    monkeypatch.setattr(ledkde.Mixture, "_build", lambda self, *a: calls.append(a))
    ledkde.score(Y, mix, 0.5)
    ledkde.smoothed_score(Y, mix, 0.5, bandwidth=0.1, n_kernel=4)
    ledkde.nearest_neighbors(Y, mix, 2)
    ledkde.memorization(Y, mix)
    ledkde.sample(mix, 3, t_max=2.0, t_min=0.01, steps=3)
    assert calls == []


def test_memorization_reads_its_samples_and_data_once(monkeypatch):
    names = Counter()
    array2d = _checks.array2d
    monkeypatch.setattr(_checks, "array2d", lambda arg, a, **kw: (names.update([arg]), array2d(arg, a, **kw))[1])
    ledkde.memorization(Y, X)
    assert names["data"] == 1 and names["samples"] == 1
