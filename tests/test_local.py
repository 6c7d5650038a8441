"""The local (LS) and equivariant local (ELS) denoisers against the float64 reference, and
their identities: a whole-image window is the global denoiser, circular ELS commutes with
circular shifts, thread counts give identical bits, runs are reproducible by seed."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import ledkde
import ledkde.reference as ref

PADS = {False: ["zero", "circular"], True: ["zero", "circular", "boundary"]}
CASES = [(eq, pad) for eq in (False, True) for pad in PADS[eq]]


def images(seed, n, h, w, c, q=3, noise=0.3):
    r = np.random.default_rng(seed)
    x = r.random((n, h * w * c))
    y = x[r.integers(0, n, q)] + noise * r.normal(size=(q, h * w * c))
    return x, y


def check(x, y, t, shape, patch, eq, pad, dtype=np.float64, lw=None):
    loc = ledkde.Local(x.astype(dtype), image_shape=shape, patch=patch, equivariant=eq, padding=pad,
                       log_weights=lw)
    got = ledkde.denoise(y.astype(dtype), loc, t)
    want = ref.local_denoise(y.astype(dtype).astype(np.float64), x.astype(dtype).astype(np.float64), t,
                             image_shape=shape, patch=patch, equivariant=eq, padding=pad, log_weights=lw)
    assert got.dtype == dtype
    scale = np.abs(want).max()
    tol = 1e-10 if dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, want, rtol=0, atol=tol * scale)
    return got


@pytest.mark.parametrize("eq,pad", CASES)
@pytest.mark.parametrize("c", [1, 3])
@pytest.mark.parametrize("patch", [1, 3, 5, 13])
def test_every_variant_against_the_reference(eq, pad, c, patch):
    x, y = images(patch + 10 * c, 12, 6, 5, c)
    check(x, y, 0.05, (6, 5, c), patch, eq, pad)


@pytest.mark.parametrize("eq,pad", CASES)
@pytest.mark.parametrize("t", [1e-3, 0.05, 2.0])
def test_float32_within_its_rounding(eq, pad, t):
    x, y = images(7, 10, 5, 6, 2)
    check(x, y, t, (5, 6, 2), 3, eq, pad, dtype=np.float32)


@pytest.mark.parametrize("eq,pad", CASES)
def test_weighted_images(eq, pad):
    x, y = images(3, 9, 4, 4, 1)
    lw = np.random.default_rng(4).normal(size=9) * 2
    lw[2] = -np.inf
    check(x, y, 0.1, (4, 4), 3, eq, pad, lw=lw)


@pytest.mark.parametrize("pad", PADS[False])
def test_ls_over_many_groups_of_images_and_shards(pad):
    # LS reads its images kLsLanes = 8 at a time: 141 images are 17 full groups and one of
    # 5, split into shards for a single query; the weights include an image of weight 0.
    x, y = images(11, 141, 5, 7, 3, q=1)
    lw = np.random.default_rng(12).normal(size=141)
    lw[[0, 140]] = -np.inf
    check(x, y, 0.2, (5, 7, 3), 5, False, pad, lw=lw)
    check(x, y, 0.2, (5, 7, 3), 3, False, pad, dtype=np.float32)


@pytest.mark.parametrize("pad", PADS[False])
@pytest.mark.parametrize("c", [1, 2, 3])
@pytest.mark.parametrize("patch", [5, 15, 41])
def test_ls_keeps_or_recomputes_the_window_rows(pad, c, patch):
    # The LS column window reads the row leaving it back from a ring of the window's rows
    # while the ring is at most 16 KiB ((2r + 1) w kLsLanes doubles: patch 5 on 24 columns),
    # and recomputes it beyond (patch 15; patch 41 covers the 20 x 24 image and more).
    x, y = images(patch + c, 19, 20, 24, c, q=2)
    check(x, y, 0.3, (20, 24, c), patch, False, pad)
    check(x, y, 0.3, (20, 24, c), patch, False, pad, dtype=np.float32)


def test_a_window_over_the_whole_image_is_the_global_denoiser():
    x, y = images(5, 15, 6, 7, 2)
    loc = ledkde.Local(x, image_shape=(6, 7, 2), patch=13)  # P >= 2 max(H, W) - 1
    np.testing.assert_allclose(ledkde.denoise(y, loc, 0.07), ref.denoise(y, x, 0.07), rtol=0, atol=1e-12)
    np.testing.assert_allclose(ledkde.score(y, loc, 0.07), ref.score(y, x, 0.07), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("patch", [3, 5])
def test_circular_els_commutes_with_circular_shifts(patch):
    h, w = 6, 5
    x, y = images(6, 10, h, w, 1)
    loc = ledkde.Local(x, image_shape=(h, w), patch=patch, equivariant=True, padding="circular")
    shift = lambda a: np.roll(a.reshape(-1, h, w), (2, -1), axis=(1, 2)).reshape(len(a), -1)
    np.testing.assert_allclose(ledkde.denoise(shift(y), loc, 0.05), shift(ledkde.denoise(y, loc, 0.05)),
                               rtol=0, atol=1e-12)


@pytest.mark.parametrize("eq", [False, True])
def test_thread_counts_give_identical_bits(eq):
    x, y = images(8, 300, 8, 8, 1, q=5)
    loc = ledkde.Local(x.astype(np.float32), image_shape=(8, 8), patch=5, equivariant=eq)
    base = ledkde.denoise(y.astype(np.float32), loc, 0.05, threads=1)
    for th in (2, 3):
        np.testing.assert_array_equal(ledkde.denoise(y.astype(np.float32), loc, 0.05, threads=th), base)


@pytest.mark.parametrize("weighted", [False, True])
def test_merging_identical_patches_changes_nothing(weighted):
    # Images with large empty areas: most patches are the same (zero) patch; two images
    # are copies of others, so that whole patches repeat across images too.
    x, y = images(9, 20, 8, 8, 1)
    x[:, :40] = 0.0
    x[[5, 7]] = x[[1, 2]]
    lw = np.random.default_rng(10).normal(size=20) if weighted else None
    a = ledkde.Local(x, image_shape=(8, 8), patch=3, equivariant=True, merge=True, log_weights=lw)
    b = ledkde.Local(x, image_shape=(8, 8), patch=3, equivariant=True, merge=False, log_weights=lw)
    np.testing.assert_allclose(ledkde.denoise(y, a, 0.02), ledkde.denoise(y, b, 0.02), rtol=0, atol=1e-12)
    want = ref.local_denoise(y, x, 0.02, image_shape=(8, 8), patch=3, equivariant=True, log_weights=lw)
    np.testing.assert_allclose(ledkde.denoise(y, a, 0.02), want, rtol=0, atol=1e-10 * np.abs(want).max())


def test_the_sampler_runs_on_local_scores_reproducibly():
    x, _ = images(10, 30, 6, 6, 1)
    loc = ledkde.Local(x, image_shape=(6, 6), patch=3, equivariant=True)
    kw = dict(t_max=2.0, t_min=1e-3, steps=12, seed=4)
    a, b = ledkde.sample(loc, 5, **kw), ledkde.sample(loc, 5, **kw)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, ledkde.sample(loc, 5, **{**kw, "seed": 5}))
    # The reference's step rule with the reference's local score: the same run.
    times = ref.time_grid(2.0, 1e-3, 12)
    y = np.sqrt(times[0]) * ref.stream_normals(4, np.arange(5), 0, ref.PURPOSE_INIT_NOISE, 0, 36)
    for k in range(12):
        s = ref.local_score(y, x, times[k], image_shape=(6, 6), patch=3, equivariant=True)
        z = ref.stream_normals(4, np.arange(5), k, ref.PURPOSE_NOISE, 0, 36)
        D = times[k] - times[k + 1]
        y = y + (D * s + np.sqrt(D) * z)
    y = y + times[-1] * ref.local_score(y, x, times[-1], image_shape=(6, 6), patch=3, equivariant=True)
    np.testing.assert_allclose(a, y, rtol=0, atol=1e-8)


def test_a_patch_per_step_and_the_default_schedule():
    x, _ = images(11, 20, 8, 8, 1)
    loc = ledkde.Local(x, image_shape=(8, 8))
    assert loc.patch_at(1e-8) == 3 and loc.patch_at(1e4) == 7
    sizes = [loc.patch_at(t) for t in np.geomspace(1e-4, 10, 30)]
    assert sizes == sorted(sizes) and all(p % 2 == 1 for p in sizes)
    kw = dict(t_max=1.0, t_min=1e-2, steps=4, seed=1)
    a = ledkde.sample(loc, 3, patch=[7, 5, 3, 3], **kw)
    b = ledkde.sample(ledkde.Local(x, image_shape=(8, 8), patch=lambda t: 7 if t > 0.5 else (5 if t > 0.2 else 3)),
                      3, **kw)
    times = ledkde.time_grid(1.0, 1e-2, 4)
    assert [7 if t > 0.5 else (5 if t > 0.2 else 3) for t in times[:4]] == [7, 5, 3, 3]
    np.testing.assert_array_equal(a, b)


def test_what_a_local_score_refuses():
    x, y = images(12, 10, 4, 4, 1)
    loc = ledkde.Local(x, image_shape=(4, 4), patch=3)
    with pytest.raises(ValueError, match="^outputs: a local score has no normalized density"):
        ledkde.log_density(y, loc, 0.1)
    with pytest.raises(ValueError, match="^data: smoothed_score is not available for local denoisers"):
        ledkde.smoothed_score(y, loc, 0.1, bandwidth=0.1, n_kernel=2)
    with pytest.raises(ValueError, match="^device: the local denoisers run on the CPU only"):
        ledkde.denoise(y, loc, 0.1, device="cuda")
    with pytest.raises(ValueError, match="^patch: must be an odd size"):
        ledkde.Local(x, image_shape=(4, 4), patch=4)
    with pytest.raises(ValueError, match="^padding: 'boundary' is the equivariant"):
        ledkde.Local(x, image_shape=(4, 4), padding="boundary")
    with pytest.raises(ValueError, match="^image_shape: \\(5, 4\\) holds 20 values"):
        ledkde.Local(x, image_shape=(5, 4))
    with pytest.raises(ValueError, match="^patch: a patch size applies to local denoisers"):
        ledkde.sample(x, 2, t_max=1.0, t_min=0.1, steps=2, patch=3)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 8), h=st.integers(1, 6), w=st.integers(1, 6), c=st.integers(1, 3),
       patch=st.sampled_from([1, 3, 5, 7, 11]), t=st.floats(1e-3, 10.0), case=st.sampled_from(CASES),
       seed=st.integers(0, 1000))
def test_hypothesis_against_the_reference(n, h, w, c, patch, t, case, seed):
    x, y = images(seed, n, h, w, c, q=2)
    check(x, y, t, (h, w, c), patch, *case)
