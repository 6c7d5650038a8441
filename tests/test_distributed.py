"""Data sharded over a Ray cluster (ledkde.distributed): a local Ray instance started by
this module (4 logical CPUs, so that up to 4 shards of one CPU each can be placed) and
shut down at its end. Every sharded operation must give the local one's answer."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import ledkde

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install \"ledkde[ray]\")")
from ledkde.distributed import ShardedMixture  # noqa: E402

ALL = ("log_density", "score", "denoise", "entropy", "max_weight")


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


_open = []


@pytest.fixture(autouse=True)
def close_shards():
    """Each test's shards end with it (their CPUs free for the next test at once)."""
    yield
    while _open:
        _open.pop().close()


def request_close(sharded):
    _open.append(sharded)


def problem(seed=0, n=600, d=12, q=9, t=0.05):
    r = np.random.default_rng(seed)
    x = r.normal(size=(n, d))
    y = x[r.integers(0, n, q)] + np.sqrt(t) * r.normal(size=(q, d))
    return x, y, t


@pytest.mark.parametrize("n_shards", [1, 2, 3])
def test_sharded_evaluate_is_the_local_one(n_shards):
    x, y, t = problem()
    with ShardedMixture(x, n_shards=n_shards) as sharded:
        got = ledkde.evaluate(y, sharded, t, outputs=ALL)
    want = ledkde.evaluate(y, x, t, outputs=ALL)
    for k in ALL:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12 * max(1.0, np.abs(want[k]).max()))


def test_logit_tolerance_reaches_the_shards():
    # Each shard's Mixture is built with it (ledkde.Mixture(logit_tolerance=...)), and the
    # sharded pass gives the local pass's answer within float32 rounding.
    r = np.random.default_rng(3)
    x = (r.random((3000, 784)) ** 2).astype(np.float32)
    y = (x[r.integers(0, 3000, 40)] + np.sqrt(10.0) * r.normal(size=(40, 784))).astype(np.float32)
    with ShardedMixture(x, n_shards=2, logit_tolerance=1e-2) as sharded:
        assert sharded.logit_tolerance == 1e-2
        assert [ray.get(a.info.remote(h))["logit_tolerance"] for a, h in zip(sharded._actors, sharded._sources)] == [1e-2, 1e-2]
        got = ledkde.score(y, sharded, 10.0)
    want = ledkde.score(y, ledkde.Mixture(x, logit_tolerance=1e-2), 10.0)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * np.abs(want).max())


def test_uneven_files_and_a_shard_of_one_point(tmp_path):
    x, y, t = problem(1, n=301)
    parts = [x[:1], x[1:50], x[50:]]
    files = []
    for i, p in enumerate(parts):
        files.append(str(tmp_path / f"shard{i}.npy"))
        np.save(files[-1], p)
    sharded = ShardedMixture(files=files)
    request_close(sharded)
    assert sharded.shard_sizes == [1, 49, 251] and sharded.n == 301
    got = ledkde.evaluate(y, sharded, t, outputs=ALL)
    want = ledkde.evaluate(y, x, t, outputs=ALL)
    for k in ALL:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-12, atol=1e-12 * max(1.0, np.abs(want[k]).max()))
    np.testing.assert_allclose(ledkde.score(y, sharded, t), ledkde.score(y, x, t), rtol=1e-12, atol=1e-12)


def test_weights_and_variances_are_split_with_the_rows():
    x, y, t = problem(2)
    r = np.random.default_rng(3)
    lw, var = r.normal(size=len(x)), r.uniform(0, 0.1, len(x))
    with ShardedMixture(x, n_shards=3, log_weights=lw, variances=var) as sharded:
        got = ledkde.evaluate(y, sharded, t, outputs=ALL)
    want = ledkde.evaluate(y, x, t, outputs=ALL, log_weights=lw, variances=var)
    for k in ALL:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-11, atol=1e-11 * max(1.0, np.abs(want[k]).max()))


