"""One-command experiments: ``ledkde experiment NAME`` writes PNG plots and a JSON of every number.

Each experiment is a function ``run_NAME(out, quick, seed, threads, progress)`` that
returns the dict it also writes to ``out/NAME.json``. ``quick`` selects a small
configuration (seconds; what CI runs); the default finishes in minutes on 2 cores.
Plots need matplotlib (``pip install "ledkde[experiments]"``).
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

import ledkde

from . import _data

NAMES = ("bias-variance", "memorization", "collapse", "fashion-mnist")


class Skipped(Exception):
    """The experiment cannot run here (missing data); the message says why."""


def _plt():
    try:
        import matplotlib
    except ImportError:
        raise Skipped("plots need matplotlib: pip install matplotlib (or ledkde[experiments])") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(out: str, name: str, result: dict) -> dict:
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        if isinstance(v, np.ndarray):
            return clean(v.tolist())
        if isinstance(v, (np.floating, float)):
            return None if not np.isfinite(v) else float(v)
        if isinstance(v, np.integer):
            return int(v)
        return v

    result = clean(result)
    with open(os.path.join(out, f"{name}.json"), "w") as fh:
        json.dump(result, fh, indent=2)
    return result


# --------------------------------------------------------------------------- bias-variance
def _target(d: int, seed: int) -> ledkde.GaussianMixture:
    r = np.random.default_rng(seed)
    k = 4
    return ledkde.GaussianMixture(weights=np.full(k, 1.0 / k), means=2.0 * r.normal(size=(k, d)),
                                  variances=np.full(k, 0.25))


def run_bias_variance(out, quick=False, seed=0, threads=None, progress=None):
    """Score MSE = bias^2 + variance of plain and smoothed scores on a Gaussian mixture (d = 10)."""
    plt = _plt()
    d = 10
    target = _target(d, seed)
    n0 = 200 if quick else 400
    n_grid = np.array([50, 100, 200, 400, 800] if quick else [100, 200, 400, 800, 1600, 3200, 6400])
    times = np.geomspace(0.01, 10.0, 4 if quick else 8)
    repeats, n_eval = (4, 60) if quick else (30, 400)
    r = np.random.default_rng(seed)
    nn = ledkde.median_nn_distance(target.sample(n0, r))
    factors = [0.0, 0.5, 1.0]
    hs = [f * nn / np.sqrt(d) for f in factors]
    total = len(n_grid) + 1
    done = 0
    plain = []
    for n in n_grid:
        res = ledkde.score_error_study(target, int(n), times, [0.0], n_repeats=repeats, n_eval=n_eval,
                                       seed=seed + 1, threads=threads)
        plain.append(res["mse"][:, 0])
        done += 1
        if progress:
            progress(done, total)
    plain = np.array(plain)  # (len(n_grid), len(times))
    smooth = ledkde.score_error_study(target, n0, times, hs, n_repeats=repeats, n_eval=n_eval, n_kernel=16,
                                      seed=seed + 1, threads=threads)
    if progress:
        progress(total, total)
    n_eff = np.array([[ledkde.effective_dataset_size(n_grid, plain[:, a], smooth["mse"][a, b])
                       for a in range(len(times))] for b in range(len(hs))])

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for b, f in enumerate(factors):
        lab = "plain (h = 0)" if f == 0 else f"h sqrt(d) = {f:g} x NN distance"
        for ax, key in zip(axes, ("mse", "bias2", "variance")):
            # The unbiased squared-bias estimate can dip below 0 where the bias is
            # lost in the noise: those points are left out of the log plot.
            vals = smooth[key][:, b]
            ax.plot(times, np.where(vals > 0, vals, np.nan), "o-", label=lab)
    for i, n in enumerate(n_grid):
        if n != n0:
            axes[0].plot(times, plain[i], ":", color="gray", alpha=0.6)
            axes[0].text(times[-1], plain[i, -1], f" N={n}", fontsize=7, color="gray")
    for ax, title in zip(axes, ("score MSE per dimension", "squared bias", "variance")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("t")
        ax.set_title(f"{title} (N = {n0})")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "bias_variance.png"), dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4.2))
    for b, f in enumerate(factors[1:], start=1):
        ax.plot(times, n_eff[b] / n0, "o-", label=f"h sqrt(d) = {f:g} x NN distance")
    ax.axhline(1.0, color="gray", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("t")
    ax.set_ylabel("effective N / N")
    ax.set_title(f"plain-score training set with the smoothed score's MSE (N = {n0})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(os.path.join(out, "effective_size.png"), dpi=110)
    plt.close(fig)
    return _save(out, "bias-variance", {
        "d": d, "n_components": 4, "component_variance": 0.25, "n_train": n0, "times": times,
        "bandwidth_factors": factors, "bandwidths": hs, "median_nn_distance": nn,
        "smoothed": {k: smooth[k] for k in ("mse", "bias2", "variance")},
        "plain_n_grid": n_grid, "plain_mse": plain, "effective_n": n_eff,
        "files": ["bias_variance.png", "effective_size.png"],
    })


# --------------------------------------------------------------------------- memorization
def _memorization_on(out, tag, train, held_out, shape, quick, seed, threads, progress, n_sizes,
                     factors=(0.0, 0.4, 0.7, 1.0, 1.3, 1.6)):
    plt = _plt()
    d = train.shape[1]
    nn = ledkde.median_nn_distance(train, threads=threads)
    t_max = max(1.0, 10.0 * float(train.var(axis=0).max()))
    t_min = 1e-4 * nn**2
    n_samples, steps, draws = (8, 30, 4) if quick else (64, 150, 8)
    factors = [0.0, 0.5, 1.0, 1.5] if quick else list(factors)
    common = dict(t_max=t_max, t_min=t_min, steps=steps, seed=seed, threads=threads)
    mix = ledkde.Mixture(train)
    total = len(factors) + len(n_sizes)
    done = 0
    rows = []
    grids = {}
    for f in factors:
        t0 = time.perf_counter()
        x = ledkde.sample(mix, n_samples, bandwidth=f * nn / np.sqrt(d), n_kernel=draws if f else 1, **common)
        rep = ledkde.memorization(x, mix, held_out=held_out, threads=threads)
        rows.append({"factor": f, "bandwidth": f * nn / np.sqrt(d), **rep.summary(),
                     "wall_time_s": time.perf_counter() - t0})
        grids[f] = (x, rep.nearest)
        done += 1
        if progress:
            progress(done, total)
    # Against the training-set size, plain and at the default bandwidth.
    by_n = []
    for n in n_sizes:
        sub = train[:n]
        nn_n = ledkde.median_nn_distance(sub, threads=threads)
        entry = {"n_train": int(n), "median_nn_distance": nn_n}
        for label, f in (("plain", 0.0), ("smoothed", 1.0)):
            x = ledkde.sample(sub, n_samples, bandwidth=f * nn_n / np.sqrt(d), n_kernel=draws if f else 1,
                              **{**common, "t_min": 1e-4 * nn_n**2})
            rep = ledkde.memorization(x, sub, held_out=held_out, threads=threads)
            entry[label] = rep.summary()
        by_n.append(entry)
        done += 1
        if progress:
            progress(done, total)

    fig, ax = plt.subplots(1, 2, figsize=(11, 4))
    fs = [r["factor"] for r in rows]
    ax[0].plot(fs, [100 * r["memorized_fraction"] for r in rows], "o-")
    ax[0].set_xlabel("bandwidth h sqrt(d) / median NN distance")
    ax[0].set_ylabel("memorized samples (%)  [d1/d2 < 1/3]")
    ax[1].plot(fs, [r["mean_d1"] for r in rows], "o-", label="to nearest training image")
    ax[1].plot(fs, [r["mean_held_out_d1"] for r in rows], "s-", label="to nearest held-out image")
    ax[1].axhline(nn, color="gray", lw=0.8, ls="--", label="median NN distance of the data")
    ax[1].set_xlabel("bandwidth h sqrt(d) / median NN distance")
    ax[1].set_ylabel("mean distance")
    ax[1].legend(fontsize=8)
    fig.suptitle(f"{tag}: N = {len(train)}, {n_samples} samples per bandwidth")
    fig.tight_layout()
    fig.savefig(os.path.join(out, f"{tag}_vs_bandwidth.png"), dpi=110)
    plt.close(fig)
    files = [f"{tag}_vs_bandwidth.png"]
    if by_n:
        fig, ax = plt.subplots(figsize=(6, 4))
        ns = [e["n_train"] for e in by_n]
        for label in ("plain", "smoothed"):
            ax.plot(ns, [100 * e[label]["memorized_fraction"] for e in by_n], "o-",
                    label=label if label == "plain" else "smoothed (h sqrt(d) = NN distance)")
        ax.set_xscale("log")
        ax.set_xlabel("training-set size N")
        ax.set_ylabel("memorized samples (%)")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, f"{tag}_vs_n.png"), dpi=110)
        plt.close(fig)
        files.append(f"{tag}_vs_n.png")
    if shape is not None:
        for f in (factors[0], 1.0, factors[-1]):
            name = f"{tag}_samples_h{f:g}.png"
            _data.write_pairs_grid(os.path.join(out, name), [grids[f]], train, shape)
            files.append(name)
    return {"n_train": len(train), "n_held_out": len(held_out), "d": d, "median_nn_distance": nn,
            "t_max": t_max, "t_min": t_min, "steps": steps, "n_samples": n_samples, "n_kernel": draws,
            "by_bandwidth": rows, "by_n_train": by_n, "files": files}


def run_memorization(out, quick=False, seed=0, threads=None, progress=None):
    """Memorized fraction and held-out distance vs bandwidth and vs N on the 5,000 real MNIST images."""
    try:
        x, shape = _data.mnist_5k()
    except _data.DataError as exc:
        raise Skipped(str(exc)) from None
    if quick:
        train, held = x[:1000], x[4800:]
        sizes = [250, 1000]
    else:
        train, held = x[:4000], x[4000:]
        sizes = [500, 1000, 2000, 4000]
    res = _memorization_on(out, "mnist", train, held, shape, quick, seed, threads, progress, sizes)
    return _save(out, "memorization", res)


def run_fashion_mnist(out, quick=False, seed=0, threads=None, progress=None):
    """The memorization experiment at N = 60,000 (Debian's dataset-fashion-mnist)."""
    try:
        train, shape = _data.fashion_mnist("train")
        held, _ = _data.fashion_mnist("test")
    except _data.DataError as exc:
        raise Skipped(str(exc)) from None
    if quick:
        train, held = train[:2000], held[:500]
    # Four bandwidths at N = 60,000 keep the default run to a few minutes on 2 cores.
    res = _memorization_on(out, "fashion", train, held[:2000], shape, quick, seed, threads, progress, [],
                           factors=(0.0, 0.7, 1.0, 1.3))
    return _save(out, "fashion-mnist", res)


# --------------------------------------------------------------------------- collapse
def run_collapse(out, quick=False, seed=0, threads=None, progress=None):
    """Weight concentration along plain-score trajectories vs t, with the predicted t_C."""
    plt = _plt()
    configs = [(500, 8), (2000, 8)] if quick else [(1000, 8), (1000, 16), (5000, 16), (2000, 32)]
    n_samples, steps = (16, 40) if quick else (64, 120)
    r = np.random.default_rng(seed)
    rows = []
    fig, axes = plt.subplots(1, len(configs), figsize=(4.2 * len(configs), 3.8), squeeze=False)
    for c, (n, d) in enumerate(configs):
        data = r.normal(size=(n, d))
        t_pred = ledkde.collapse_time(data, method="isotropic")
        t_spec = ledkde.collapse_time(data)
        times = ledkde.time_grid(100.0 * t_pred, 1e-3 * t_pred, steps)
        mix = ledkde.Mixture(data, dtype=np.float64)
        _, traj = ledkde.sample(mix, n_samples, schedule=times, seed=seed, threads=threads,
                                return_trajectory=list(range(steps)), denoise_last=False)
        max_w = np.empty(steps)
        ent = np.empty(steps)
        for k in range(steps):
            ev = ledkde.evaluate(traj[k], mix, times[k], outputs=("max_weight", "entropy"), threads=threads)
            max_w[k] = np.median(ev["max_weight"])
            ent[k] = np.mean(ev["entropy"])
        above = np.nonzero(max_w >= 0.5)[0]
        t_obs = float(times[above[0]]) if above.size else float("nan")
        rows.append({"n": n, "d": d, "t_c_formula": t_pred, "t_c_spectrum": t_spec, "t_c_observed": t_obs,
                     "times": times[:steps], "median_max_weight": max_w, "mean_weight_entropy": ent})
        ax = axes[0, c]
        ax.plot(times[:steps], max_w, label="median max weight")
        ax.plot(times[:steps], ent / np.log(n), label="mean weight entropy / log N")
        ax.axvline(t_pred, color="k", ls="--", lw=1, label="predicted $t_C$")
        ax.axvline(t_obs, color="C3", ls=":", lw=1, label="observed (max weight = 1/2)")
        ax.set_xscale("log")
        ax.set_xlabel("t")
        ax.set_title(f"N = {n}, d = {d}")
        if c == 0:
            ax.legend(fontsize=7)
        if progress:
            progress(c + 1, len(configs))
    fig.tight_layout()
    fig.savefig(os.path.join(out, "collapse.png"), dpi=110)
    plt.close(fig)
    return _save(out, "collapse", {"configs": rows, "n_samples": n_samples, "steps": steps,
                                   "files": ["collapse.png"]})


RUNNERS = {
    "bias-variance": run_bias_variance,
    "memorization": run_memorization,
    "collapse": run_collapse,
    "fashion-mnist": run_fashion_mnist,
}
