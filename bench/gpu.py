"""GPU benchmark: ledkde's CUDA backend beside PyTorch on the same GPU, in one run.

    python bench/gpu.py [--quick] [--json PATH] [--fashion PATH]

Needs a CUDA device, the CUDA build of ledkde and PyTorch with CUDA. Measures:

* the GPU's exact float32 matrix-product rate (PyTorch 8192^3 with TF32 off):
  "limit" = the pass's 4 Q N d flops at that rate;
* score, float32, (Q=1024, N=60000, d=784) at t = 0.05 and t = 10 (every component
  carries weight) and (Q=16384, N=16384, d=2): ledkde
  (data resident on the GPU as a Mixture; NumPy queries in and out, so the
  transfers are counted) beside PyTorch SDPA with the augmentation
  q = [y/t, 1], k = [x, -|x|^2/(2t)], v = x (zero-padded to a multiple of 8) and
  beside a plain PyTorch matmul-softmax-matmul, each checked against ledkde; for
  d = 784 also ledkde with TF32 weighted sums and with logit_tolerance=3e-3 (the
  CPU's float32 default; the CUDA copies use the strict rule unless it is given),
  each with its error against the float64 pass;
* certified pruning (opt-in on the GPU: ledkde.set_cuda_prune): score, float32,
  Q = 1024 queries x_i + sqrt(t) z on the 60,000 Fashion-MNIST training images
  at t = 10, 1, 0.1, 0.003: the dense pass, the pruned pass (with the fraction
  of components skipped and its error against the dense pass) and PyTorch's
  matmul path; and the sampler below once more with pruning on;
* 10,000 samples, 100 Euler-Maruyama steps on the 60,000 Fashion-MNIST training
  images (Debian's dataset-fashion-mnist, or --fashion PATH to the gzip IDX
  file): ledkde.sample against the same loop written in PyTorch (matmul score).

Prints a Markdown table and writes JSON (default bench/results_gpu.json).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time

import numpy as np


def cuda_time(fn, repeat=5, warmup=1):
    import torch
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def matmul_rate(torch, n=8192):
    a = torch.randn(n, n, device="cuda")
    b = torch.randn(n, n, device="cuda")
    t = cuda_time(lambda: a @ b, repeat=5)
    return 2 * n**3 / t


def torch_sdpa_score(torch, y, x, t):
    """Score by SDPA with the augmented q, k, v (PyTorch picks its kernel)."""
    F = torch.nn.functional
    d = x.shape[1]
    q = torch.cat([y / t, torch.ones_like(y[:, :1])], 1)
    k = torch.cat([x, -(x * x).sum(1, keepdim=True) / (2 * t)], 1)
    pad = (-q.shape[1]) % 8
    q = F.pad(q, (0, pad))
    k = F.pad(k, (0, pad))
    v = F.pad(x, (0, (-d) % 8))
    den = F.scaled_dot_product_attention(q[None, None], k[None, None], v[None, None], scale=1.0)[0, 0, :, :d]
    return (den - y) / t


def torch_matmul_score(torch, y, x, t, xn=None, chunk=4096):
    """Score by logits = (y.x - |x|^2/2)/t, softmax, weights @ x (chunked over queries)."""
    xn = (x * x).sum(1) if xn is None else xn
    out = torch.empty_like(y)
    for i in range(0, y.shape[0], chunk):
        yi = y[i:i + chunk]
        logits = (yi @ x.T - 0.5 * xn) / t
        w = torch.softmax(logits, 1)
        out[i:i + chunk] = (w @ x - yi) / t
    return out


def pruned(ledkde, fn):
    """fn() with the GPU's pruning on, and the (considered, computed) counts of its passes."""
    from ledkde import _device
    m = _device.cuda_module()
    m.prune_counts(True)
    ledkde.set_cuda_prune(True)
    try:
        out = fn()
    finally:
        ledkde.set_cuda_prune(False)
    return out, m.prune_counts(True)