def test_partial_state_and_neighbours():
    x, y, t = problem(4)
    sharded = ShardedMixture(x, n_shards=3)
    request_close(sharded)
    state = ledkde.partial_state(y, sharded, t)
    fin = ledkde.finalize(state)
    want = ledkde.evaluate(y, x, t, outputs=ALL)
    np.testing.assert_allclose(fin["score"], want["score"], rtol=1e-12, atol=1e-12)
    nb, local = ledkde.nearest_neighbors(y, sharded, 5), ledkde.nearest_neighbors(y, x, 5)
    np.testing.assert_array_equal(nb.indices, local.indices)
    np.testing.assert_allclose(nb.distances, local.distances, rtol=1e-14)
    m1, m2 = ledkde.memorization(y, sharded), ledkde.memorization(y, x)
    np.testing.assert_array_equal(m1.nearest, m2.nearest)
    assert m1.fraction == m2.fraction


@pytest.mark.parametrize("method,init", [("euler_maruyama", "gaussian"), ("ode_heun", "gaussian"),
                                         ("ode_euler", "empirical")])
def test_sharded_sampler_gives_the_local_samples(method, init):
    x, _, _ = problem(5)
    kw = dict(t_max=20.0, t_min=1e-3, steps=25, seed=7, method=method, init=init, return_trajectory=[0, 10])
    with ShardedMixture(x, n_shards=3) as sharded:
        s1, tr1 = ledkde.sample(sharded, 12, **kw)
    s2, tr2 = ledkde.sample(x, 12, **kw)
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-10)
    np.testing.assert_allclose(tr1, tr2, rtol=0, atol=1e-10)


def test_a_killed_shard_is_restarted_and_the_run_finishes_the_same(tmp_path):
    x, _, _ = problem(6)
    np.save(tmp_path / "a.npy", x[:300])
    np.save(tmp_path / "b.npy", x[300:])
    for sharded in (ShardedMixture(x, n_shards=2), ShardedMixture(files=[str(tmp_path / "a.npy"),
                                                                         str(tmp_path / "b.npy")])):
        pid = sharded.actor_pids()[1]
        killed = []

        def kill_once(done, total):  # called every few tens of milliseconds
            if 5 <= done < total - 5 and not killed:
                os.kill(pid, signal.SIGKILL)  # the process dies; Ray restarts the actor
                killed.append(done)

        kw = dict(t_max=20.0, t_min=1e-3, steps=60, seed=3)
        got = ledkde.sample(sharded, 8, progress=kill_once, **kw)
        assert killed and sharded.actor_pids()[1] != pid  # it really died and came back
        sharded.close()
        np.testing.assert_allclose(got, ledkde.sample(x, 8, **kw), rtol=0, atol=1e-10)


def test_bad_input_is_refused_on_the_driver():
    x, y, t = problem(8)
    sharded = ShardedMixture(x, n_shards=2)
    request_close(sharded)
    with pytest.raises(ValueError, match="^y: has dimension 3"):
        ledkde.score(y[:, :3], sharded, t)
    with pytest.raises(ValueError, match="^t: must be > 0"):
        ledkde.score(y, sharded, -1.0)
    with pytest.raises(ValueError, match="^log_weights/variances: give them when building the ShardedMixture"):
        ledkde.score(y, sharded, t, log_weights=np.zeros(len(x)))
    with pytest.raises(ValueError, match="^n_kernel: must be even with antithetic=True"):
        ledkde.smoothed_score(y, sharded, t, bandwidth=0.1, n_kernel=3, antithetic=True)
    with pytest.raises(ValueError, match="^n_shards: 5 shards x num_cpus=1 need 5 CPUs"):
        ShardedMixture(x, n_shards=5)
    with pytest.raises(ValueError, match="^data/files: give exactly one"):
        ShardedMixture()
    with pytest.raises(ValueError, match="^files\\[0\\]: cannot read"):
        ShardedMixture(files=["/nonexistent/a.npy"])


def test_a_gpu_less_cluster_refuses_gpu_shards_and_devices():
    x, y, t = problem(9)
    with pytest.raises(ValueError, match="^n_shards: 2 shards x num_gpus=1 need 2 GPUs, but the Ray cluster has 0"):
        ShardedMixture(x, n_shards=2, num_gpus=1)
    with ShardedMixture(x, n_shards=2) as sharded:
        with pytest.raises(ValueError, match="^device: a ShardedMixture's shards run where Ray placed them"):
            ledkde.score(y, sharded, t, device="cuda")


