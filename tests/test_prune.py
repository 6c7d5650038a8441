"""Certified pruning of the CPU pass (prune_cpu.cpp): at small t the components whose
weight provably lies below the working precision are skipped. Pruned results must
match the float64 reference as tightly as the dense pass does, repeat bit for bit
across thread counts, and the pruning must really happen (else these tests would
check nothing)."""

import numpy as np
import pytest

import ledkde
import ledkde.reference as ref
from helpers import ALL, check_against_reference
from ledkde import _core


def clustered(seed, n=20000, d=160, clusters=30, spread=0.3):
    """Data in clusters along a few directions (a low-dimensional structure, as images
    have, which the projection bound captures), and their nearest-neighbour scale."""
    r = np.random.default_rng(seed)
    basis = r.normal(size=(8, d))
    centres = r.normal(size=(clusters, 8)) @ basis
    data = centres[r.integers(0, clusters, n)] + spread * r.normal(size=(n, 8)) @ basis / 3
    data += 0.05 * r.normal(size=(n, d))
    return data


def queries(data, t, q, seed):
    r = np.random.default_rng(seed)
    return data[r.integers(0, len(data), q)] + np.sqrt(t) * r.normal(size=(q, data.shape[1]))


def pruned_fraction(fn):
    _core.prune_counts(True)
    out = fn()
    considered, computed = _core.prune_counts(True)
    return out, 1.0 - computed / max(considered, 1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("t", [1e-4, 1e-3, 1e-2])
@pytest.mark.parametrize("q", [5, pytest.param(300, marks=pytest.mark.slow)])  # 5: the components cut in shards
def test_pruned_pass_matches_the_reference(dtype, t, q):
    data = clustered(0)
    y = queries(data, t, q, 1)
    mix = ledkde.Mixture(data.astype(dtype))
    assert mix.pruning
    if dtype == np.float32 and t == 1e-4:
        # Coordinates up to ~22 from the centre: float32 holds them to 1.3e-6, more than
        # 1e-4 of sqrt(t) = 0.01, and the call is refused by name rather than be off.
        with pytest.raises(ValueError, match="^t: at t = 0.0001 the noise's scale"):
            ledkde.score(y.astype(dtype), mix, t)
        return
    _, frac = pruned_fraction(lambda: ledkde.score(y.astype(dtype), mix, t))
    assert frac > 0.5, f"nothing was pruned ({frac:.3f}): the test would check nothing"
    check_against_reference(y, data, t, None, None, dtype, prepared=True)


def test_few_queries_keep_pruning_when_shards_would_be_too_small():
    # 12,000 components: four shards of 3,000 would each be below what pays for
    # pruning (4,736 here, d = 160, k = 40), so the pass takes fewer shards and
    # still prunes (it went dense before, 3x slower on Fashion-MNIST N = 5000).
    data = clustered(5, n=12000)
    y = queries(data, 1e-3, 5, 6)
    mix = ledkde.Mixture(data.astype(np.float32))
    _, frac = pruned_fraction(lambda: ledkde.score(y.astype(np.float32), mix, 1e-3))
    assert frac > 0.5, frac
    check_against_reference(y, data, 1e-3, None, None, np.float32, prepared=True)


@pytest.mark.parametrize("t", [1e-3, 3e-2, 1.0, 1e3])
def test_pruned_and_dense_agree_at_every_t(t):
    # Small t prunes; at large t (every component within the margin) the probe must
    # send the pass to the dense route.
    data = clustered(2).astype(np.float32)
    y = queries(data, t, 64, 3).astype(np.float32)
    dense = ledkde.evaluate(y, ledkde.Mixture(data, prune=False), t, outputs=ALL)
    pruned, frac = pruned_fraction(lambda: ledkde.evaluate(y, ledkde.Mixture(data), t, outputs=ALL))
    if t >= 1e3:
        assert frac == 0.0
    scale = np.abs(dense["score"]).max()
    # float32 passes: the tolerances of the float32 reference tests (helpers.RTOL, 1e-4 of the
    # scale; entropy and max weight absolute); measured differences are about 7e-8 (bench/prune.py).
    np.testing.assert_allclose(pruned["score"], dense["score"], rtol=0, atol=1e-4 * scale)
    np.testing.assert_allclose(pruned["log_density"], dense["log_density"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pruned["entropy"], dense["entropy"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(pruned["max_weight"], dense["max_weight"], rtol=0, atol=1e-4)


def kept_fraction(data, y, t):
    """NumPy model of what the pruned pass would keep: each row's candidates (bound within
    the margin of its nearest distance) as a fraction of the components, a row keeping
    more than a quarter counted whole (it goes dense); the mean over rows."""
    from ledkde._mixture import principal_basis, projection_k

    c = data.mean(0, dtype=np.float64)
    m, yy = data - c, y - c
    basis = principal_basis(data, c, projection_k(data.shape[1]))
    zm, zy = m @ basis.T, yy @ basis.T
    n2, y2 = (m * m).sum(1), (yy * yy).sum(1)
    rm = np.sqrt(np.maximum(n2 - (zm * zm).sum(1), 0))
    ry = np.sqrt(np.maximum(y2 - (zy * zy).sum(1), 0))
    lb = (zy * zy).sum(1)[:, None] + (zm * zm).sum(1)[None] - 2 * zy @ zm.T + (ry[:, None] - rm[None]) ** 2
    d2 = y2[:, None] + n2[None] - 2 * yy @ m.T
    margin = (np.log(len(data)) - np.log(np.finfo(np.float32).eps) + 6) * 2 * t
    f = (lb <= (d2.min(1) + margin)[:, None]).mean(1)
    return float(np.where(f > 0.25, 1.0, f).mean())


@pytest.mark.parametrize(("t", "pays"), [(6.0, True), (18.0, False)])
def test_pruning_only_where_its_candidates_cost_less_than_the_dense_pass(t, pays):
    # The probes estimate the kept fraction from a few rows and go dense above the
    # break-even of the cost model, (d - 60) / 1400 = 0.071 at d = 160 (prune_cpu.cpp
    # kept_pays). At t = 18 about a quarter is kept, most rows below the per-row cap of a
    # quarter: the rule before (dense only when most rows pass the cap) pruned it, 1.1-1.8x
    # slower than the dense pass on Fashion-MNIST-like data (bench/prune.py).
    data = clustered(2).astype(np.float32)
    y = queries(data, t, 64, 3).astype(np.float32)
    kept = kept_fraction(data, y, t)
    break_even = (data.shape[1] - 60) / 1400
    assert (kept < 0.5 * break_even) if pays else (kept > 2 * break_even), kept
    pruned, frac = pruned_fraction(lambda: ledkde.score(y, ledkde.Mixture(data), t))
    assert (frac > 0.9) if pays else (frac == 0.0), frac
    dense = ledkde.score(y, ledkde.Mixture(data, prune=False), t)
    np.testing.assert_allclose(pruned, dense, rtol=0, atol=1e-4 * np.abs(dense).max())


@pytest.mark.parametrize("q", [3, 257])
def test_pruned_results_do_not_depend_on_threads(q):
    data = clustered(4).astype(np.float32)
    mix = ledkde.Mixture(data)
    y = queries(data, 1e-3, q, 5).astype(np.float32)
    runs = [ledkde.evaluate(y, mix, 1e-3, outputs=ALL, threads=k) for k in (1, 2, 3)]
    for r in runs[1:]:
        for k in ALL:
            np.testing.assert_array_equal(r[k], runs[0][k])


def test_competing_neighbours_are_not_pruned():
    # Each query halfway between two points: both carry weight 1/2; a wrong bound or
    # a wrong reference would drop one of them.
    data = clustered(6).astype(np.float64)
    r = np.random.default_rng(7)
    i = r.integers(0, len(data), 40)
    j = r.integers(0, len(data), 40)
    y = 0.5 * (data[i] + data[j])
    t = 1e-3 * np.median(((data[i] - data[j]) ** 2).sum(1))
    got, frac = pruned_fraction(lambda: ledkde.evaluate(y, ledkde.Mixture(data), t, outputs=ALL))
    assert frac > 0.5
    want = ref.evaluate(y, data, t)
    scale = np.abs(want["score"]).max()
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=1e-10 * scale)
    np.testing.assert_allclose(got["max_weight"], want["max_weight"], rtol=0, atol=1e-10)


def test_duplicates_and_queries_on_the_data():
    data = clustered(8)
    data[100:200] = data[100]  # a hundred copies of one point
    y = np.vstack([data[:50], data[100:105]])  # queries exactly on components
    t = 1e-4
    got, frac = pruned_fraction(lambda: ledkde.evaluate(y, ledkde.Mixture(data), t, outputs=ALL))
    assert frac > 0.5
    want = ref.evaluate(y, data, t)
    np.testing.assert_allclose(got["log_density"], want["log_density"], rtol=1e-10)
    np.testing.assert_allclose(got["entropy"], want["entropy"], rtol=0, atol=1e-9)


def test_shard_states_merge_to_the_whole_with_pruning():
    data = clustered(9)
    y = queries(data, 1e-3, 20, 10)
    whole = ledkde.evaluate(y, ledkde.Mixture(data), 1e-3, outputs=ALL)
    states = [ledkde.partial_state(y, ledkde.Mixture(part), 1e-3) for part in np.array_split(data, 2)]
    merged = ledkde.finalize(ledkde.merge_states(states))
    for k in ALL:
        np.testing.assert_allclose(merged[k], whole[k], rtol=1e-10, atol=1e-10)


def test_sampler_with_pruning_gives_the_dense_samples():
    data = clustered(11).astype(np.float32)
    kw = dict(t_max=20.0, t_min=1e-3, steps=40, seed=4)
    _core.prune_counts(True)
    pruned = ledkde.sample(ledkde.Mixture(data), 32, **kw)
    considered, computed = _core.prune_counts(True)
    dense = ledkde.sample(ledkde.Mixture(data, prune=False), 32, **kw)
    assert computed < 0.8 * considered  # the late steps pruned
    # float32 samples: the float32 reference tolerance (helpers.RTOL); measured 6e-8 on Fashion-MNIST.
    np.testing.assert_allclose(pruned, dense, rtol=0, atol=1e-4 * np.abs(dense).max())


def test_prune_argument_is_checked():
    with pytest.raises(TypeError, match="^prune: expected True or False"):
        ledkde.Mixture(clustered(0), prune="yes")
    assert not ledkde.Mixture(clustered(0)[:2000]).pruning  # too few points to pay


@pytest.mark.parametrize("noise", [0.0, pytest.param(0.01, marks=pytest.mark.slow), 0.1, 10.0])
@pytest.mark.parametrize("k", [1, pytest.param(2, marks=pytest.mark.slow), 7])
def test_pruned_nearest_neighbours_are_the_dense_ones(noise, k):
    # Exact: the same indices and bit-identical distances as without pruning (and the
    # brute force), from samples on the data (every distance 0 ties) to far away.
    data = clustered(12).astype(np.float32)
    r = np.random.default_rng(13)
    y = (data[r.integers(0, len(data), 70)] + noise * r.normal(size=(70, data.shape[1]))).astype(np.float32)
    got, frac = pruned_fraction(lambda: ledkde.nearest_neighbors(y, ledkde.Mixture(data), k))
    want = ledkde.nearest_neighbors(y, ledkde.Mixture(data, prune=False), k)
    if noise <= 0.01:
        assert frac > 0.5
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.distances, want.distances)
    d2 = ((y[:, None, :].astype(np.float64) - data[None].astype(np.float64)) ** 2).sum(-1)
    brute = np.argsort(d2, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(got.indices, brute)


def test_pruned_neighbours_break_ties_to_the_lower_index():
    data = clustered(14)
    data[3000:3010] = data[5]  # ten copies of point 5, far from it in index
    got = ledkde.nearest_neighbors(data[[5, 3004]], ledkde.Mixture(data), 3)
    assert got.indices.tolist() == [[5, 3000, 3001], [5, 3000, 3001]]
    assert not got.distances.any()


def test_memorization_is_the_same_with_and_without_pruning():
    data = clustered(15)
    r = np.random.default_rng(16)
    samples = data[r.integers(0, len(data), 50)] + 0.02 * r.normal(size=(50, data.shape[1]))
    a = ledkde.memorization(samples, ledkde.Mixture(data))
    b = ledkde.memorization(samples, ledkde.Mixture(data, prune=False))
    np.testing.assert_array_equal(a.nearest, b.nearest)
    np.testing.assert_array_equal(a.d1, b.d1)
    np.testing.assert_array_equal(a.d2, b.d2)
