"""Edge cases where a second path once let a wrong answer or a raw error through: each ends
as a right answer (checked against a formula or the reference) or a clear error naming the
argument. The sharded cases are in test_distributed.py."""

import copy
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

import ledkde
import ledkde.reference as ref
from ledkde import _core


def raises(exc, match, fn, *a, **kw):
    with pytest.raises(exc, match=match):
        fn(*a, **kw)


# --------------------------------------------------------------------------- the sampler's start
def start_points(data, n, **kw):
    """The starting points of a run (its trajectory at grid index 0)."""
    _, traj = ledkde.sample(data, n, t_max=1.0, t_min=0.5, steps=1, init="empirical", denoise_last=False,
                            return_trajectory=[0], seed=3, **kw)
    return traj[0]


def test_an_empirical_start_draws_components_by_their_weights():
    # An exact draw of p_{t_max}: component j with probability a_j. Half the components
    # have weight 0 (they once got half the starts), the others weights 1 : 3.
    data = np.repeat(np.arange(4.0)[:, None] * 100.0, 3, axis=1)  # four far-apart points, d = 3
    lw = np.log([0.0 + 1e-300, 1.0, 3.0, 0.0 + 1e-300])
    lw[[0, 3]] = -np.inf
    x = start_points(data, 4000, log_weights=lw)
    comp = np.rint(x[:, 0] / 100.0).astype(int)
    counts = np.bincount(comp, minlength=4)
    assert counts[0] == counts[3] == 0
    # 4000 draws with p = 1/4: standard deviation 27; allow 4.
    assert abs(counts[1] - 1000) < 4 * 27, counts


def test_an_empirical_start_has_the_components_variance():
    # Start sd sqrt(s2_j + t_max): with s2 = 100 and t_max = 1, sqrt(101) = 10.05 (it was 0.99).
    data = np.zeros((5, 4))
    x = start_points(data, 4000, variances=np.full(5, 100.0))
    sd = x.std()
    assert abs(sd - np.sqrt(101.0)) < 0.03 * np.sqrt(101.0), sd


def test_the_reference_sampler_starts_as_the_engine():
    r = np.random.default_rng(1)
    data, lw, var = r.normal(size=(40, 3)), r.normal(size=40) * 2, r.uniform(0, 0.5, 40)
    lw[::5] = -np.inf
    times = ref.time_grid(2.0, 0.05, 6)
    for kw in (dict(log_weights=lw), dict(variances=var), dict(log_weights=lw, variances=var)):
        got = ledkde.sample(data, 50, schedule=times, init="empirical", seed=4, return_trajectory=[0, 6], **kw)[1]
        want = ref.sample(data, 50, times, np.zeros(7), init="empirical", seed=4, keep=[0, 6], **kw)[1]
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


# --------------------------------------------------------------------------- memorization
def test_a_copy_of_a_duplicated_training_point_is_memorized():
    # The sample sits on a point that the data hold twice: d1 = 0, and d2 is the distance
    # to the nearest *other* point, so the sample counts as a copy (it did not: d2 was 0).
    data = np.array([[0.0, 0.0], [0.0, 0.0], [3.0, 4.0], [10.0, 0.0]])
    rep = ledkde.memorization(np.array([[0.0, 0.0], [1.5, 2.0]]), data)
    np.testing.assert_allclose(rep.d1, [0.0, 2.5])
    np.testing.assert_allclose(rep.d2, [5.0, 2.5])  # the second is halfway between two distinct points
    np.testing.assert_array_equal(rep.memorized, [True, False])


def test_median_nn_distance_and_the_bandwidth_rule_pass_over_duplicates():
    r = np.random.default_rng(2)
    x = r.normal(size=(50, 6))
    dup = np.concatenate([x, x, x, x[:10]])  # most points four times
    dist = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    nn_x = dist.min(1)
    want = np.median(np.concatenate([nn_x, nn_x, nn_x, nn_x[:10]]))
    assert ledkde.median_nn_distance(dup) == pytest.approx(want, rel=1e-12)
    with pytest.warns(UserWarning, match="fitted on data of d = 16 to 784"):  # d = 6
        assert ledkde.bandwidth_rule(dup) > 0.0


