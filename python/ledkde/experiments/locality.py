"""``ledkde experiment locality``: what locality and equivariance do to the samples.

On MNIST (and Fashion-MNIST when installed) the same seeds drive the sampler with five
scores: the plain empirical score, the kernel-smoothed one (the measured bandwidth rule),
the local score (LS, zero padding) and the equivariant local score (ELS, zero, circular
and boundary padding). Per method and data set: the memorized fraction (d1 / d2 < 1/3)
with its 95% interval, the distance to the nearest held-out image, diversity, the energy
distance to the held-out images, the sharpness (the share of a sample's ink pixels, those
above 0.1, that are grey, between 0.25 and 0.75: real digits about 0.3) and the mosaic
(how many different training images a sample's patches come from: each 5 x 5 patch of the
sample with ink, zero padding, matched to its nearest training patch at any position; the
effective number of source images, exp of the entropy of their shares: 1 for a copy of one
image, k for patches drawn evenly from k images).
Three claims are tested on each data set, each on two seeds: ELS samples are not copies
(at most 10% memorized), they are sharp (grey share at most 0.15 above the real images'),
and they are built from many training images' patches (a median of at least 4 per
sample, against at most 2 for the plain score's copies).

The patch sizes follow ledkde.Local's default schedule, capped at PATCH_CAP: ELS costs
H W x N H W x P^2 per sample and step, and at the schedule's end (the image's size) a run
of N = 500 would take hours on 2 cores. The cap is this experiment's choice.
"""

from __future__ import annotations

import os
import time

import numpy as np

import ledkde

from .._bandwidth import bandwidth_rule, sample_quality, wilson_interval
from . import data as _data
from .plots import Skipped, write_pairs_grid

METHODS = ("plain", "smoothed", "LS zero", "ELS zero", "ELS circular", "ELS boundary")
MOSAIC_PATCH = 5
INK, GREY = 0.1, (0.25, 0.75)
PATCH_CAP = {True: 5, False: 9}  # --quick, full runs


def grey_share(images: np.ndarray) -> np.ndarray:
    """Per image, the share of its ink pixels (above INK) that are grey (within GREY)."""
    x = np.asarray(images, dtype=np.float64)
    ink = x > INK
    grey = ink & (x >= GREY[0]) & (x <= GREY[1])
    return grey.sum(1) / np.maximum(ink.sum(1), 1)


def _patches(images: np.ndarray, shape) -> np.ndarray:
    """(n, H W, P^2) the MOSAIC_PATCH patches of images (zero padding)."""
    from .. import reference

    r = MOSAIC_PATCH // 2
    return np.stack([reference._patches(im.reshape(shape[0], shape[1], 1), r, "zero").reshape(shape[0] * shape[1], -1)
                     for im in images])


