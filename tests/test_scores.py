"""The fused score pass against ledkde.reference, and the identities it must keep."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ledkde
import ledkde.reference as ref
from helpers import ALL, RTOL, check_against_reference, make_problem


# Tolerances, and why.
# float64: every step is float64 with one rounding per operation; the logits of
# components near the maximum are recomputed from coordinate differences, so the
# only amplification is the condition of the softmax: 1e-10 relative to the
# natural scale of each quantity is ~10^5 ulp of headroom.
# float32: the inputs are rounded to float32 first (the reference gets the same
# rounded values, in float64). Products run in float32 (relative error
# ~sqrt(d) * 6e-8), near-maximum logits are recomputed in float64 and the rest
# carry an error bounded by the engine's gate (64 eps = 7.6e-6 in the logit),
# and outputs are rounded to float32 once. Weights are then right to ~2e-5
# relative, which gives the bounds below with a factor ~5 of headroom.
dims = st.one_of(st.integers(1, 12), st.sampled_from([31, 64, 100, 300, 784]))


@given(seed=st.integers(0, 2**32 - 1), q=st.integers(1, 9), n=st.integers(1, 60), d=dims,
       log_t=st.floats(-4, 4), weights=st.booleans(), variances=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]), prepared=st.booleans())
def test_matches_reference(seed, q, n, d, log_t, weights, variances, dtype, prepared):
    t = 10.0**log_t
    y, data, lw, var = make_problem(seed, q, n, d, t, weights=weights, variances=variances)
    check_against_reference(y, data, t, lw, var, dtype, prepared=prepared)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(2, 300),
       d=st.sampled_from([1, 2, 3, 8, 9, 16, 64]), tile_n=st.sampled_from([1, 5, 16, 64]),
       log_t=st.floats(-4, 2), weights=st.booleans(), variances=st.booleans(),
       far_first=st.booleans(), dtype=st.sampled_from([np.float64, np.float32]),
       prepared=st.booleans())
def test_many_tiles_match_reference(seed, n, d, tile_n, log_t, weights, variances, far_first, dtype,
                                    prepared):
    # Many component tiles per query: the sweeps shifted by the running maximum,
    # a later tile whose maximum lies far above it (data sorted farthest first),
    # and tiles holding near-maximum candidates for the exact recompute.
    t = 10.0**log_t
    y, data, lw, var = make_problem(seed, 5, n, d, t, weights=weights, variances=variances)
    if far_first:
        order = np.argsort(-((data - y[0]) ** 2).sum(1))
        data = data[order]
        lw = None if lw is None else lw[order]
        var = None if var is None else var[order]
    check_against_reference(y, data, t, lw, var, dtype, tile=(5, tile_n), prepared=prepared)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [2, 16, 64])
@pytest.mark.parametrize("t", [1e-3, 0.1, 100.0])
@pytest.mark.parametrize("mixture", [False, True])
@pytest.mark.parametrize("tile_n", [16, 32])  # 32 and prepared: the built-in products (float32, d > 8)
@pytest.mark.parametrize("prepared", [False, True])
def test_many_tiles_each_regime(dtype, d, t, mixture, tile_n, prepared):
    # The same as above on a fixed grid, so that each regime is always covered:
    # small t (one dominant component, candidates for the recompute), large t
    # (many comparable logits: the running maximum rises by small steps, and
    # in float64 no logit needs the recompute).
    y, data, lw, var = make_problem(8, 5, 300, d, t, weights=mixture, variances=mixture)
    # Farthest from the first query first: its maximum rises on every tile.
    order = np.argsort(-((data - y[0]) ** 2).sum(1))
    data = data[order]
    lw = None if lw is None else lw[order]
    var = None if var is None else var[order]
    check_against_reference(y, data, t, lw, var, dtype, tile=(5, tile_n), prepared=prepared)


@pytest.mark.parametrize("clusters", [2, 8])  # candidates: half of each tile; an eighth (patched one by one)
@pytest.mark.parametrize("tile_n", [16, 64])  # 16: not whole panels of 32, so BLAS; 64: the built-in products
@pytest.mark.parametrize("d", [16, 100, 784])
def test_competing_candidates_on_later_tiles_are_exact(d, tile_n, clusters):
    # Two clusters at -3 and +3 in every coordinate (the centre stays near 0):
    # |y|^2 is ~100 times the distances that decide the weights, so the
    # expanded logits are off by ~1e-3 and several components compete (t a
    # tenth of the nearest-neighbour scale). Candidates that arrive on a tile
    # after the row's running maximum was set must get exact weights too
    # (measured: 5e-6 of the cluster's score scale; with their approximate
    # weights left in, 3.5e-4).
    # With 8 clusters (corners of the cube at random) a row's candidates are
    # its own cluster, an eighth of each tile: their exact distances are
    # patched in four at a time (rows::exact_dist2s).
    r = np.random.default_rng(d)
    corners = np.where(r.random((clusters, d)) < 0.5, -3.0, 3.0)
    data = 0.3 * r.random((400, d)) + corners[np.arange(400) % clusters]
    d2 = ((data[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    t = 0.1 * np.median(d2.min(axis=1))
    y = (data[r.choice(400, 40)] + np.sqrt(t) * r.normal(size=(40, d))).astype(np.float32)
    data = data.astype(np.float32)
    got = ledkde.evaluate(y, data, t, outputs=("score", "log_density"), tile=(8, tile_n))
    want = ref.evaluate(y.astype(np.float64), data.astype(np.float64), t)
    # The float32 tolerance of check_against_reference on the clusters' own
    # scale (their spread over t; scale_of would take the gap between them).
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=RTOL[np.float32] * 0.3 / t)
    np.testing.assert_allclose(got["log_density"], want["log_density"], rtol=RTOL[np.float32],
                               atol=RTOL[np.float32])


@pytest.mark.parametrize("d", [16, 100, 784])
def test_many_candidates_whole_tile_exact(d):
    # Queries far out (the first steps of a sampler: y ~ x + sqrt(t) z with t
    # large) against many comparable components: most of a tile lies within
    # the candidates' margin, and the whole tile's logits are computed exactly
    # at once (built-in products: prepared float32 data).
    r = np.random.default_rng(d)
    data = r.random((600, d))
    t = 2.0
    y = data[r.choice(600, 40)] + np.sqrt(t) * r.normal(size=(40, d))
    check_against_reference(y, data, t, None, None, np.float32, tile=(16, 64), prepared=True)


@pytest.mark.parametrize("weights", [False, True])
@pytest.mark.parametrize("t", [1.0, 10.0])
@pytest.mark.parametrize("d", [16, 100, 784])
def test_far_queries_lifted_logits(d, t, weights):
    # Queries far from the data (|y - c|^2 > 4 max |mu - c|^2, equal
    # variances): the float logits leave out |y|^2, which the pass keeps in
    # float64 (lifted rows), with and without log-weights, every route.
    r = np.random.default_rng(d)
    data = r.random((700, d))
    y = data[r.choice(700, 30)] + np.sqrt(t) * r.normal(size=(30, d))
    c = data.mean(0)
    assert (((y - c) ** 2).sum(1) > 4 * ((data - c) ** 2).sum(1).max()).all()
    lw = r.normal(size=700) if weights else None
    for prepared in (False, True):
        check_against_reference(y, data, t, lw, None, np.float32, tile=(16, 64), prepared=prepared)


@given(seed=st.integers(0, 2**32 - 1), d=st.sampled_from([9, 16, 40]), log_t=st.floats(-2, 0),
       dtype=st.sampled_from([np.float32, np.float64]), tile_n=st.sampled_from([256, 240]))
def test_blocks_without_weight_are_skipped_exactly(seed, d, log_t, dtype, tile_n):
    # Near components scattered among many far ones: many blocks of 64
    # components of a tile carry no weight (the single sweep leaves them at
    # zero and the built-in products skip them), the others weights from 1
    # down to far below the rounding, the rows of one micro-tile disagree
    # about which blocks carry weight, and near components arriving after the
    # running maximum is set are patched in with exact logits. (float32 with
    # 256-component tiles: the built-in products; otherwise BLAS, whose second
    # product leaves out the rows without weight.)
    r = np.random.default_rng(seed)
    t = 10.0**log_t
    n, near = 1500, 100
    # Far from the queries (logits ~ -1e3 / t), on both sides so that the
    # data's centre stays near the near cluster.
    data = r.random((n, d)) + np.where(r.random((n, 1)) < 0.5, -50.0, 50.0)
    where = r.choice(n, near, replace=False)
    data[where] = r.random((near, d))            # the near cluster, in random blocks
    y = (data[r.choice(where, 30)] + np.sqrt(t) * r.normal(size=(30, d))).astype(dtype)
    data = data.astype(dtype)
    got = ledkde.evaluate(y, ledkde.Mixture(data), t, outputs=("score", "log_density"), tile=(32, tile_n))
    want = ref.evaluate(y.astype(np.float64), data.astype(np.float64), t)
    # The tolerances of check_against_reference, on the scale of the near
    # cluster (the far points would make scale_of 100 times larger).
    s_scale = np.ptp(np.vstack([y, data[where]])) / t
    np.testing.assert_allclose(got["score"], want["score"], rtol=0, atol=RTOL[dtype] * s_scale)
    np.testing.assert_allclose(got["log_density"], want["log_density"], rtol=RTOL[dtype], atol=RTOL[dtype])


@given(seed=st.integers(0, 2**32 - 1), d=st.sampled_from([2, 16, 784]),
       dtype=st.sampled_from([np.float64, np.float32]))
def test_small_t_relative_to_nearest_neighbour(seed, d, dtype):
    # t down to 1e-4 times the squared nearest-neighbour distance.
    r = np.random.default_rng(seed)
    data = r.random((200, d))
    d2 = ((data[:, None, :] - data[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d2, np.inf)
    t = 1e-4 * np.median(d2.min(axis=1))
    y = data[:7] + np.sqrt(t) * r.normal(size=(7, d))
    check_against_reference(y, data, t, None, None, dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("t", [1e-3, 1.0])
@pytest.mark.parametrize("d", [2, 24])  # coordinate differences; expanded products
def test_shift_invariance_far_from_origin(dtype, t, d, rng):
    # Offsets of 1e3 times the data scale: score and log-density must not move.
    data = rng.normal(size=(300, d))
    y = data[:20] + np.sqrt(t) * rng.normal(size=(20, d))
    offset = 1e3 * rng.normal(size=d)
    # Round the shifted problem to the working dtype once, then compare with the
    # unshifted problem built from the same rounded numbers (exact in float64).
    ys, ds = (y + offset).astype(dtype), (data + offset).astype(dtype)
    y0 = ys.astype(np.float64) - offset
    d0 = ds.astype(np.float64) - offset
    far = ledkde.evaluate(ys, ds, t, outputs=("score", "log_density"))
    near = ref.evaluate(y0, d0, t)
    s_scale = np.ptp(np.vstack([y0, d0])) / t
    np.testing.assert_allclose(far["score"], near["score"], rtol=0, atol=RTOL[dtype] * s_scale)
    np.testing.assert_allclose(far["log_density"], near["log_density"], rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_permutation_of_data(dtype, rng):
    y, data, lw, var = make_problem(1, 30, 500, 10, 0.1, weights=True, variances=True)
    perm = rng.permutation(500)
    a = ledkde.evaluate(y.astype(dtype), data.astype(dtype), 0.1, outputs=ALL, log_weights=lw, variances=var)
    b = ledkde.evaluate(y.astype(dtype), data[perm].astype(dtype), 0.1, outputs=ALL, log_weights=lw[perm],
                        variances=var[perm])
    for k in ALL:
        np.testing.assert_allclose(a[k], b[k], rtol=RTOL[dtype] * 10, atol=RTOL[dtype] * 10)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_thread_count_independence_is_exact(dtype):
    y, data, lw, _ = make_problem(2, 300, 2000, 33, 0.05, weights=True)
    y, data = y.astype(dtype), data.astype(dtype)
    base = ledkde.evaluate(y, data, 0.05, outputs=ALL, log_weights=lw, threads=1)
    for threads in (2, 3, 7):
        other = ledkde.evaluate(y, data, 0.05, outputs=ALL, log_weights=lw, threads=threads)
        for k in ALL:
            np.testing.assert_array_equal(base[k], other[k])


@pytest.mark.parametrize("tile", [(1, 1), (3, 7), (64, 100), (512, 4096)])
def test_tile_size_independence(tile):
    y, data, lw, var = make_problem(3, 70, 900, 12, 0.3, weights=True, variances=True)
    a = ledkde.evaluate(y, data, 0.3, outputs=ALL, log_weights=lw, variances=var)
    b = ledkde.evaluate(y, data, 0.3, outputs=ALL, log_weights=lw, variances=var, tile=tile)
    for k in ALL:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("weighted", [False, True])
def test_shards_merge_to_one_pass(dtype, weighted, rng):
    y, data, lw, var = make_problem(4, 25, 1000, 9, 0.2, weights=weighted, variances=True)
    y, data = y.astype(dtype), data.astype(dtype)
    whole = ledkde.evaluate(y, data, 0.2, outputs=ALL, log_weights=lw, variances=var)
    cuts = [0, 1, 300, 301, 777, 1000]
    states = [ledkde.partial_state(y, data[a:b], 0.2, variances=var[a:b],
                                   log_weights=None if lw is None else lw[a:b])
              for a, b in zip(cuts[:-1], cuts[1:])]
    rng.shuffle(states)  # the merge is associative and commutative
    merged = ledkde.finalize(ledkde.merge_states(states))
    for k in ALL:
        np.testing.assert_allclose(merged[k], whole[k], rtol=RTOL[dtype], atol=RTOL[dtype])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_single_point_exact(dtype, rng):
    x = rng.normal(size=(1, 17)).astype(dtype)
    y = rng.normal(size=(5, 17)).astype(dtype)
    t = 0.37
    out = ledkde.evaluate(y, x, t, outputs=ALL)
    want = (x.astype(np.float64) - y.astype(np.float64)) / t
    np.testing.assert_allclose(out["score"], want, rtol=RTOL[dtype] / 100, atol=0)
    np.testing.assert_allclose(out["denoise"], np.broadcast_to(x, y.shape), rtol=RTOL[dtype] / 10,
                               atol=RTOL[dtype] / 10)
    np.testing.assert_array_equal(out["max_weight"], 1)
    np.testing.assert_allclose(out["entropy"], 0, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_score_is_denoiser_difference(dtype, rng):
    data = rng.normal(size=(400, 20)).astype(dtype)
    y = rng.normal(size=(30, 20)).astype(dtype)
    t = 0.8
    out = ledkde.evaluate(y, data, t, outputs=("score", "denoise"))
    np.testing.assert_allclose(out["score"], (out["denoise"].astype(np.float64) - y) / t,
                               rtol=0, atol=RTOL[dtype] * np.abs(y).max() / t * 10)


def test_zero_weight_components_are_ignored(rng):
    y, data, _, _ = make_problem(5, 10, 50, 4, 0.5)
    lw = np.zeros(50)
    lw[10:] = -np.inf
    a = ledkde.evaluate(y, data, 0.5, outputs=ALL, log_weights=lw)
    b = ledkde.evaluate(y, data[:10], 0.5, outputs=ALL)
    for k in ALL:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-12)


def test_single_functions_match_fused(rng):
    y, data, lw, var = make_problem(6, 12, 80, 5, 0.2, weights=True, variances=True)
    fused = ledkde.evaluate(y, data, 0.2, outputs=ALL, log_weights=lw, variances=var)
    kw = dict(log_weights=lw, variances=var)
    np.testing.assert_array_equal(ledkde.score(y, data, 0.2, **kw), fused["score"])
    np.testing.assert_array_equal(ledkde.denoise(y, data, 0.2, **kw), fused["denoise"])
    np.testing.assert_array_equal(ledkde.log_density(y, data, 0.2, **kw), fused["log_density"])


def test_prepared_mixture_gives_same_results(rng):
    y, data, lw, var = make_problem(7, 12, 80, 5, 0.2, weights=True, variances=True)
    mix = ledkde.Mixture(data, log_weights=lw, variances=var)
    np.testing.assert_array_equal(ledkde.score(y, mix, 0.2), ledkde.score(y, data, 0.2, log_weights=lw, variances=var))


def test_layouts_and_inputs_untouched(rng):
    data = np.asfortranarray(rng.normal(size=(60, 8)))
    y_big = rng.normal(size=(20, 16))
    y = y_big[::2, ::2]  # non-contiguous view
    before = (data.copy(), y_big.copy())
    got = ledkde.score(y, data, 0.4)
    np.testing.assert_allclose(got, ref.score(np.ascontiguousarray(y), np.ascontiguousarray(data), 0.4),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(data, before[0])
    np.testing.assert_array_equal(y_big, before[1])


def test_dtype_rules(rng):
    data8 = rng.integers(0, 256, size=(30, 6)).astype(np.uint8)
    y32 = rng.normal(size=(4, 6)).astype(np.float32)
    assert ledkde.score(y32, data8, 1.0).dtype == np.float32
    assert ledkde.score(y32.astype(np.float64), data8, 1.0).dtype == np.float64
    assert ledkde.score(y32, data8.astype(np.int64), 1.0).dtype == np.float64
    np.testing.assert_allclose(ledkde.score(y32, data8, 1.0), ref.score(y32, data8, 1.0), rtol=0,
                               atol=RTOL[np.float32] * 300)


def test_empty_queries(rng):
    data = rng.normal(size=(10, 3))
    out = ledkde.evaluate(np.zeros((0, 3)), data, 1.0, outputs=ALL)
    assert out["score"].shape == (0, 3) and out["log_density"].shape == (0,)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("d", [3, 40])  # coordinate-difference and matrix-product paths
def test_few_queries_many_components(dtype, d):
    # Few query tiles: the pass splits the components into shards and merges
    # them; the result must match the reference and not depend on threads.
    y, data, lw, var = make_problem(11, 5, 3000, d, 0.05, weights=True, variances=True)
    check_against_reference(y, data, 0.05, lw, var, dtype)
    a = ledkde.evaluate(y.astype(dtype), data.astype(dtype), 0.05, outputs=ALL, log_weights=lw, variances=var,
                        threads=1)
    b = ledkde.evaluate(y.astype(dtype), data.astype(dtype), 0.05, outputs=ALL, log_weights=lw, variances=var,
                        threads=3)
    for k in ALL:
        np.testing.assert_array_equal(a[k], b[k])


def _run_with_kernels(script, variable, value):
    """Runs script (reference checks) in a fresh interpreter with the kernel
    choice variable set (it is read at import); returns the set it printed."""
    import os
    import subprocess
    import sys

    tests = os.path.dirname(os.path.abspath(__file__))
    out = subprocess.run([sys.executable, "-c", script.format(tests=tests)],
                         env=dict(os.environ, **{variable: value}), capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[-1]


KERNEL_SET_SCRIPT = """
import sys, numpy as np, ledkde
sys.path.insert(0, {tests!r})
from helpers import check_against_reference, make_problem
for d, n, t in ((9, 70, 0.3), (64, 700, 0.05), (100, 300, 2.0), (300, 200, 0.5)):
    for mixture in (False, True):
        y, data, lw, var = make_problem(d, 37, n, d, t, weights=mixture, variances=mixture)
        check_against_reference(y, data, t, lw, var, np.float32)
        check_against_reference(y, data, t, lw, var, np.float32, tile=(8, 64))