SMOOTHING = [dict(estimator="control"), dict(estimator="naive"), dict(antithetic=True),
             dict(orthogonal=True, kernel="uniform")]


@pytest.mark.parametrize("opts", SMOOTHING)
def test_sharded_smoothed_scores_are_the_local_ones(opts):
    # The same draws (the stream), every draw's state merged over the shards, the
    # engine's own estimator: the local estimates and standard errors up to rounding.
    # Float64; the draws' rows are rounded once more than locally (y + u, then each
    # shard's centre), and the control estimator divides u by t = 0.05: 1e-9 relative.
    # A standard error is a difference of nearly equal sums of squares: 1e-7.
    x, y, t = problem(10)
    kw = dict(bandwidth=0.3, n_kernel=8, seed=5, return_error=True, **opts)
    sharded = ShardedMixture(x, n_shards=3)
    request_close(sharded)
    for fn in (ledkde.smoothed_score, ledkde.led_kde_log_density):
        got, got_err = fn(y, sharded, t, **kw)
        want, want_err = fn(y, x, t, **kw)
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
        np.testing.assert_allclose(got_err, want_err, rtol=1e-7, atol=1e-9 * np.abs(want).max())


@pytest.mark.parametrize("method", ["euler_maruyama", "ode_heun"])
def test_sharded_smoothed_sampler_gives_the_local_samples(method):
    x, _, _ = problem(11)
    kw = dict(t_max=20.0, t_min=1e-3, steps=15, seed=9, method=method, bandwidth=lambda t: 0.2 * np.sqrt(t),
              n_kernel=4, antithetic=True, return_error=True)
    with ShardedMixture(x, n_shards=2) as sharded:
        s1, e1 = ledkde.sample(sharded, 10, **kw)
    s2, e2 = ledkde.sample(x, 10, **kw)
    # 15 steps of the same rounding as above, carried along the run (data of unit scale).
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-8)
    np.testing.assert_allclose(e1, e2, rtol=1e-6, atol=1e-12)


def test_a_shard_that_cannot_come_back_fails_the_call_naming_it():
    x, y, t = problem(12)
    with ShardedMixture(x, n_shards=2, max_restarts=0) as sharded:
        os.kill(sharded.actor_pids()[1], signal.SIGKILL)
        with pytest.raises(RuntimeError, match="^shard 1 of 2 failed and could not be restored"):
            ledkde.score(y, sharded, t)


def test_sharded_smoothing_with_component_variances():
    # The control estimator's pilot needs B = sum w / v over all shards (merged as A).
    x, y, t = problem(13)
    var = np.random.default_rng(14).uniform(0, 0.05, len(x))
    kw = dict(bandwidth=0.3, n_kernel=8, seed=2, return_error=True)
    with ShardedMixture(x, n_shards=3, variances=var) as sharded:
        for fn in (ledkde.smoothed_score, ledkde.led_kde_log_density):
            got, got_err = fn(y, sharded, t, **kw)
            want, want_err = fn(y, x, t, variances=var, **kw)
            np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
            np.testing.assert_allclose(got_err, want_err, rtol=1e-7, atol=1e-9 * np.abs(want).max())
        s1 = ledkde.sample(sharded, 6, t_max=10.0, t_min=1e-2, steps=8, seed=1, bandwidth=0.1, n_kernel=4)
    s2 = ledkde.sample(x, 6, t_max=10.0, t_min=1e-2, steps=8, seed=1, bandwidth=0.1, n_kernel=4, variances=var)
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-8)


def test_sharded_calls_get_the_range_checks():
    x, y, t = problem(15)
    with ShardedMixture(x.astype(np.float32), n_shards=2) as sharded:
        with pytest.raises(ValueError, match="^y: the squared distance of a query from the data's mean reaches"):
            ledkde.score(np.full((2, x.shape[1]), 1e19, dtype=np.float32), sharded, t)
        with pytest.raises(ValueError, match="^t: 1e-40 is below 1e-30"):
            ledkde.score(y.astype(np.float32), sharded, 1e-40)