def test_memorization_needs_two_distinct_points():
    raises(ValueError, "^data: need at least 2 distinct training points", ledkde.memorization,
           np.zeros((2, 3)), np.zeros((1, 3)))
    raises(ValueError, "^data: all its points are the same point", ledkde.memorization,
           np.zeros((2, 3)), np.zeros((4, 3)))


# --------------------------------------------------------------------------- float32 accuracy
def test_float32_far_from_the_centre_is_accurate_or_refused():
    r = np.random.default_rng(0)
    d = 64
    off = np.zeros(d)
    off[0] = 1e5
    x = np.concatenate([r.normal(size=(200, d)) + off, r.normal(size=(200, d)) - off])
    y = x[:20] + 0.1 * r.normal(size=(20, d))
    want = ref.score(y, x, 0.01)
    got64 = ledkde.score(y, x, 0.01)
    np.testing.assert_allclose(got64, want, rtol=0, atol=1e-10 * np.abs(want).max())
    # float32 holds coordinates of 1e5 to 0.004, 4% of sqrt(t): refused, naming t (the
    # score was off by 2.6e-2 of its scale).
    x32, y32 = x.astype(np.float32), y.astype(np.float32)
    raises(ValueError, "^t: at t = 0.01 the noise's scale per coordinate is sqrt\\(t\\) = 0.1", ledkde.score,
           y32, x32, 0.01)
    # Where float32 can hold them, within 1e-4 of the score's scale.
    t = 4e4
    y32 = (x[:20] + np.sqrt(t) * r.normal(size=(20, d))).astype(np.float32)
    want = ref.score(y32.astype(np.float64), x32.astype(np.float64), t)
    np.testing.assert_allclose(ledkde.score(y32, x32, t), want, rtol=0, atol=1e-4 * np.abs(want).max())


def test_float32_clusters_on_both_sides_of_the_centre():
    # Two clusters at +-30 (a centre between them, near 0): t = 1e-2 is within float32's
    # resolution of these coordinates (t = 1e-3 is refused), and the score within 1e-4 of its scale.
    r = np.random.default_rng(5)
    d = 32
    x = np.concatenate([r.normal(size=(100, d)) + 30.0, r.normal(size=(100, d)) - 30.0]).astype(np.float32)
    mix = ledkde.Mixture(x)
    y = (x[::10] + 0.1 * r.normal(size=(20, d))).astype(np.float32)
    want = ref.score(y.astype(np.float64), x.astype(np.float64), 1e-2)
    np.testing.assert_allclose(ledkde.score(y, mix, 1e-2), want, rtol=0, atol=1e-4 * np.abs(want).max())
    raises(ValueError, "^t: at t = 0.001", ledkde.score, y, mix, 1e-3)


def test_float32_denoiser_far_from_the_data_at_large_t():
    # t far above the data's variance: the denoiser is about the data's mean. It was off by
    # 5e-4 of the data's scale (the rows' rounding, |y| ~ sqrt(t d), left in the sums).
    r = np.random.default_rng(1)
    x = r.random((2000, 784)).astype(np.float32)
    for t in (100.0, 1e4, 1e6):
        y = (x[:30] + np.sqrt(t) * r.normal(size=(30, 784))).astype(np.float32)
        want = ref.denoise(y.astype(np.float64), x.astype(np.float64), t)
        got = ledkde.denoise(y, x, t)
        assert np.abs(got - want).max() < 1e-4 * x.std(), np.abs(got - want).max() / x.std()


