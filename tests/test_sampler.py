"""Whole reverse-diffusion runs against the NumPy reference sampler, and their statistics."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import ledkde
import ledkde.reference as ref

METHODS = ["euler_maruyama", "ode_euler", "ode_heun"]
SCHEDULES = ["uniform", "geometric", "edm"]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("init", ["gaussian", "empirical"])
def test_matches_reference_sampler_step_for_step(method, schedule, init):
    rng = np.random.default_rng(hash((method, schedule, init)) % 2**32)
    data = rng.normal(size=(30, 4))
    times = ref.time_grid(3.0, 0.02, 12, schedule)
    hs = 0.05 + 0.1 * np.sqrt(times)  # a time-dependent bandwidth
    keep = list(range(13))
    got, traj = ledkde.sample(data, 9, schedule=schedule, t_max=3.0, t_min=0.02, steps=12, method=method,
                              bandwidth=lambda t: 0.05 + 0.1 * np.sqrt(t), n_kernel=3, init=init, seed=5,
                              return_trajectory=keep)
    want, wtraj = ref.sample(data, 9, times, hs, method=method, n_kernel=3, init=init, seed=5, keep=keep)
    np.testing.assert_allclose(traj, wtraj, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
def test_float32_run_follows_float64_reference(method):
    rng = np.random.default_rng(1)
    data = rng.normal(size=(50, 6)).astype(np.float32)
    times = ref.time_grid(2.0, 0.05, 20, "edm")
    got = ledkde.sample(data, 16, schedule=times, method=method, bandwidth=0.1, n_kernel=2, seed=2)
    want, _ = ref.sample(data, 16, times, np.full(21, 0.1), method=method, n_kernel=2, seed=2)
    assert got.dtype == np.float32
    # Scores are float32-accurate (~1e-5 relative); 20 steps of t <= 2 add them
    # up with Lipschitz growth of at most ~1/t_min = 20 per unit time.
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-3 * np.abs(want).max())


def test_uniform_kernel_and_antithetic_in_the_sampler():
    rng = np.random.default_rng(2)
    data = rng.normal(size=(20, 3))
    times = ref.time_grid(1.0, 0.01, 8)
    got = ledkde.sample(data, 5, schedule=times, bandwidth=0.2, n_kernel=4, kernel="uniform", antithetic=True,
                        seed=9)
    want, _ = ref.sample(data, 5, times, np.full(9, 0.2), n_kernel=4, kernel="uniform", antithetic=True, seed=9)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_bandwidth_forms_agree():
    data = np.random.default_rng(3).normal(size=(20, 3))
    kw = dict(t_max=1.0, t_min=0.01, steps=6, n_kernel=2, seed=4)
    times = ref.time_grid(1.0, 0.01, 6)
    per_step = 0.1 * np.sqrt(times[:-1])
    a = ledkde.sample(data, 4, bandwidth=lambda t: 0.1 * np.sqrt(t), **kw)
    b = ledkde.sample(data, 4, bandwidth=0.1 * np.sqrt(times), **kw)
    np.testing.assert_array_equal(a, b)
    c = ledkde.sample(data, 4, bandwidth=per_step, **kw)  # last value reused at t_min
    want, _ = ref.sample(data, 4, times, np.append(per_step, per_step[-1]), n_kernel=2, seed=4)
    np.testing.assert_allclose(c, want, rtol=1e-10, atol=1e-10)


def test_thread_count_and_seed():
    data = np.random.default_rng(4).normal(size=(200, 8)).astype(np.float32)
    kw = dict(t_max=5.0, t_min=1e-3, steps=30, bandwidth=0.05, n_kernel=4, seed=17)
    a = ledkde.sample(data, 150, threads=1, **kw)
    for threads in (2, 4):
        np.testing.assert_array_equal(a, ledkde.sample(data, 150, threads=threads, **kw))
    assert not np.array_equal(a, ledkde.sample(data, 150, threads=2, **{**kw, "seed": 18}))
    # Sample j does not depend on how many samples are drawn beside it.
    np.testing.assert_array_equal(a[:10], ledkde.sample(data, 10, threads=2, **kw))


@pytest.mark.parametrize("method,dtype", [(m, np.float64) for m in METHODS] + [("euler_maruyama", np.float32)])
def test_many_component_tiles_follow_the_reference(method, dtype):
    # 1,500 components in tiles of 128 (the running state carried across twelve
    # tiles at every step, with kernel draws): the run must follow the
    # reference and not depend on the thread count.
    rng = np.random.default_rng(8)
    data = rng.normal(size=(1500, 12)).astype(dtype)
    times = ref.time_grid(3.0, 0.02, 10, "geometric")
    kw = dict(schedule=times, method=method, bandwidth=0.1, n_kernel=3, seed=3, tile=(64, 128))
    got = ledkde.sample(data, 6, threads=1, **kw)
    for threads in (2, 3):
        np.testing.assert_array_equal(got, ledkde.sample(data, 6, threads=threads, **kw))
    want, _ = ref.sample(data.astype(np.float64), 6, times, np.full(11, 0.1), method=method, n_kernel=3, seed=3)
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
    else:  # as test_float32_run_follows_float64_reference
        np.testing.assert_allclose(got, want, rtol=0, atol=2e-3 * np.abs(want).max())


def _three_component_mixture():
    a = np.array([0.2, 0.3, 0.5])
    means = np.array([[-3.0, 1.0], [2.0, 2.0], [0.0, -1.6]])
    means -= a @ means  # mixture mean 0, so N(0, t_max I) is a good start
    s2 = np.array([0.05, 0.1, 0.2])
    return a, means, s2


@pytest.mark.parametrize("method,schedule,steps", [("euler_maruyama", "geometric", 400), ("ode_heun", "edm", 60)])
def test_samples_reproduce_a_gaussian_mixture(method, schedule, steps):
    # With the exact score of a known mixture, samples carry its component
    # masses, means and covariances (within a few standard errors plus the
    # small discretization and start-distribution bias).
    a, means, s2 = _three_component_mixture()
    n = 6000
    t_min = 1e-4
    x = ledkde.sample(means, n, t_max=200.0, t_min=t_min, steps=steps, schedule=schedule, method=method,
                      log_weights=np.log(a), variances=s2, denoise_last=False, seed=123)
    # Assign each sample to the most likely component.
    d2 = ((x[:, None, :] - means[None]) ** 2).sum(-1)
    lab = np.argmin(d2 / (s2 + t_min) + 2 * np.log(s2 + t_min), axis=1)
    for c in range(3):
        xc = x[lab == c]
        frac = len(xc) / n
        assert abs(frac - a[c]) < 4 * np.sqrt(a[c] * (1 - a[c]) / n) + 0.005, (c, frac)
        v = s2[c] + t_min
        assert np.abs(xc.mean(0) - means[c]).max() < 4 * np.sqrt(v / len(xc)) + 0.01, (c, xc.mean(0))
        cov = np.cov(xc.T)
        se = v * np.sqrt(2 / len(xc))
        assert np.abs(cov - v * np.eye(2)).max() < 4 * se + 0.03 * v, (c, cov)


def test_plain_score_memorizes_and_smoothing_generalizes():
    rng = np.random.default_rng(5)
    n, d = 100, 8
    data = rng.normal(size=(n, d))
    d2 = ((data[:, None] - data[None]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    nn = np.median(np.sqrt(d2.min(1)))
    kw = dict(t_max=20.0, t_min=1e-4, steps=150, seed=1)

    def memorized(x):
        dist = np.sqrt(((x[:, None] - data[None]) ** 2).sum(-1))
        two = np.sort(dist, axis=1)[:, :2]
        return np.mean(two[:, 0] / two[:, 1] < 1 / 3)

    plain = memorized(ledkde.sample(data, 200, **kw))
    smooth = memorized(ledkde.sample(data, 200, bandwidth=1.0 * nn / np.sqrt(d), n_kernel=8, **kw))
    assert plain > 0.95, plain
    assert smooth < 0.5 * plain, (plain, smooth)


def test_progress_is_reported_and_can_stop_the_run():
    data = np.random.default_rng(6).normal(size=(3000, 16))
    seen = []

    def progress(done, total):
        seen.append((done, total))

    ledkde.sample(data, 64, t_max=1.0, t_min=0.01, steps=40, progress=progress)
    assert seen and seen[-1][0] == seen[-1][1]
    assert all(a[0] <= b[0] for a, b in zip(seen, seen[1:]))

    def stop(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ledkde.sample(data, 64, t_max=1.0, t_min=0.01, steps=40, progress=stop)


@pytest.mark.slow
def test_ctrl_c_stops_a_long_run_within_a_second():
    data = np.random.default_rng(7).normal(size=(20000, 64)).astype(np.float32)
    fired = []

    def interrupt():
        fired.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    def give_up(done, total):
        # Should SIGINT go unseen, fail instead of running for minutes.
        if fired and time.perf_counter() - fired[0] > 10.0:
            raise RuntimeError("SIGINT was not seen by the sampler within 10 s")

    timer = threading.Timer(0.5, interrupt)
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        ledkde.sample(data, 512, t_max=1.0, t_min=0.01, steps=100000, progress=give_up)
    assert fired and time.perf_counter() - fired[0] < 1.0


def test_time_grids_have_their_closed_forms():
    """The grids against their definitions written out here (the sampler tests take the reference's)."""
    k = np.arange(11) / 10
    # 1e-13: time_grid sets its end points exactly, which these formulas round (by 2e-14 at t_min).
    np.testing.assert_allclose(ledkde.time_grid(4.0, 0.01, 10, "uniform"), 4.0 + k * (0.01 - 4.0), rtol=1e-13)
    np.testing.assert_allclose(ledkde.time_grid(4.0, 0.01, 10, "geometric"), 4.0 * 0.0025**k, rtol=1e-13)
    sig = (2.0 ** (1 / 7) + k * (0.1 ** (1 / 7) - 2.0 ** (1 / 7))) ** 7
    np.testing.assert_allclose(ledkde.time_grid(4.0, 0.01, 10, "edm"), sig**2, rtol=1e-13)


def test_sample_without_a_grid_takes_the_command_lines_from_the_data():
    # sample(data, n) is sample(data, n, t_max, t_min, steps=100) with sampler_defaults' grid.
    from ledkde._bandwidth import sampler_defaults

    x = np.random.default_rng(3).normal(size=(300, 6))
    grid = sampler_defaults(x, ledkde.median_nn_distance(x))
    want = ledkde.sample(x, 5, t_max=grid["t_max"], t_min=grid["t_min"], steps=100, seed=2)
    np.testing.assert_array_equal(ledkde.sample(x, 5, seed=2), want)
    half = ledkde.sample(x, 5, t_max=grid["t_max"], t_min=grid["t_min"], steps=40, seed=2)
    np.testing.assert_array_equal(ledkde.sample(x, 5, t_max=grid["t_max"], steps=40, seed=2), half)
    with pytest.raises(ValueError, match="^t_min: must be below t_max.*comes from the data"):
        ledkde.sample(x, 5, t_max=grid["t_min"] / 2)