def test_a_restarted_shard_refuses_a_changed_file(tmp_path):
    x, y, t = problem(16)
    files = [str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]
    np.save(files[0], x[:300])
    np.save(files[1], x[300:])
    with ShardedMixture(files=files) as sharded:
        np.testing.assert_allclose(ledkde.score(y, sharded, t), ledkde.score(y, x, t), rtol=1e-12, atol=1e-12)
        np.save(files[1], x[300:, :5])  # rewritten with another d
        os.kill(sharded.actor_pids()[1], signal.SIGKILL)
        with pytest.raises(RuntimeError, match="^shard 1 of 2 failed and could not be restored: ValueError: "
                                               "'.*b.npy' changed since the ShardedMixture was built"):
            ledkde.score(y, sharded, t)


def test_bad_values_in_a_file_fail_once_naming_it(tmp_path):
    x, _, _ = problem(17)
    bad = x[300:].copy()
    bad[7, 3] = np.nan
    np.save(tmp_path / "a.npy", x[:300])
    np.save(tmp_path / "b.npy", bad)
    t0 = __import__("time").perf_counter()
    with pytest.raises(ValueError, match="^files\\[1\\] .*b.npy'\\): shard 1 could not prepare its rows: "
                                         "ValueError: data: contains NaN"):
        ShardedMixture(files=[str(tmp_path / "a.npy"), str(tmp_path / "b.npy")])
    assert __import__("time").perf_counter() - t0 < 20  # one attempt, not Ray's retries


def test_files_of_float32_and_float64_work_in_float64(tmp_path):
    x, y, t = problem(18)
    np.save(tmp_path / "a.npy", x[:300].astype(np.float32))
    np.save(tmp_path / "b.npy", x[300:])
    with ShardedMixture(files=[str(tmp_path / "a.npy"), str(tmp_path / "b.npy")]) as sharded:
        assert sharded.dtype == np.float64
        whole = np.concatenate([x[:300].astype(np.float32).astype(np.float64), x[300:]])
        np.testing.assert_allclose(ledkde.score(y, sharded, t), ledkde.score(y, whole, t), rtol=1e-12, atol=1e-12)


def test_a_shard_of_zero_weight_is_valid():
    # The first shard's slice of the log-weights is all -inf: it carries no weight (its
    # points still count for the nearest neighbours), as a local Mixture takes them.
    x, y, t = problem(19)
    lw = np.random.default_rng(20).normal(size=len(x))
    lw[:200] = -np.inf
    with ShardedMixture(x, n_shards=3, log_weights=lw) as sharded:
        got = ledkde.evaluate(y, sharded, t, outputs=ALL)
        nb = ledkde.nearest_neighbors(y, sharded, 3)
        s1 = ledkde.sample(sharded, 6, t_max=10.0, t_min=1e-2, steps=8, seed=1, init="empirical")
    want = ledkde.evaluate(y, x, t, outputs=ALL, log_weights=lw)
    for k in ALL:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-11, atol=1e-11 * max(1.0, np.abs(want[k]).max()))
    np.testing.assert_array_equal(nb.indices, ledkde.nearest_neighbors(y, x, 3).indices)
    s2 = ledkde.sample(x, 6, t_max=10.0, t_min=1e-2, steps=8, seed=1, init="empirical", log_weights=lw)
    np.testing.assert_allclose(s1, s2, rtol=0, atol=1e-8)


def test_many_draws_of_one_query_are_streamed():
    # 16,384 draws of one query do not fit one pass (8,192 rows): they go through the
    # shards in chunks, as locally, and give the local estimate (no Q x M x d rows).
    x, y, t = problem(21)
    kw = dict(bandwidth=0.3, n_kernel=2**14, seed=3, return_error=True)
    with ShardedMixture(x, n_shards=2) as sharded:
        got, got_err = ledkde.smoothed_score(y[:1], sharded, t, **kw)
    want, want_err = ledkde.smoothed_score(y[:1], x, t, **kw)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9 * np.abs(want).max())
    np.testing.assert_allclose(got_err, want_err, rtol=1e-6)