def test_float32_smoothed_score_of_offset_data():
    r = np.random.default_rng(2)
    x = (r.random((600, 40)) + 100.0).astype(np.float32)
    y = (x[:10] + 0.05 * r.normal(size=(10, 40))).astype(np.float32)
    kw = dict(bandwidth=0.05, n_kernel=8, seed=1)
    want = ref.smoothed_score(y.astype(np.float64), x.astype(np.float64), 0.003, **kw)
    got = ledkde.smoothed_score(y, x, 0.003, **kw)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4 * np.abs(want).max())


# --------------------------------------------------------------------------- the bandwidth tools
@pytest.mark.parametrize("args,match", [((11, 10), "^k: must be at most 10"), ((-1, 10), "^k: must be at least 0"),
                                        ((1, 10, -1.0), "^z: must be > 0"), ((1, 0), "^n: must be at least 1")])
def test_wilson_interval_refuses_nonsense(args, match):
    raises(ValueError, match, ledkde.wilson_interval, *args)


@pytest.mark.parametrize("args,match", [((float("nan"), 10), "^k: expected an integer"),
                                        ((1, float("inf")), "^n: expected an integer")])
def test_wilson_interval_refuses_non_integers(args, match):
    raises(TypeError, match, ledkde.wilson_interval, *args)


def test_wilson_interval_is_the_formula():
    lo, hi = ledkde.wilson_interval(3, 20)
    p, n, z = 0.15, 20, 1.96
    mid = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    assert (lo, hi) == pytest.approx((mid - half, mid + half), rel=1e-12)


def test_select_bandwidth_checks_every_argument_up_front():
    r = np.random.default_rng(3)
    x, ho = r.normal(size=(60, 4)), r.normal(size=(10, 4))
    raises(TypeError, "^factors: expected a sequence of numbers", ledkde.select_bandwidth, x, held_out=ho, factors=["a"])
    raises(TypeError, "^max_memorized: expected a real number", ledkde.select_bandwidth, x, held_out=ho, max_memorized=None)
    raises(TypeError, "^progress: expected a callable", ledkde.select_bandwidth, x, held_out=ho, progress=5)
    raises(ValueError, "^held_out: need at least 2 points", ledkde.select_bandwidth, x, held_out=ho[:1])
    # Mostly duplicated data: scaled by the distinct points (it said "nn: must be > 0").
    sel = ledkde.select_bandwidth(np.concatenate([x[:20]] * 3), held_out=ho, factors=[0.0, 4.0], n_samples=8, steps=10)
    assert sel.nn > 0 and len(sel.table) == 2


# --------------------------------------------------------------------------- memory bounded by the problem
def test_a_grid_too_fine_for_memory_is_refused():
    raises(ValueError, "^steps: must be at most 10000000", ledkde.sample, np.zeros((3, 2)) + np.arange(3)[:, None],
           2, t_max=1.0, t_min=0.1, steps=10**8)