def mosaic(samples: np.ndarray, train_patches, shape, threads=None) -> np.ndarray:
    """Per sample, the effective number of training images its patches with ink come from
    (each matched to its nearest training patch, any image, any position): exp of the
    entropy of the images' shares."""
    hw = shape[0] * shape[1]
    out = []
    sp = _patches(np.clip(samples, 0.0, 1.0), shape).astype(np.float32)
    for s in sp:
        keep = np.abs(s).max(axis=1) > INK  # patches with some ink
        if not keep.any():
            out.append(0)
            continue
        idx = ledkde.nearest_neighbors(s[keep], train_patches, 1, threads=threads).indices[:, 0]
        _, counts = np.unique(idx // hw, return_counts=True)
        share = counts / counts.sum()
        out.append(float(np.exp(-(share * np.log(share)).sum())))
    return np.asarray(out)


def _datasets(quick: bool):
    sets = []
    try:
        x, shape = _data.mnist_5k()
        perm = np.random.default_rng(0).permutation(len(x))
        x = x[perm].astype(np.float32)
        sets.append(("mnist", x[1000:], x[:1000], shape))
    except _data.DataError as exc:
        raise Skipped(str(exc)) from None
    try:
        tr, shape = _data.fashion_mnist("train")
        te, _ = _data.fashion_mnist("test")
        sets.append(("fashion-mnist", tr.astype(np.float32), te.astype(np.float32)[:1000], shape))
    except _data.DataError:
        pass  # MNIST alone; the JSON says which data sets ran
    n_train = 60 if quick else 500
    return [(name, tr[:n_train], ho[: 200 if quick else 1000], shape) for name, tr, ho, shape in sets]


def _scores(train, shape, nn, cap):
    """The data of each method: (data, extra sample() arguments)."""
    sigma = float(np.sqrt(train.astype(np.float64).var(axis=0).mean()))
    loc = dict(image_shape=shape, patch=lambda t: min(cap, ledkde._local.default_patch(t, shape + (1,), sigma)))
    return {
        "plain": (train, {}),
        "smoothed": (train, dict(bandwidth=bandwidth_rule(train, nn=nn), n_kernel=8, antithetic=True)),
        "LS zero": (ledkde.Local(train, **loc), {}),
        "ELS zero": (ledkde.Local(train, equivariant=True, **loc), {}),
        "ELS circular": (ledkde.Local(train, equivariant=True, padding="circular", **loc), {}),
        "ELS boundary": (ledkde.Local(train, equivariant=True, padding="boundary", **loc), {}),
    }


def _measure(x, train, held, nn, train_patches, shape, threads) -> dict:
    q = sample_quality(x, train, held_out=held, nn=nn, threads=threads)
    mos = mosaic(x, train_patches, shape, threads)
    return {**q, "grey_share": float(np.median(grey_share(x))), "mosaic_median": float(np.median(mos)),
            "mosaic": mos.tolist()}


def _claims(rows: dict, real_grey: float) -> dict:
    """The three claims of the module docstring, per seed."""
    out = {}
    for seed, r in rows.items():
        els = r["ELS zero"]
        lo, hi = wilson_interval(int(round(els["memorized"] * els["n"])), els["n"])
        out[seed] = {
            "els_not_copies": bool(els["memorized"] <= 0.10),
            "els_sharp": bool(els["grey_share"] <= real_grey + 0.15),
            "els_mosaic": bool(els["mosaic_median"] >= 4 and r["plain"]["mosaic_median"] <= 2),
            "els_memorized_ci95": [lo, hi],
        }
    held = {k: all(out[s][k] for s in out) for k in ("els_not_copies", "els_sharp", "els_mosaic")}
    return {"per_seed": out, "held_on_every_seed": held}


def run_locality(out, quick=False, seed=0, threads=None, progress=None):
    """Plain, smoothed, LS and ELS samples on MNIST (and Fashion-MNIST), measured; claims tested on two seeds."""
    sets = _datasets(quick)
    n_samples, steps = (2, 5) if quick else (8, 16)
    seeds = (seed, seed + 1)
    total = len(sets) * len(seeds) * len(METHODS)
    done, files = 0, []
    result = {"methods": METHODS, "n_samples": n_samples, "steps": steps, "patch_cap": PATCH_CAP[quick], "data": {}}
    for name, train, held, shape in sets:
        nn = ledkde.median_nn_distance(train, threads=threads)
        grid = dict(t_max=float(((train - train.mean(0)) ** 2).sum(1).max()), t_min=1e-3 * nn * nn, steps=steps)
        train_patches = ledkde.Mixture(_patches(train, shape).reshape(-1, MOSAIC_PATCH**2).astype(np.float32))
        scores = _scores(train, shape, nn, PATCH_CAP[quick])
        rows, pictures = {}, {}
        for s in seeds:
            rows[s] = {}
            for method in METHODS:
                data, extra = scores[method]
                t0 = time.perf_counter()
                x = ledkde.sample(data, n_samples, seed=s, threads=threads, **grid, **extra)
                wall = time.perf_counter() - t0
                rows[s][method] = {**_measure(x, train, held, nn, train_patches, shape, threads), "n": n_samples,
                                   "wall_time_s": wall}
                if s == seeds[0]:
                    pictures[method] = x
                done += 1
                if progress:
                    progress(done, total)
        real_grey = float(np.median(grey_share(held)))
        picture = f"locality_{name}.png"
        runs = []
        for method in METHODS:
            x = pictures[method]
            runs.append((x, ledkde.nearest_neighbors(x, train, 1, threads=threads).indices[:, 0],
                         ledkde.nearest_neighbors(x, held, 1, threads=threads).indices[:, 0]))
        write_pairs_grid(os.path.join(out, picture), runs, train, shape, held_out=held,
                         titles=[f"{m} memorized {100 * rows[seeds[0]][m]['memorized']:.0f}%" for m in METHODS])
        files.append(picture)
        result["data"][name] = {"n_train": len(train), "n_held_out": len(held), "median_nn_distance": nn,
                                "grid": grid, "real_grey_share": real_grey,
                                "runs": {str(s): rows[s] for s in seeds}, "claims": _claims(rows, real_grey)}
    result["files"] = files
    return result


def table(result: dict) -> str:
    """The experiment's table (Markdown): per data set, method and seed."""
    lines = ["| data | method | seed | memorized (95% CI) | held-out d1 / NN | diversity | energy / NN | "
             "grey share | mosaic (effective images, median) | time (s) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, d in result["data"].items():
        for s, rows in d["runs"].items():
            for method, r in rows.items():
                lo, hi = r["memorized_ci95"]
                lines.append(f"| {name} | {method} | {s} | {100 * r['memorized']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}%) | "
                             f"{r['held_out_d1']:.3f} | {r['diversity']:.2f} | {r['energy']:.3f} | "
                             f"{r['grey_share']:.2f} | {r['mosaic_median']:.1f} | {r['wall_time_s']:.1f} |")
        lines.append(f"| {name} | real held-out images | | | | | | {d['real_grey_share']:.2f} | | |")
    return "\n".join(lines)