def prune_rows(torch, ledkde, images, label, rate, Q, rng):
    """Score rows at t = 10, 1, 0.1, 0.003 on images (N x d float32): dense, pruned, PyTorch matmul."""
    N, d = images.shape
    mix = ledkde.Mixture(images)
    xt = torch.from_numpy(images).cuda()
    out = []
    for t in (10.0, 1.0, 0.1, 0.003):
        y = (images[rng.integers(0, N, Q)] + np.sqrt(t) * rng.normal(size=(Q, d))).astype(np.float32)
        dense = ledkde.score(y, mix, t, device="cuda")
        row = {"case": f"score Q={Q} N={N} d={d} t={t:g} ({label}), dense / pruned",
               "ledkde_s": cuda_time(lambda: ledkde.score(y, mix, t, device="cuda")), "limit_s": 4 * Q * N * d / rate}
        try:
            got, (considered, computed) = pruned(ledkde, lambda: ledkde.score(y, mix, t, device="cuda"))
            row["pruned"] = 1 - computed / max(considered, 1)
            row["pruned_err"] = float(np.abs(got - dense).max() / np.abs(dense).max())
            row["pruned_s"] = pruned(ledkde, lambda: cuda_time(lambda: ledkde.score(y, mix, t, device="cuda")))[0]
        except Exception as e:
            row["pruned_error"] = f"{type(e).__name__}: {e}"[:300]
        yt = torch.from_numpy(y).cuda()
        try:
            fn = lambda: torch_matmul_score(torch, yt, xt, t)  # noqa: E731
            row["matmul_err"] = float(np.abs(fn().cpu().numpy() - dense).max() / np.abs(dense).max())
            row["matmul_s"] = cuda_time(fn)
        except Exception as e:
            row["matmul_error"] = f"{type(e).__name__}: {e}"[:200]
        out.append(row)
        print(row, flush=True)
    return out


