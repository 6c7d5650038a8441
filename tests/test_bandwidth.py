"""Held-out bandwidth selection, the default rule, and the sample-quality figures."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import ledkde
from ledkde._bandwidth import sampler_defaults


def test_wilson_interval_known_values():
    # k = 0: the upper end is z^2 / (n + z^2); k = n mirrors it.
    lo, hi = ledkde.wilson_interval(0, 32)
    assert lo == 0.0 and hi == pytest.approx(1.96**2 / (32 + 1.96**2))
    lo, hi = ledkde.wilson_interval(32, 32)
    assert hi == 1.0 and lo == pytest.approx(32 / (32 + 1.96**2))
    lo, hi = ledkde.wilson_interval(10, 20)
    assert lo == pytest.approx(1 - hi)  # symmetric about 1/2
    with pytest.raises(ValueError, match="n"):
        ledkde.wilson_interval(0, 0)


def _gmm(d, n, seed):
    r = np.random.default_rng(seed)
    target = ledkde.GaussianMixture(means=r.normal(size=(16, d)) * 3.0, weights=np.full(16, 1 / 16),
                                    variances=np.full(16, 1.0))
    return target.sample(n, r)


def test_select_bandwidth_takes_the_least_smoothing_that_stops_memorization():
    x = _gmm(16, 700, 1)
    train, held = x[:500], x[500:]
    sel = ledkde.select_bandwidth(train, held_out=held, factors=(0, 1, 2, 3), n_samples=16, steps=40, n_kernel=4)
    fr = [r["factor"] for r in sel.table]
    assert fr == [0, 1, 2, 3]
    mem = {r["factor"]: r["memorized"] for r in sel.table}
    assert mem[0] > 0.9  # the plain score copies training points
    assert mem[sel.factor] <= 0.05
    assert all(mem[f] > 0.05 for f in fr if f < sel.factor)
    nn = ledkde.median_nn_distance(train)
    assert sel.bandwidth == pytest.approx(sel.factor * nn / 4.0)
    assert "(chosen)" in str(sel)


def test_select_bandwidth_names_bad_arguments():
    x = _gmm(4, 60, 2)
    with pytest.raises(ValueError, match="held_out"):
        ledkde.select_bandwidth(x, held_out=x[:, :3])
    with pytest.raises(ValueError, match="n_kernel"):
        ledkde.select_bandwidth(x, held_out=x, n_kernel=3)
    with pytest.raises(ValueError, match="factors"):
        ledkde.select_bandwidth(x, held_out=x, factors=(-1,))
    with pytest.raises(ValueError, match="max_memorized"):
        ledkde.select_bandwidth(x, held_out=x, max_memorized=1.5)


def test_bandwidth_rule_is_the_fit_to_the_measured_sweep():
    """The rule stays within 1.5x of every factor bench/bandwidth.py chose (bench/bandwidth.json):
    changing it without measuring again fails here."""
    sweep = json.loads((Path(__file__).parents[1] / "bench" / "bandwidth.json").read_text())
    assert len(sweep) >= 5
    for name, res in sweep.items():
        d = int(name.split("d=")[1].split()[0]) if "gmm" in name else 784
        rule = ledkde.bandwidth_rule(np.zeros((2, d)), nn=1.0) * np.sqrt(d)
        assert res["factor"] / 1.5 <= rule <= res["factor"] * 1.5, name
    for d in (16, 64, 784):
        x = np.random.default_rng(d).random((200, d))
        nn = ledkde.median_nn_distance(x)
        assert ledkde.bandwidth_rule(x) == pytest.approx(ledkde.bandwidth_rule(x, nn=nn))


def test_default_grid_starts_where_no_training_point_is_favoured():
    """Sparse images, half of them faint: from N(0, t_max I) the plain sampler must pick bright
    and faint images alike (with t_max = 10 x the per-coordinate variance it picked 20% bright)."""
    r = np.random.default_rng(0)
    x = (r.random((400, 200)) * (r.random((400, 200)) < 0.2)).astype(np.float32)
    x[:200] *= 0.3
    nn = ledkde.median_nn_distance(x)
    grid = sampler_defaults(x, nn)
    assert grid["t_max"] >= ((x - x.mean(axis=0)) ** 2).sum(axis=1).max() * (1 - 1e-6)
    s = ledkde.sample(x, 128, steps=60, seed=0, **grid)
    bright = (ledkde.memorization(s, x).nearest >= 200).mean()
    assert 0.3 < bright < 0.7  # 128 samples: the standard deviation of the fraction is 0.044


def test_sample_quality_of_copies_and_of_new_points():
    x = _gmm(8, 600, 3)
    train, held = x[:400], x[400:]
    copies = ledkde.sample_quality(train[:50], train, held_out=held)
    assert copies["memorized"] == 1.0 and copies["train_d1"] == 0.0
    new = ledkde.sample_quality(held[:50], train, held_out=held[50:])
    assert new["memorized"] < 0.2 and new["train_d1"] > 0.3


@pytest.mark.parametrize("d, warns", [(2, True), (8, True), (16, False), (784, False), (1000, True)])
def test_the_bandwidth_rule_warns_outside_the_dimensions_it_was_fitted_on(d, warns):
    x = np.random.default_rng(0).normal(size=(50, d))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        h = ledkde.bandwidth_rule(x, nn=1.0)
    assert h == pytest.approx(0.5 * d**0.4 / np.sqrt(d))
    said = [w for w in caught if issubclass(w.category, UserWarning) and "fitted on data of d = 16 to 784" in str(w.message)]
    assert len(said) == (1 if warns else 0)
