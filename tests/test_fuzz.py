"""A property-based fuzz of the public API: any argument may be replaced by a bad value.

The property: a call either returns finite results, or raises ValueError / TypeError
whose message begins with the name of an argument ("name: ..."). Never another
exception, a crash, a hang or a NaN. The short form runs in CI; LEDKDE_FUZZ=N runs N
examples per function (LEDKDE_FUZZ=3000: about a minute on 2 cores; 15000: five).
"""

import os
import re

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledkde

EXAMPLES = int(os.environ.get("LEDKDE_FUZZ", "60"))
R = np.random.default_rng(5)
DATA = R.normal(size=(12, 3))
Y = DATA[:4] + 0.2

# Bad values of every kind: shapes, dtypes, special numbers, absurd sizes, other types.
BAD_ARRAYS = [None, "abc", 3, np.zeros(3), np.zeros((2, 3, 1)), np.zeros((0, 3)), np.zeros((4, 0)),
              np.zeros((4, 5)), np.full((4, 3), np.nan), np.full((4, 3), np.inf), np.full((4, 3), 1e300),
              np.ones((4, 3), dtype=complex), np.ones((4, 3), dtype=object), np.ones((4, 3), dtype=bool),
              np.ones((4, 3), dtype=np.float16), np.ones((4, 3), dtype=np.int64) * 2**60, [[1, 2], [3]],
              DATA.astype(np.float32) * 1e19, np.ones((4, 3), dtype="datetime64[s]")]
BAD_SCALARS = [None, "1", -1.0, 0.0, np.nan, np.inf, -np.inf, 1e-320, 1e308, True, 2**64, -(2**70),
               np.float32(0.5), np.array([1.0, 2.0]), np.array(0.5), 1j, [1.0]]
BAD_INTS = [None, "3", -1, 0, 1.5, True, 2**40, 2**64, np.int64(-5), np.uint8(3), np.array([2])]
BAD_FLAGS = [None, 1, 0, "yes", np.array([True])]
BAD_CHOICES = [None, 3, "bogus", "", ["gaussian"]]

NAME = re.compile(r"^([a-z_]+(\[\d+\])?( \([^)]*\))?|x, y|t_max, t_min, steps|log_weights/variances|"
                  r"--[a-z-]+( [a-z]+)?): ")

SPECS = {
    "score": (ledkde.score, dict(y=Y, data=DATA, t=0.5), dict(threads=None, tile=None, log_weights=None,
                                                             variances=None)),
    "evaluate": (ledkde.evaluate, dict(y=Y, data=DATA, t=0.5), dict(outputs=("score", "entropy"))),
    "smoothed_score": (ledkde.smoothed_score, dict(y=Y, data=DATA, t=0.5),
                       dict(bandwidth=0.3, n_kernel=4, kernel="gaussian", estimator="control", antithetic=True,
                            orthogonal=False, seed=1, return_error=True)),
    "led_kde_log_density": (ledkde.led_kde_log_density, dict(y=Y, data=DATA, t=0.5),
                            dict(bandwidth=0.3, n_kernel=4, variances=np.full(12, 0.1))),
    "sample": (ledkde.sample, dict(data=DATA, n_samples=3),
               dict(t_max=2.0, t_min=0.01, steps=4, schedule="geometric", method="euler_maruyama",
                    bandwidth=0.1, n_kernel=2, init="gaussian", denoise_last=True, seed=0, return_error=False,
                    kernel="gaussian")),
    "nearest_neighbors": (ledkde.nearest_neighbors, dict(y=Y, data=DATA), dict(k=2)),
    "memorization": (ledkde.memorization, dict(samples=Y, data=DATA), dict(held_out=DATA[5:], ratio=0.3)),
    "median_nn_distance": (ledkde.median_nn_distance, dict(data=DATA), dict(max_points=5, seed=0)),
    "collapse_time": (ledkde.collapse_time, dict(data=DATA), dict(method="entropy")),
    "time_grid": (ledkde.time_grid, dict(t_max=2.0, t_min=0.01, steps=5), dict(schedule="edm", rho=7.0)),
    "energy_distance": (ledkde.energy_distance, dict(x=DATA[:6], y=DATA[6:]), dict(max_points=100, seed=0)),
    "effective_dataset_size": (ledkde.effective_dataset_size, dict(n_values=[10, 20, 40],
                                                                   plain_mse=[3.0, 2.0, 1.0], target_mse=1.5),
                               dict()),
    "bandwidth_rule": (ledkde.bandwidth_rule, dict(data=DATA), dict(nn=None)),
    "sample_quality": (ledkde.sample_quality, dict(samples=Y, data=DATA), dict(held_out=DATA[6:], nn=None)),
    "Mixture": (ledkde.Mixture, dict(data=DATA), dict(log_weights=None, variances=None, dtype=None)),
    "partial_state": (ledkde.partial_state, dict(y=Y, data=DATA, t=0.5), dict(log_weights=np.zeros(12))),
}


def bad_values(name, good):
    if name in ("y", "data", "x", "samples", "held_out", "log_weights", "variances", "n_values", "plain_mse"):
        return BAD_ARRAYS
    if name in ("antithetic", "orthogonal", "return_error", "denoise_last"):
        return BAD_FLAGS
    if name in ("kernel", "estimator", "method", "schedule", "init", "outputs", "dtype"):
        return BAD_CHOICES
    if name in ("n_samples", "n_kernel", "steps", "k", "threads", "max_points", "seed"):
        return BAD_INTS
    if name == "tile":
        return [None, 3, (0, 4), (2**40, 2), ("a", 1), (1, 2, 3)]
    return BAD_SCALARS


def finite(res):
    if isinstance(res, dict):
        return all(finite(v) for v in res.values())
    if isinstance(res, (tuple, list)):
        return all(finite(v) for v in res)
    if isinstance(res, np.ndarray):
        return res.dtype.kind not in "fc" or np.isfinite(res).all()
    if isinstance(res, float):
        return not np.isnan(res)
    return True


@pytest.mark.filterwarnings("ignore:bandwidth_rule. the rule was fitted:UserWarning")  # DATA has d < 16
@pytest.mark.parametrize("fn_name", list(SPECS))
def test_fuzz_public_api(fn_name):
    fn, positional, keywords = SPECS[fn_name]
    args = {**positional, **keywords}
    names = list(args)

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 60,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(st.data())
    def check(data):
        chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
        call = dict(args)
        for name in chosen:
            call[name] = data.draw(st.sampled_from(bad_values(name, args[name])), label=name)
        pos = [call.pop(n) for n in positional]
        try:
            res = fn(*pos, **call)
        except (ValueError, TypeError) as exc:
            msg = str(exc)
            assert NAME.match(msg), f"{fn_name}({chosen}): message does not name an argument: {msg!r}"
            return
        assert finite(res), f"{fn_name}({chosen} = {[call.get(n) for n in chosen]}): non-finite result"

    check()