def test_many_steps_with_weights_take_no_memory_per_step():
    # The logits' constants are made per step, not kept for every grid time (20,000 steps
    # x 4,000 components x two float64 vectors would be 1.3 GB).
    code = textwrap.dedent("""
        import numpy as np, ledkde
        r = np.random.default_rng(0)
        x = r.normal(size=(4000, 2))
        ledkde.sample(x, 4, t_max=1.0, t_min=0.01, steps=20000, log_weights=r.normal(size=4000), threads=1)
        with open("/proc/self/status") as fh:
            print(next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")))
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(res.stdout.split()[-1]) / 1024 < 400, res.stdout


# --------------------------------------------------------------------------- Ctrl-C while preparing
def test_ctrl_c_stops_the_preparation_of_a_large_mixture():
    x = np.random.default_rng(4).random((2_000_000, 100), dtype=np.float32)
    fired = []

    def interrupt():
        fired.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    # The compiled preparation itself (centring, norms, the tile pack: about a second
    # here), after the checks of the Python layer.
    timer = threading.Timer(0.1, interrupt)
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        _core.prepare(x, None, None, 2, True)
        pytest.fail(f"the preparation ended after {time.perf_counter() - t0:.2f} s, before Ctrl-C at 0.1 s")
    timer.join()
    assert time.perf_counter() - fired[0] < 0.5


# --------------------------------------------------------------------------- errors that name the argument
def test_errors_name_the_argument():
    x = np.random.default_rng(5).normal(size=(20, 3))
    raises(ValueError, "^t: must be finite", ledkde.score, x[:2], x, 10**400)
    raises(TypeError, "^return_trajectory: expected a grid index", ledkde.sample, x, 2, t_max=1.0, t_min=0.1,
           steps=3, return_trajectory="abc")
    gm = ledkde.GaussianMixture(np.ones(2), x[:2], None)  # None: point masses, as for a Mixture
    np.testing.assert_array_equal(gm.variances, [0.0, 0.0])
    np.testing.assert_allclose(gm.score(x[:3], 0.5), ledkde.score(x[:3], x[:2], 0.5), rtol=1e-12)


def state(log_max, sum_):
    return ledkde.PassState(np.array([log_max]), np.array([sum_]), np.zeros(1), np.zeros((1, 2)), 0.0,
                            np.zeros((1, 2)), 1.0)


def test_a_hand_made_state_without_weight_is_refused():
    raises(ValueError, "^state: sum is 0 for some queries", ledkde.finalize, state(0.0, 0.0))
    raises(ValueError, "^state: sum must hold finite numbers", ledkde.finalize, state(0.0, np.nan))
    raises(ValueError, "^state: log_max must hold numbers below \\+inf", ledkde.finalize, state(np.nan, 1.0))
    raises(ValueError, "^states\\[1\\]: sum must be >= 0", ledkde.merge_states, [state(0.0, 1.0), state(0.0, -1.0)])


def test_compiled_entry_points_check_the_shapes_they_read():
    # A query of fewer columns than the mixture once read past its end.
    mix = ledkde.Mixture(np.random.default_rng(6).normal(size=(50, 8)))
    opt = _core.PassOptions(threads=1, tile_q=64, tile_n=64)
    raises(ValueError, "^y: expected a 2-D array of rows of width 8", _core.partial, mix._core, np.zeros((3, 2)),
           0.5, opt)
    raises(ValueError, "^y: expected a 2-D array of rows of width 8", _core.evaluate, mix._core, np.zeros((3, 2)),
           0.5, 2, opt)
    raises(ValueError, "^k: must lie in", _core.knn, mix._core, np.zeros((3, 8)), 51, opt)


# --------------------------------------------------------------------------- the API's promises
def test_the_data_tools_take_a_mixture():
    x = np.random.default_rng(7).normal(size=(300, 5))
    mix = ledkde.Mixture(x)
    assert ledkde.median_nn_distance(mix) == ledkde.median_nn_distance(x)
    with pytest.warns(UserWarning, match="fitted on data of d = 16 to 784"):  # d = 5
        assert ledkde.bandwidth_rule(mix) == ledkde.bandwidth_rule(x)
    assert ledkde.collapse_time(mix) == pytest.approx(ledkde.collapse_time(x), rel=1e-12)
    q1, q2 = ledkde.sample_quality(x[:10] + 0.01, mix, held_out=x[:20]), ledkde.sample_quality(x[:10] + 0.01, x, held_out=x[:20])
    assert q1 == q2


@pytest.mark.parametrize("clone", [lambda m: pickle.loads(pickle.dumps(m)), copy.deepcopy])
def test_a_mixture_pickles_and_deep_copies(clone):
    r = np.random.default_rng(8)
    x, lw, var = r.normal(size=(100, 6)).astype(np.float32), r.normal(size=100), r.uniform(0, 0.1, 100)
    mix = ledkde.Mixture(x, log_weights=lw, variances=var, logit_tolerance=1e-3)
    other = clone(mix)
    assert other.dtype == mix.dtype and other.logit_tolerance == mix.logit_tolerance
    y = x[:7] + 0.1
    np.testing.assert_array_equal(ledkde.score(y, other, 0.2), ledkde.score(y, mix, 0.2))
