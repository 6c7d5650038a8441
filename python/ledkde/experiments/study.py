"""The memorization experiments (``ledkde experiment memorization`` and ``fashion-mnist``).

They separate what smoothing does from what Monte Carlo noise does. Every setting
of bandwidth x kernel draws x estimator (naive average vs the control estimator
with antithetic pairs) is sampled with the same seed and measured by
:func:`ledkde.sample_quality` (memorized fraction with a 95% interval, distance to
the nearest held-out image, diversity, energy distance to the held-out set) plus
the run's Monte Carlo error. Three claims of the seed method are then tested, each
at the chosen bandwidth in every check run (the smallest and 8x the draws; a
second seed), and each is said to hold only if it holds in all of them:

- **less memorization**: the smoothed samples' memorized interval lies wholly
  below the plain score's;
- **acts like a larger data set**: on held-out images ``x0`` noised to
  ``y = x0 + sqrt(t) z``, the denoising score-matching loss
  ``t |s(y) + (y - x0) / t|^2 / d``, which equals the score's mean squared error
  against the true score up to a constant independent of the estimator, is lower
  for the smoothed score at N than for the plain score at N; the effective N is
  the N at which the plain score reaches the smoothed loss. The Monte Carlo part
  of the loss (the reported variance) is subtracted, so the figure is that of the
  exact smoothed score and does not move with the draws;
- **mass spread along the data**: the displacement of a (not memorized) sample
  from its nearest training image lies mostly in the span of that image's k
  nearest training neighbours (``along_data_fraction``; an isotropic displacement
  would put k/d there). Held-out images give the value real data have.

Time-dependent bandwidths (constant, switched on only below the collapse time,
proportional to sqrt(t)) are compared on the same figures, each at its own
smallest non-memorizing factor.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np

from .._bandwidth import MAX_MEMORIZED, least_smoothing, sample_quality, sampler_defaults
from .._sampler import sample
from .._scores import Mixture, score, smoothed_score
from .._toolkit import collapse_time, median_nn_distance, nearest_neighbors
from .plots import pyplot, write_pairs_grid

FORMS = ("constant", "below_tc", "sqrt_t")


@dataclass
class StudyConfig:
    """What one study runs (see the module docstring)."""

    factors: tuple  # h sqrt(d) / NN, 0 first (the plain score)
    draws: tuple  # kernel draws; the last is 8x the first
    n_samples: int
    steps: int
    sizes: tuple  # training-set sizes for the plain score's loss curve; sizes[0] is smoothed
    loss_times: tuple  # t / t_C of the score-matching loss
    loss_queries: int
    form_factors: tuple | None  # factors tried for the time-dependent forms (None: not compared)
    k_along: int = 16
    sweep_draws: tuple | None = None  # draws of the whole sweep (default: draws); the rest only at the chosen factor


def along_data_fraction(points, data, *, k: int = 16, nn: float, threads=None) -> np.ndarray:
    """Per point, the fraction of ``|p - a|^2`` (a: its nearest training point) in the
    span of ``x_j - a`` over a's k nearest other training points; NaN where
    ``|p - a| < 1e-3 NN`` (a copy has no direction). Isotropic displacements give k/d."""
    pts = np.asarray(points, dtype=np.float64)
    arr = np.asarray(data, dtype=np.float64)
    a = nearest_neighbors(points, data, 1, threads=threads).indices[:, 0]
    nb = nearest_neighbors(arr[a], data, k + 1, threads=threads).indices
    out = np.full(len(pts), np.nan)
    for i in range(len(pts)):
        disp = pts[i] - arr[a[i]]
        norm2 = float(disp @ disp)
        if norm2 < (1e-3 * nn) ** 2:
            continue
        others = nb[i][nb[i] != a[i]][:k]
        basis, _ = np.linalg.qr((arr[others] - arr[a[i]]).T)
        proj = basis.T @ disp
        out[i] = float(proj @ proj) / norm2
    return out


def denoising_loss(held_out, train, t, h, *, n_kernel, seed, threads=None) -> dict:
    """Score-matching loss ``t |s(y) + (y - x0)/t|^2 / d`` on ``y = x0 + sqrt(t) z`` for the
    plain (h = 0) or control-antithetic smoothed score of ``train``: mean, its standard
    error over queries, and the mean Monte Carlo part ``t se^2 / d`` (subtracted in
    ``exact``)."""
    x0 = np.asarray(held_out, dtype=np.float64)
    d = x0.shape[1]
    z = np.random.default_rng(seed).standard_normal(x0.shape)
    y = (x0 + np.sqrt(t) * z).astype(np.float32)
    resid_target = (y.astype(np.float64) - x0) / t
    if h > 0:
        s, se = smoothed_score(y, train, t, bandwidth=h, n_kernel=n_kernel, antithetic=True, seed=seed,
                               return_error=True, threads=threads)
        mc = t * se.astype(np.float64) ** 2 / d
    else:
        s, mc = score(y, train, t, threads=threads), np.zeros(len(y))
    per = t * ((s.astype(np.float64) + resid_target) ** 2).sum(axis=1) / d
    return {"loss": float(per.mean()), "loss_se": float(per.std(ddof=1) / np.sqrt(len(per))),
            "mc_part": float(mc.mean()), "exact": float((per - mc).mean()),
            "exact_se": float((per - mc).std(ddof=1) / np.sqrt(len(per)))}


def _bandwidth_form(form: str, h: float, t_c: float):
    if form == "constant":
        return h
    if form == "below_tc":
        return lambda t: h if t <= t_c else 0.0
    return lambda t: h * np.sqrt(t / t_c)  # sqrt_t: equal to h at t_C


class _Runner:
    """Draws and measures the samples of one setting; keeps everything for the claims and pictures."""

    def __init__(self, train, held, cfg: StudyConfig, seed, threads):
        self.train, self.held, self.cfg, self.threads = train, held, cfg, threads
        self.d = train.shape[1]
        self.nn = median_nn_distance(train, threads=threads)
        self.grid = sampler_defaults(train, self.nn)
        self.t_c = collapse_time(train)
        self.mix = Mixture(train)
        self.seed = seed
        self.samples = {}

    def run(self, factor, estimator, draws, seed, form="constant") -> dict:
        h = factor * self.nn / np.sqrt(self.d)
        smooth = h > 0
        t0 = time.perf_counter()
        x, err = sample(self.mix, self.cfg.n_samples, steps=self.cfg.steps, bandwidth=_bandwidth_form(form, h, self.t_c),
                        n_kernel=draws if smooth else 1, estimator=estimator if smooth else "control",
                        antithetic=smooth and estimator == "control", seed=seed, return_error=True,
                        threads=self.threads, **self.grid)
        wall = time.perf_counter() - t0
        q = sample_quality(x, self.mix, held_out=self.held, nn=self.nn, threads=self.threads)
        along = along_data_fraction(x, self.train, k=self.cfg.k_along, nn=self.nn, threads=self.threads)
        row = {"factor": factor, "bandwidth": h, "form": form, "estimator": estimator if smooth else "plain",
               "draws": draws if smooth else 1, "seed": seed, **q,
               "mc_error_mean": float(err.mean()), "mc_error_last": float(err[-1]),
               "along_data": None if np.isnan(along).all() else float(np.nanmedian(along)),
               "along_data_samples": int(np.isfinite(along).sum()), "wall_time_s": wall}
        self.samples[(factor, row["estimator"], row["draws"], seed, form)] = x
        return row


def _pick(rows, **match):
    return [r for r in rows if all(r[k] == v for k, v in match.items())]


def run_study(out, tag, train, held, shape, cfg: StudyConfig, seed=0, threads=None, progress=None) -> dict:
    """Run every part; write ``{tag}_*.png``; return the result dict (the caller saves it)."""
    R = _Runner(train, held, cfg, seed, threads)
    m0 = cfg.draws[0]
    smooth_f = [f for f in cfg.factors if f > 0]
    n_forms = len(cfg.form_factors or ()) * (len(FORMS) - 1)
    sweep_m = cfg.sweep_draws or cfg.draws
    total = 1 + 2 * len(smooth_f) * len(sweep_m) + 4 + n_forms + 1
    done = [0]

    def tick():
        done[0] += 1
        if progress:
            progress(min(done[0], total), total)

    # 1. bandwidth x draws x estimator, one seed.
    sweep = [R.run(0.0, "plain", 1, seed)]
    tick()
    for f in smooth_f:
        for est in ("naive", "control"):
            for m in sweep_m:
                sweep.append(R.run(f, est, m, seed))
                tick()
    plain = sweep[0]
    chosen = (least_smoothing(_pick(sweep, estimator="control", draws=sweep_m[-1]))
              or max(sweep, key=lambda r: r["factor"]))
    f_star = chosen["factor"]
    # 2. the check runs at the chosen factor: the smallest and 8x the draws, a second seed.
    for m in cfg.draws:
        if not _pick(sweep, factor=f_star, estimator="control", draws=m):
            sweep.append(R.run(f_star, "control", m, seed))
    checks = [_pick(sweep, factor=f_star, estimator="control", draws=m)[0] for m in cfg.draws]
    checks.append(R.run(f_star, "control", m0, seed + 1))
    tick()
    plain2 = R.run(0.0, "plain", 1, seed + 1)
    tick()
    naive2 = R.run(f_star, "naive", m0, seed + 1)
    tick()
    # 3. time-dependent bandwidths, each at its smallest non-memorizing factor.
    forms = []
    forms_best = {}
    if cfg.form_factors:
        forms_best["constant"] = least_smoothing(_pick(sweep, estimator="control", draws=m0))
        for form in FORMS[1:]:
            rows = []
            for f in cfg.form_factors:
                rows.append(R.run(f, "control", m0, seed, form))
                tick()
            forms += rows
            forms_best[form] = least_smoothing(rows)
    # 4. the score-matching loss against N (effective N), at the chosen factor and every other.
    loss = _loss_part(R, cfg, seed, smooth_f, f_star)
    tick()

    claims = _claims(plain, plain2, checks, naive2, loss, R, f_star)
    files = _plots(out, tag, R, sweep, loss, cfg, f_star, shape)
    return {"n_train": len(train), "n_held_out": len(held), "d": R.d, "median_nn_distance": R.nn,
            "collapse_time": R.t_c, **{k: v for k, v in R.grid.items()}, "steps": cfg.steps,
            "n_samples": cfg.n_samples, "draws": list(cfg.draws), "factors": list(cfg.factors),
            "sweep_draws": list(sweep_m), "chosen_factor": f_star,
            "chosen_rule": f"smallest factor with memorized <= {MAX_MEMORIZED:g} (control estimator, "
                           f"{sweep_m[-1]} draws)",
            "by_setting": sweep, "check_runs": checks + [plain2, naive2],
            "bandwidth_forms": {"rows": forms, "best": forms_best,
                                "definition": {"constant": "h", "below_tc": "h for t <= t_C, else 0",
                                               "sqrt_t": "h sqrt(t / t_C)"}},
            "score_matching": loss, "claims": claims, "files": files}


def _loss_part(R: _Runner, cfg: StudyConfig, seed, smooth_f, f_star) -> dict:
    n0 = cfg.sizes[0]
    ho = R.held[: cfg.loss_queries]
    times = [float(a * R.t_c) for a in cfg.loss_times]
    nn0 = median_nn_distance(R.train[:n0], threads=R.threads)
    plain = {n: [denoising_loss(ho, R.train[:n], t, 0.0, n_kernel=1, seed=seed, threads=R.threads)["exact"]
                 for t in times] for n in cfg.sizes}
    smooth = {}
    for f in smooth_f:
        h = f * nn0 / np.sqrt(R.d)
        smooth[f] = {}
        for m, s in ((cfg.draws[0], seed), (cfg.draws[-1], seed), (cfg.draws[0], seed + 1)):
            rows = [denoising_loss(ho, R.train[:n0], t, h, n_kernel=m, seed=s, threads=R.threads) for t in times]
            smooth[f][f"draws={m} seed={s}"] = rows
    plain_n0 = [denoising_loss(ho, R.train[:n0], t, 0.0, n_kernel=1, seed=seed + 1, threads=R.threads)["exact"]
                for t in times]
    eff = {}
    sizes = np.array(cfg.sizes, dtype=np.float64)
    for f, runs in smooth.items():
        eff[f] = {key: [_effective_n(sizes, [plain[n][j] for n in cfg.sizes], rows[j]["exact"])
                        for j in range(len(times))] for key, rows in runs.items()}
    return {"n_train": n0, "nn": nn0, "times": times, "times_over_tc": list(cfg.loss_times),
            "queries": len(ho), "plain": {str(n): v for n, v in plain.items()}, "plain_seed2_at_n0": plain_n0,
            "smoothed": {str(f): v for f, v in smooth.items()},
            "effective_n": {str(f): v for f, v in eff.items()}, "chosen_factor": f_star}


def _effective_n(sizes, plain_loss, target):
    """The N at which the plain loss (decreasing in N, interpolated linearly in log N)
    reaches target, or, outside the measured sizes, a string saying on which side.
    (Not ledkde.effective_dataset_size: that interpolates the error in logs, while
    this loss carries a constant offset, and it folds out-of-range values into
    numbers.)"""
    p = np.asarray(plain_loss)
    if target > p[0]:
        return f"< {sizes[0]:g} (worse than the plain score at the same N)"
    below = np.nonzero(p <= target)[0]
    if below.size == 0:
        return f"> {sizes[-1]:g}"
    j = below[0]
    if j == 0:
        return float(sizes[0])
    x0, x1 = np.log(sizes[j - 1]), np.log(sizes[j])
    return float(np.exp(x0 + (target - p[j - 1]) * (x1 - x0) / (p[j] - p[j - 1])))


def _claims(plain, plain2, checks, naive2, loss, R, f_star) -> dict:
    lab = [f"draws={r['draws']} seed={r['seed']}" for r in checks]
    # 1. less memorization.
    mem_ok = [r["memorized_ci95"][1] < min(plain["memorized_ci95"][0], plain2["memorized_ci95"][0]) for r in checks]
    # 2. a larger data set: at some t below t_C the exact smoothed loss beats the plain loss at the
    # same N by more than 3 standard errors, in every check run.
    f_key = str(f_star)
    n0 = loss["n_train"]
    below = [j for j, a in enumerate(loss["times_over_tc"]) if a < 1]
    gains = {}
    larger = []
    if f_key in loss["smoothed"]:
        for key, rows in loss["smoothed"][f_key].items():
            g = [(loss["plain"][str(n0)][j] - rows[j]["exact"]) / rows[j]["exact_se"] for j in range(len(rows))]
            gains[key] = g
            larger.append(any(g[j] > 3 for j in below))
    eff = loss["effective_n"].get(f_key, {})
    # 3. along the data.
    k, d = R.cfg.k_along, R.d
    ho_frac = along_data_fraction(R.held[: min(len(R.held), 200)], R.train, k=k, nn=R.nn, threads=R.threads)
    ref = float(np.nanmedian(ho_frac))
    along_ok = [r["along_data"] is not None and r["along_data"] >= 5 * k / d for r in checks]
    return {
        "checked_at": {"factor": f_star, "runs": lab},
        "less_memorization": {
            "holds": all(mem_ok), "per_run": dict(zip(lab, mem_ok)),
            "plain": [plain["memorized"], plain2["memorized"]],
            "smoothed": {l_: [r["memorized"], r["memorized_ci95"]] for l_, r in zip(lab, checks)},
            "naive_same_draws": {f"draws={naive2['draws']} seed={naive2['seed']}": naive2["memorized"]},
            "test": "smoothed 95% interval wholly below the plain score's (both seeds)"},
        "acts_like_larger_data_set": {
            "holds": bool(larger) and all(larger), "per_run": dict(zip(gains, larger)),
            "gain_in_standard_errors": gains, "effective_n": eff, "n_train": n0,
            "test": "score-matching loss on held-out images (MC part removed) below the plain score's "
                    "at the same N by > 3 standard errors at some t < t_C"},
        "mass_along_data": {
            "holds": all(along_ok), "per_run": dict(zip(lab, along_ok)),
            "smoothed": {l_: r["along_data"] for l_, r in zip(lab, checks)},
            "held_out_images": ref, "isotropic": k / d, "k": k,
            "test": "median along-data fraction of the samples >= 5x the isotropic k/d"},
    }


def _plots(out, tag, R, sweep, loss, cfg, f_star, shape) -> list:
    plt = pyplot()
    fig, ax = plt.subplots(1, 4, figsize=(19, 4))
    for est, style in (("naive", "--"), ("control", "-")):
        for m, mark in zip(cfg.sweep_draws or cfg.draws, "os^v"):
            rows = [sweep[0]] + _pick(sweep, estimator=est, draws=m)
            fs = [r["factor"] for r in rows]
            lab = f"{est}, {m} draws"
            mem = np.array([100 * r["memorized"] for r in rows])
            ci = np.array([[100 * r["memorized_ci95"][0], 100 * r["memorized_ci95"][1]] for r in rows])
            ax[0].errorbar(fs, mem, yerr=[mem - ci[:, 0], ci[:, 1] - mem], ls=style, marker=mark, capsize=2, label=lab)
            ax[1].plot(fs, [r["held_out_d1"] for r in rows], ls=style, marker=mark, label=lab)
            ax[2].plot(fs, [r["energy"] for r in rows], ls=style, marker=mark, label=lab)
            ax[3].plot(fs[1:], [r["mc_error_mean"] for r in rows[1:]], ls=style, marker=mark, label=lab)
    for a, yl in zip(ax, ("memorized (%), 95% CI", "median d1 to held-out / NN", "energy to held-out / NN",
                          "MC error (mean relative s.e.)")):
        a.set_xlabel("h sqrt(d) / NN")
        a.set_ylabel(yl)
        a.axvline(f_star, color="gray", lw=0.8, ls=":")
    ax[3].set_yscale("log")
    ax[0].legend(fontsize=7)
    fig.suptitle(f"{tag}: N = {len(R.train)}, {cfg.n_samples} samples per setting (dotted: chosen factor)")
    fig.tight_layout()
    files = [f"{tag}_sweep.png"]
    fig.savefig(os.path.join(out, files[0]), dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(1, len(loss["times"]), figsize=(4 * len(loss["times"]), 3.6), squeeze=False)
    sizes = [int(n) for n in loss["plain"]]
    for j, (t, a) in enumerate(zip(loss["times"], loss["times_over_tc"])):
        axj = ax[0, j]
        axj.plot(sizes, [loss["plain"][str(n)][j] for n in sizes], "ko-", label="plain score vs N")
        for f, runs in loss["smoothed"].items():
            rows = runs[f"draws={cfg.draws[0]} seed={R.seed}"]
            axj.axhline(rows[j]["exact"], lw=1, color=f"C{list(loss['smoothed']).index(f)}",
                        label=f"smoothed at N = {loss['n_train']}, h sqrt(d)/NN = {float(f):g}")
        axj.set_xscale("log")
        axj.set_xlabel("N")
        axj.set_title(f"t = {a:g} t_C")
    ax[0, 0].set_ylabel("t |s + (y - x0)/t|^2 / d on held-out")
    ax[0, 0].legend(fontsize=6)
    fig.tight_layout()
    files.append(f"{tag}_score_matching.png")
    fig.savefig(os.path.join(out, files[-1]), dpi=100)
    plt.close(fig)

    if shape is not None and shape[0] * shape[1] == R.d:
        per = 16
        m_sweep = (cfg.sweep_draws or cfg.draws)[-1]
        for f in cfg.factors:
            keys = [(f, "plain" if f == 0 else "control", 1 if f == 0 else m_sweep, R.seed, "constant")]
            if f == f_star:
                if cfg.draws[-1] != m_sweep:
                    keys.append((f, "control", cfg.draws[-1], R.seed, "constant"))
                keys.append((f, "naive", cfg.draws[0], R.seed, "constant"))
            runs, titles = [], []
            for key in keys:
                x = R.samples[key][:per]
                runs.append((x, nearest_neighbors(x, R.mix, 1, threads=R.threads).indices[:, 0],
                             nearest_neighbors(x, R.held, 1, threads=R.threads).indices[:, 0]))
                titles.append(f"{key[1].upper()} H SQRT(D)/NN={f:g} DRAWS={key[2]}")
            name = f"{tag}_samples_f{f:g}.png"
            write_pairs_grid(os.path.join(out, name), runs, R.train, shape, held_out=R.held,
                                   titles=titles, per_row=per)
            files.append(name)
    return files


__all__ = ["StudyConfig", "along_data_fraction", "denoising_loss", "run_study"]