print(ledkde._core.TILE_GEMM_ISA)
"""


@pytest.mark.parametrize("kernels", ["avx2", "none"])
def test_each_kernel_set_matches_reference(kernels):
    # The built-in tile products are compiled for AVX-512 and AVX2, and BLAS
    # serves other CPUs; LEDKDE_TILE_GEMM (read at import) lowers the choice,
    # so each set runs here in a fresh interpreter, whatever this CPU prefers.
    used = _run_with_kernels(KERNEL_SET_SCRIPT, "LEDKDE_TILE_GEMM", kernels)
    # The environment lowers the choice only as far as the CPU allows.
    assert used == kernels or (kernels == "avx2" and used == "none")


ROW_SET_SCRIPT = """
import sys, numpy as np, ledkde
sys.path.insert(0, {tests!r})
from helpers import check_against_reference, make_problem
for d, n, t in ((1, 300, 0.01), (2, 900, 1e-3), (5, 300, 0.3), (8, 200, 2.0), (24, 700, 0.05)):
    for mixture in (False, True):
        y, data, lw, var = make_problem(d, 37, n, d, t, weights=mixture, variances=mixture, offset=100.0)
        for dtype in (np.float32, np.float64):
            check_against_reference(y, data, t, lw, var, dtype)
print(ledkde._core.ROW_KERNELS_ISA)
"""


@pytest.mark.parametrize("kernels", ["avx2", "baseline"])
def test_each_row_kernel_set_matches_reference(kernels):
    # The row kernels are built for AVX-512, AVX2+FMA and the baseline;
    # LEDKDE_ROW_KERNELS (read at import) lowers the choice, so each set runs
    # here in a fresh interpreter.
    used = _run_with_kernels(ROW_SET_SCRIPT, "LEDKDE_ROW_KERNELS", kernels)
    assert used == kernels or (kernels == "avx2" and used == "baseline")


def test_row_kernels_use_the_best_instruction_set_of_this_cpu():
    # GCC's target_clones resolver once chose the baseline build on an AVX2
    # machine; the load-time choice must follow the CPU's own flags.
    import os
    if os.environ.get("LEDKDE_ROW_KERNELS") or not os.path.exists("/proc/cpuinfo"):
        pytest.skip("needs Linux /proc/cpuinfo and no LEDKDE_ROW_KERNELS override")
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    if not flags:
        pytest.skip("no x86 flags line in /proc/cpuinfo")
    want = "avx512" if "avx512f" in flags else "avx2" if {"avx2", "fma"} <= set(flags) else "baseline"
    assert ledkde._core.ROW_KERNELS_ISA == want
