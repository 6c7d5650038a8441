"""The counter-based random stream (SPEC section 3)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import ledkde
import ledkde.reference as ref
from ledkde import _core


@pytest.mark.parametrize("counter,key,want", [
    # Known answers of Philox4x32-10 (the Random123 test vectors).
    ([0, 0, 0, 0], [0, 0], [0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8]),
    ([0xFFFFFFFF] * 4, [0xFFFFFFFF] * 2, [0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD]),
    ([0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344], [0xA4093822, 0x299F31D0],
     [0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1]),
])
def test_philox_known_answers(counter, key, want):
    assert list(_core.philox4x32_10(counter, key)) == want
    assert list(ref.philox4x32_10(np.array(counter), key)) == want


@given(seed=st.integers(0, 2**64 - 1), index=st.integers(0, 2**32 - 1), step=st.integers(0, 2**32 - 1),
       purpose=st.sampled_from([1, 2, 3, 4]), draw=st.integers(0, 2**24 - 1), d=st.integers(1, 13))
def test_engine_and_reference_draw_the_same_normals(seed, index, step, purpose, draw, d):
    a = _core.stream_normals(seed, index, step, purpose, draw, d)
    b = ref.stream_normals(seed, index, step, purpose, draw, d)
    np.testing.assert_allclose(a, b, rtol=1e-14, atol=1e-14)


def test_normals_are_standard():
    z = ref.stream_normals(7, np.arange(20000), 3, 1, 0, 8).ravel()
    n = z.size
    # Mean and variance within 5 standard errors; a normal's 4th moment is 3.
    assert abs(z.mean()) < 5 / np.sqrt(n)
    assert abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    assert abs((z**4).mean() - 3) < 5 * np.sqrt(96 / n)
    # Different coordinates of one draw are uncorrelated.
    zz = z.reshape(-1, 8)
    c = np.corrcoef(zz.T)
    assert np.abs(c - np.eye(8)).max() < 5 / np.sqrt(zz.shape[0])


def test_uniform_ball_draws_fill_the_ball():
    d, h = 3, 2.0
    u = ref.kernel_draws(5, 4000, 0, 1, d, h, kernel="uniform")[:, 0, :]
    r = np.linalg.norm(u, axis=1)
    assert r.max() <= h
    # P(|u| <= h/2) = 1/8 for the uniform 3-ball.
    frac = (r <= h / 2).mean()
    assert abs(frac - 1 / 8) < 5 * np.sqrt(1 / 8 * 7 / 8 / 4000)