def fashion_mnist(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    n, h, w = (int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(3))
    return np.frombuffer(raw, np.uint8, offset=16).reshape(n, h * w).astype(np.float32) / 255.0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smaller shapes (a smoke run)")
    ap.add_argument("--json", default=os.path.join(os.path.dirname(__file__), "results_gpu.json"))
    ap.add_argument("--fashion", default="/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz")
    ap.add_argument("--skip-sampler", action="store_true")
    args = ap.parse_args(argv)

    import torch
    import ledkde
    if not (ledkde.cuda_available() and torch.cuda.is_available()):
        sys.exit("bench/gpu.py needs a CUDA device, ledkde's CUDA backend and PyTorch with CUDA")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    rate = matmul_rate(torch)
    name = torch.cuda.get_device_name()
    print(f"device: {name}; PyTorch {torch.__version__}; exact float32 matmul {rate / 1e12:.1f} TFLOP/s", flush=True)
    rows = []
    rng = np.random.default_rng(0)
    shapes = [(1024, 60000, 784, 0.05), (1024, 60000, 784, 10.0), (16384, 16384, 2, 0.01)]
    if args.quick:
        shapes = [(256, 8000, 784, 0.05), (4096, 4096, 2, 0.01)]
    for Q, N, d, t in shapes:
        data = (rng.normal(size=(N, d)) / np.sqrt(d)).astype(np.float32)
        y = (data[rng.integers(0, N, Q)] + np.sqrt(t) * rng.normal(size=(Q, d)) / 4).astype(np.float32)
        mix = ledkde.Mixture(data)
        ledkde.score(y[:4], mix, t, device="cuda")  # make the data resident
        ours = ledkde.score(y, mix, t, device="cuda")
        t_ours = cuda_time(lambda: ledkde.score(y, mix, t, device="cuda"))
        yt, xt = torch.from_numpy(y).cuda(), torch.from_numpy(data).cuda()
        row = {"case": f"score Q={Q} N={N} d={d} t={t:g}", "ledkde_s": t_ours,
               "limit_s": 4 * Q * N * d / rate}
        scale = np.abs(ours).max()
        for label, fn in (("sdpa", lambda: torch_sdpa_score(torch, yt, xt, t)),
                          ("matmul", lambda: torch_matmul_score(torch, yt, xt, t))):
            try:
                theirs = fn().cpu().numpy()
                row[f"{label}_err"] = float(np.abs(theirs - ours).max() / scale)
                row[f"{label}_s"] = cuda_time(fn)
            except Exception as e:  # e.g. out of memory
                row[f"{label}_error"] = f"{type(e).__name__}: {e}"[:200]
        if d > 8:
            # Opt-in TF32 weighted sums: time and error against the float64 pass.
            exact64 = ledkde.score(y.astype(np.float64), ledkde.Mixture(data.astype(np.float64)), t,
                                   device="cuda")
            ledkde.set_cuda_tf32(True)
            try:
                fast = ledkde.score(y, mix, t, device="cuda")
                row["tf32_s"] = cuda_time(lambda: ledkde.score(y, mix, t, device="cuda"))
            finally:
                ledkde.set_cuda_tf32(False)
            s64 = np.abs(exact64).max()
            row["tf32_err"] = float(np.abs(fast - exact64).max() / s64)
            tol_mix = ledkde.Mixture(data, logit_tolerance=3e-3)
            tol = ledkde.score(y, tol_mix, t, device="cuda")
            row["tol3e-3_s"] = cuda_time(lambda: ledkde.score(y, tol_mix, t, device="cuda"))
            row["tol3e-3_err"] = float(np.abs(tol - exact64).max() / s64)
            row["float32_err"] = float(np.abs(ours - exact64).max() / s64)
        rows.append(row)
        print(row, flush=True)

    if os.path.exists(args.fashion):
        images = fashion_mnist(args.fashion)
        images_label = "Fashion-MNIST"
    else:
        images = rng.random((60000, 784), dtype=np.float32)
        images_label = "uniform noise (Fashion-MNIST not found)"
    if not args.skip_sampler:
        data, label = images, images_label
        n_s, steps = (10000, 100) if not args.quick else (1000, 20)
        t_max, t_min = 20.0, 1e-3
        mix = ledkde.Mixture(data)
        kw = dict(t_max=t_max, t_min=t_min, steps=steps, seed=1, device="cuda")
        ledkde.sample(mix, 8, **{**kw, "steps": 2})  # resident data, warm
        t0 = time.perf_counter()
        ours = ledkde.sample(mix, n_s, **kw)
        t_ours = time.perf_counter() - t0
        grid = ledkde.time_grid(t_max, t_min, steps)
        xt = torch.from_numpy(data).cuda()
        xn = (xt * xt).sum(1)

        def torch_run():
            g = torch.Generator(device="cuda").manual_seed(1)
            yk = torch.randn(n_s, data.shape[1], device="cuda", generator=g) * float(np.sqrt(t_max))
            for k in range(steps):
                D = float(grid[k] - grid[k + 1])
                s = torch_matmul_score(torch, yk, xt, float(grid[k]), xn, chunk=2500)
                yk = yk + D * s + float(np.sqrt(D)) * torch.randn(yk.shape, device="cuda", generator=g)
            return yk + t_min * torch_matmul_score(torch, yk, xt, t_min, xn, chunk=2500)

        torch_run_small = torch_run
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        theirs = torch_run_small().cpu().numpy()
        t_torch = time.perf_counter() - t0
        # Both are exact samplers of the same chain with different noise: compare
        # what they memorize (fraction whose nearest training image is closer than
        # a third of the second nearest) rather than the samples themselves.
        fr = []
        for s in (ours, theirs):
            nn = ledkde.nearest_neighbors(s[:500], data, 2)
            dist = nn[1] if isinstance(nn, tuple) else nn["distances"]
            fr.append(float(np.mean(dist[:, 0] < dist[:, 1] / 3)))
        row = {"case": f"sampler {n_s} samples N={data.shape[0]} d={data.shape[1]} {steps} EM steps ({label})",
               "ledkde_s": t_ours, "matmul_s": t_torch,
               "limit_s": (steps + 1) * 4 * n_s * data.shape[0] * data.shape[1] / rate,
               "memorized_ledkde": fr[0], "memorized_torch": fr[1]}
        rows.append(row)
        print(row, flush=True)

    # The GPU's pruned pass after every dense row (it had not run on a device when this was
    # written: a fault in it cannot cost the rows above).
    rows += prune_rows(torch, ledkde, images[:8000] if args.quick else images, images_label, rate,
                       256 if args.quick else 1024, rng)
    if not args.skip_sampler:
        # The dense run above once more with the GPU's pruning on (the same noise: samples agree to rounding).
        t0 = time.perf_counter()
        ours_p, (considered, computed) = pruned(ledkde, lambda: ledkde.sample(mix, n_s, **kw))
        row = {"case": f"sampler, GPU pruning on ({label})", "ledkde_s": time.perf_counter() - t0,
               "limit_s": row["limit_s"], "matmul_s": t_torch, "pruned": 1 - computed / max(considered, 1),
               "pruned_err": float(np.abs(ours_p - ours).max() / np.abs(ours).max())}
        rows.append(row)
        print(row, flush=True)

    print(f"\n{name}; exact float32 matmul {rate / 1e12:.1f} TFLOP/s; medians of 5 (sampler: one run)\n")
    print("| case | ledkde (s) | vs limit | PyTorch SDPA (s) | SDPA / ledkde | PyTorch matmul (s) | matmul / ledkde "
          "| ledkde TF32 (s) | ledkde logit_tolerance=3e-3 (s) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        def cell(k):
            return f"{r[k]:.4f}" if k in r else "-"

        def ratio(k):
            return f"{r[k] / r['ledkde_s']:.2f}x" if k in r else "-"
        print(f"| {r['case']} | {r['ledkde_s']:.4f} | {r['ledkde_s'] / r['limit_s']:.2f}x | {cell('sdpa_s')} | "
              f"{ratio('sdpa_s')} | {cell('matmul_s')} | {ratio('matmul_s')} | {cell('tf32_s')} | "
              f"{cell('tol3e-3_s')} |")
    print("\n| case | dense (s) | pruned (s) | dense / pruned | components skipped | pruned error | "
          "PyTorch matmul (s) | matmul / pruned |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        if "pruned" in r or "pruned_error" in r:
            p = r.get("pruned_s", r["ledkde_s"] if "sampler" in r["case"] else None)
            pc = f"{p:.4f}" if p else r.get("pruned_error", "-")
            dense_s = "-" if "sampler" in r["case"] else f"{r['ledkde_s']:.4f}"
            speed = f"{r['ledkde_s'] / p:.2f}x" if p and "sampler" not in r["case"] else "-"
            mm = f"{r['matmul_s'] / p:.2f}x" if p and "matmul_s" in r else "-"
            print(f"| {r['case']} | {dense_s} | {pc} | {speed} | {r.get('pruned', float('nan')):.4f} | "
                  f"{r.get('pruned_err', float('nan')):.1e} | {r.get('matmul_s', float('nan')):.4f} | {mm} |")
    for r in rows:
        if "tf32_err" in r:
            print(f"\n{r['case']}: max |error| / max |score| against ledkde float64: float32 "
                  f"{r['float32_err']:.1e}, TF32 {r['tf32_err']:.1e}, logit_tolerance=3e-3 {r['tol3e-3_err']:.1e}; "
                  f"PyTorch SDPA {r.get('sdpa_err', float('nan')):.1e}, matmul {r.get('matmul_err', float('nan')):.1e} "
                  "(those two against ledkde float32)")
    with open(args.json, "w") as f:
        json.dump({"device": name, "matmul_flops": rate, "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()