def test_the_data_tools_take_a_sharded_mixture():
    x, _, _ = problem(22)
    with ShardedMixture(x, n_shards=3) as sharded:
        assert ledkde.median_nn_distance(sharded) == pytest.approx(ledkde.median_nn_distance(x), rel=1e-14)
        assert ledkde.collapse_time(sharded) == pytest.approx(ledkde.collapse_time(x), rel=1e-10)
        with pytest.warns(UserWarning, match="fitted on data of d = 16 to 784"):  # d = 12
            assert ledkde.bandwidth_rule(sharded) == pytest.approx(ledkde.bandwidth_rule(x), rel=1e-14)
        with pytest.raises(TypeError, match="cannot be pickled"):
            __import__("pickle").dumps(sharded)


@pytest.mark.slow
def test_the_draws_of_a_sharded_smoothed_score_take_no_memory_of_their_number():
    # 2**19 draws of one query (d = 12): the driver holds one pass of rows at a time (the
    # compiled estimators over the merged states), not all 2**19 x 12 of them (50 MB in
    # float64, and their copies). A fresh interpreter and its own Ray instance; its peak
    # resident memory (VmHWM) after 2**18 draws (Ray's buffers warmed up) and after 2**19:
    # it grew by 2 MiB, where all the rows at once grew it by 184 MiB (Ray's own buffers
    # vary by tens of MiB between runs, hence the bound of 60).
    code = textwrap.dedent("""
        import numpy as np, ray, ledkde
        from ledkde.distributed import ShardedMixture
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        x = np.random.default_rng(0).normal(size=(600, 12))
        with ShardedMixture(x, n_shards=2) as sharded:
            ledkde.smoothed_score(x[:1], sharded, 0.05, bandwidth=0.3, n_kernel=2**18)
            before = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
            ledkde.smoothed_score(x[:1], sharded, 0.05, bandwidth=0.3, n_kernel=2**19)
            after = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
        print((after - before) / 1024)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    assert float(res.stdout.split()[-1]) < 60, f"the driver's peak grew by {res.stdout.split()[-1]} MiB"


@pytest.mark.slow
def test_a_run_with_its_own_ray_instance_prints_no_ray_lines():
    # ledkde starts Ray itself here: Ray's informational lines and warnings are left out,
    # and the shards' constructors take no object-store arguments, so Ray has no restart
    # caveat to print (its "core_worker ... constructor arguments" error line).
    code = textwrap.dedent("""
        import numpy as np, ledkde
        from ledkde.distributed import ShardedMixture
        x = np.random.default_rng(0).normal(size=(500, 4))
        with ShardedMixture(x, n_shards=2, log_weights=np.zeros(500), variances=np.zeros(500)) as data:
            s = ledkde.score(x[:3], data, 0.1)
        print(np.abs(s - ledkde.score(x[:3], x, 0.1)).max() < 1e-10)
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip() == "True"
    assert "constructor arguments" not in run.stderr and " INFO " not in run.stderr, run.stderr[-2000:]


def test_the_torch_denoiser_runs_on_sharded_data():
    torch = pytest.importorskip("torch", reason="PyTorch is not installed (CI installs it)")
    import ledkde.torch
    from ledkde.torch import Denoiser

    x, y, _ = problem(23)
    with ShardedMixture(x, n_shards=2) as sharded:
        den = Denoiser(sharded, sigma_min=0.01, sigma_max=10.0)
        yt = torch.from_numpy(y).requires_grad_(True)
        sigma = torch.tensor([0.3] * 4 + [0.6] * 5, dtype=torch.float64)
        out = den(yt, sigma)
        g = torch.from_numpy(np.random.default_rng(1).normal(size=y.shape))
        (out * g).sum().backward()
    for i in range(len(y)):
        s = float(sigma[i])
        np.testing.assert_allclose(out[i].detach().numpy(), ledkde.denoise(y[i:i + 1], x, s * s)[0], rtol=0, atol=1e-12)
        want = ledkde.torch.vjp(y[i:i + 1], x, s, g[i:i + 1].numpy())[0]
        # J v is a difference of posterior moments of size |x|^2 / sigma^2: its rounding is relative to that.
        scale = (x**2).sum(1).max() / s**2 * np.abs(g[i].numpy()).max()
        np.testing.assert_allclose(yt.grad[i].numpy(), want[0], rtol=0, atol=1e-13 * scale)
