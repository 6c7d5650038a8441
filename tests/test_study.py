"""The instruments of the memorization study (ledkde.experiments.study) against exact answers."""

import numpy as np

import ledkde
from ledkde.experiments.study import _effective_n, along_data_fraction, denoising_loss


def test_along_data_fraction_exact_cases():
    r = np.random.default_rng(0)
    d, k = 40, 6
    data = r.normal(size=(200, d))
    nn = ledkde.median_nn_distance(data)
    a = 17
    nb = ledkde.nearest_neighbors(data[a:a + 1], data, k + 1).indices[0, 1:]
    diffs = data[nb] - data[a]
    # A small combination of the differences to a's k neighbours: all of it lies along the data.
    along = data[a] + 0.05 * r.uniform(0.2, 1.0, size=k) @ diffs
    # A small displacement orthogonal to that span: none of it does.
    q, _ = np.linalg.qr(diffs.T)
    v = r.normal(size=d)
    v -= q @ (q.T @ v)
    across = data[a] + 0.1 * nn * v / np.linalg.norm(v)
    # Half and half.
    u = along - data[a]
    half = data[a] + u + np.linalg.norm(u) * v / np.linalg.norm(v)
    got = along_data_fraction(np.stack([along, across, half, data[a]]), data, k=k, nn=nn)
    np.testing.assert_allclose(got[:3], [1.0, 0.0, 0.5], atol=1e-10)
    assert np.isnan(got[3])  # a copy has no direction


def test_denoising_loss_removes_the_monte_carlo_part():
    """The exact part of the loss does not move with the draws; the raw loss does."""
    r = np.random.default_rng(0)
    d = 32
    train = r.normal(size=(300, d)).astype(np.float32)
    held = r.normal(size=(400, d)).astype(np.float32)
    h = 2 * ledkde.median_nn_distance(train) / np.sqrt(d)
    for t in (0.05, 0.5):
        few = denoising_loss(held, train, t, h, n_kernel=4, seed=1)
        many = denoising_loss(held, train, t, h, n_kernel=64, seed=1)
        se = np.hypot(few["exact_se"], many["exact_se"])
        assert abs(few["exact"] - many["exact"]) < 3 * se
        assert few["loss"] - many["loss"] > 3 * se
        assert few["mc_part"] > 8 * many["mc_part"] > 0


def test_denoising_loss_of_the_plain_score_matches_the_reference():
    r = np.random.default_rng(1)
    train = r.normal(size=(50, 5))
    held = r.normal(size=(30, 5))
    t = 0.3
    got = denoising_loss(held, train, t, 0.0, n_kernel=1, seed=3)
    z = np.random.default_rng(3).standard_normal(held.shape)
    y = (held + np.sqrt(t) * z).astype(np.float32).astype(np.float64)
    s = ledkde.reference.score(y, train, t)
    want = (t * ((s + (y - held) / t) ** 2).sum(axis=1) / 5).mean()
    assert got["mc_part"] == 0 and got["exact"] == got["loss"]
    np.testing.assert_allclose(got["loss"], want, rtol=1e-12)


def test_effective_n_interpolates_in_log_n():
    sizes = np.array([100.0, 400.0, 1600.0])
    plain = [3.0, 2.0, 1.0]
    np.testing.assert_allclose(_effective_n(sizes, plain, 1.5), 800.0)
    assert _effective_n(sizes, plain, 3.0) == 100.0
    assert _effective_n(sizes, plain, 0.5) == "> 1600"
    assert _effective_n(sizes, plain, 3.5).startswith("< 100")
