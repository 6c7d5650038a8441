"""Bandwidths that mean something: sample quality on held-out data, a held-out
bandwidth selection, and the measured default rule (SPEC section 1, "Scale of h")."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from . import _call, _checks
from ._sampler import sample
from ._toolkit import energy_distance, median_nn_distance, memorization

# The default rule, h sqrt(d) / NN = RULE_A d^RULE_B (NN the median
# nearest-neighbour distance), fitted to what select_bandwidth chose in the
# sweeps of bench/bandwidth.py (bench/README.md, "Bandwidth"): see bandwidth_rule.
RULE_A, RULE_B = 0.5, 0.4
# The dimensions the rule was fitted on (d = 16, 64, 256, 784).
RULE_DIMENSIONS = (16, 784)
# "Not memorizing": at most this fraction of the samples are copies.
MAX_MEMORIZED = 0.05
# Candidate factors f of h sqrt(d) = f NN for select_bandwidth.
DEFAULT_FACTORS = (0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 10.0, 12.0)


def wilson_interval(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion k / n (95% for z = 1.96).

    k : successes, an integer in [0, n]; n : trials, an integer >= 1; z : the normal
    quantile of the interval, a finite number > 0.
    """
    n = _checks.positive_int("n", n)
    k = _checks.positive_int("k", k, minimum=0, maximum=n, why=f" (the number of trials n)")
    z = _checks.positive_scalar("z", z)
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return float(max(0.0, mid - half)), float(min(1.0, mid + half))


def sample_quality(samples, data, *, held_out=None, nn: float | None = None, threads=None) -> dict:
    """What a researcher reads off a set of samples (all distances in units of NN,
    the data's median nearest-neighbour distance):

    memorized (fraction with d1 / d2 < 1/3) and its 95% interval; held_out_d1: the
    median distance to the nearest held-out point (how close to *unseen* data the
    samples are); train_d1: the median distance to the nearest training point;
    diversity: distinct nearest training points over samples; energy: the energy
    distance to the held-out set (in NN units). Without held_out those two are None.
    """
    samples = _checks.array2d("samples", samples)
    data = _call.resolve(data, threads=threads, cpu_only=True).mix  # prepared once for every pass below
    nn = median_nn_distance(data, threads=threads) if nn is None else _checks.positive_scalar("nn", nn)
    mem = memorization(samples, data, held_out=held_out, threads=threads)
    k = int(mem.memorized.sum())
    lo, hi = wilson_interval(k, len(samples))
    return {
        "memorized": mem.fraction,
        "memorized_ci95": [lo, hi],
        "held_out_d1": None if held_out is None else float(np.median(mem.held_out_d1)) / nn,
        "train_d1": float(np.median(mem.d1)) / nn,
        "diversity": mem.distinct_nearest,
        "energy": None if held_out is None else energy_distance(
            samples.astype(np.float64), np.asarray(held_out, dtype=np.float64), max_points=2000) / nn,
    }


def sampler_defaults(data: np.ndarray, nn: float) -> dict:
    """The grid the command line, select_bandwidth and the experiments use, geometric:

    t_max = the largest squared distance of a point from the data's mean (at least
    10 x the largest per-coordinate variance, and at least 1): sigma_max comparable
    to the distances in the data, as Song and Ermon's rule for score-based models
    asks, so that N(0, t_max I) is close to p_{t_max} and no training point is
    favoured at the start. (10 x the per-coordinate variance alone is far too small
    in high dimension: on MNIST it gave t_max = 2, below the collapse time 2.6, and
    the plain score's samples then crowded onto faint digits: 84% distinct nearest
    images and energy distance 0.2 NN to held-out images, against 100% and 0.005 NN
    with t_max = 123.)
    t_min = 1e-4 NN^2 (or 1e-4 x the mean variance when NN = 0).

    data : (N, d) points, a Mixture or a ShardedMixture.
    """
    pts = _call.points(data)
    mom = pts._moments()
    var = np.diag(mom.covariance_unit()) * mom.scale**2 * (mom.n - 1) / mom.n
    t_min = 1e-4 * nn**2 if nn > 0 else 1e-4 * float(var.mean())
    if not t_min > 0:
        raise ValueError("data: all points are the same; there is nothing to sample")
    return dict(t_max=max(1.0, 10.0 * float(var.max()), _spread(pts, mom)), t_min=t_min, schedule="geometric")


def _spread(pts, mom) -> float:
    """The largest squared distance of a point from the points' mean."""
    mean = mom.x0 + mom.scale * mom.s1 / mom.n
    top = 0.0
    for i in range(0, pts.n, 4096):
        block = pts._rows(np.arange(i, min(pts.n, i + 4096))) - mean
        top = max(top, float((block**2).sum(axis=1).max()))
    return top


def bandwidth_rule(data, *, nn: float | None = None, threads=None) -> float:
    """The default bandwidth: h sqrt(d) = 0.5 d^0.4 NN, i.e. h = 0.5 NN d^-0.1.

    Measured, not assumed (SPEC section 1): in high dimension a Gaussian kernel
    changes which training point dominates only when h, its spread along one
    direction, is comparable to a fair part of the distance between neighbours.
    The rule is a least-squares fit (in log-log) to the factors h sqrt(d) / NN that
    :func:`select_bandwidth` chose (the least smoothing with at most 5% of samples
    memorized, 32 samples, the grid of :func:`sampler_defaults`): 2 for
    64-component Gaussian mixtures in d = 16 and 64, 4 in d = 256, 7 on MNIST (N =
    1000 and 4000) and 10 on Fashion-MNIST (N = 4000), d = 784 (bench/README.md,
    "Bandwidth"). The old rule NN / sqrt(d) is right only around d = 10. The window
    is narrow (in d = 16 a factor 3 already gives blurred averages) and depends on
    the data: when held-out points are at hand, :func:`select_bandwidth` is the
    better choice. Outside the fitted dimensions (d < 16 or d > 784) the rule warns
    (UserWarning): there it is an extrapolation.
    """
    mix = _call.resolve(data, threads=threads, cpu_only=True).mix
    nn = median_nn_distance(mix, threads=threads) if nn is None else _checks.positive_scalar("nn", nn)
    d = mix.d
    lo, hi = RULE_DIMENSIONS
    if not lo <= d <= hi:
        warnings.warn(f"bandwidth_rule: the rule was fitted on data of d = {lo} to {hi}; d = {d} is outside, where "
                      "it may leave samples memorized or blur them. select_bandwidth(data, held_out=...) chooses "
                      "h on held-out points instead.", UserWarning, stacklevel=2)
    return RULE_A * d**RULE_B * nn / np.sqrt(d)


@dataclass
class BandwidthSelection:
    """The result of :func:`select_bandwidth`.

    bandwidth : the chosen h; factor : h sqrt(d) / NN; nn : the median
    nearest-neighbour distance; table : per candidate factor the figures of
    :func:`sample_quality`; criterion : what was minimized.
    """

    bandwidth: float
    factor: float
    nn: float
    criterion: str
    table: list = field(default_factory=list)

    def __str__(self) -> str:
        rows = ["| h sqrt(d) / NN | memorized (95% CI) | held-out d1 / NN | train d1 / NN | diversity | energy |",
                "| --- | --- | --- | --- | --- | --- |"]
        for r in self.table:
            lo, hi = r["memorized_ci95"]
            mark = " (chosen)" if r["factor"] == self.factor else ""
            rows.append(f"| {r['factor']:g}{mark} | {100 * r['memorized']:.0f}% ({100 * lo:.0f}-{100 * hi:.0f}%) | "
                        f"{r['held_out_d1']:.3f} | {r['train_d1']:.3f} | {r['diversity']:.2f} | {r['energy']:.4f} |")
        return "\n".join(rows)


def _factors(factors) -> list:
    """The candidate factors of select_bandwidth, checked and sorted."""
    try:
        arr = np.atleast_1d(np.asarray(factors))
    except Exception:  # ragged lists and the like
        arr = None
    if arr is None or arr.dtype.kind not in "iuf" or arr.ndim != 1:
        raise TypeError(f"factors: expected a sequence of numbers >= 0, got {factors!r}")
    fs = sorted(float(f) for f in arr)
    if not fs or any(not np.isfinite(f) or f < 0 for f in fs):
        raise ValueError("factors: give one or more finite factors >= 0")
    return fs


def least_smoothing(rows, max_memorized: float = MAX_MEMORIZED):
    """Of rows with "factor" and "memorized", the smallest factor whose memorized
    fraction is at most max_memorized (None if there is none)."""
    ok = [r for r in rows if r["memorized"] <= max_memorized]
    return min(ok, key=lambda r: r["factor"]) if ok else None


def select_bandwidth(data, *, held_out, factors=DEFAULT_FACTORS, max_memorized: float = MAX_MEMORIZED, n_samples: int = 32,
                     steps: int = 100, n_kernel: int = 8, seed: int = 0, threads=None,
                     progress=None) -> BandwidthSelection:
    """Choose h on held-out data: the least smoothing whose samples are not copies.

    For each factor f, ``n_samples`` samples are drawn with h = f NN / sqrt(d)
    (Euler-Maruyama, the grid of :func:`sampler_defaults`, the control estimator
    with antithetic pairs, the same seed for every f) and measured by
    :func:`sample_quality` against the training and the held-out points. The
    chosen factor is the smallest whose memorized fraction is at most
    ``max_memorized`` (if none is, the least memorized one).

    Why this criterion: smoothing is a bias, wanted only as far as it stops the
    copying of training points. In the sweeps of bench/README.md ("Bandwidth"),
    past that point the samples only drift away from the data (the energy distance
    to the held-out set grows, and they turn into blurred averages), while the
    distance to the nearest held-out point alone does not separate a blurred
    average from a new digit (it kept falling with h on MNIST N = 1000), so it is
    reported, not optimized.

    data : (N, d) training points; held_out : (M, d) points of the same law not
    in data. Returns a :class:`BandwidthSelection` whose table holds every figure.
    """
    mix = _call.resolve(data, threads=threads, cpu_only=True).mix
    ho = _checks.array2d("held_out", held_out, d=mix.d)
    if len(ho) < 2:
        raise ValueError(f"held_out: need at least 2 points (the energy distance compares two samples), "
                         f"got {len(ho)}")
    fs = _factors(factors)
    mm = _checks.positive_scalar("max_memorized", max_memorized, allow_zero=True)
    if mm >= 1.0:
        raise ValueError(f"max_memorized: must lie in [0, 1), got {max_memorized}")
    n_kernel = _checks.positive_int("n_kernel", n_kernel)
    if n_kernel % 2:
        raise ValueError(f"n_kernel: must be even (antithetic pairs), got {n_kernel}")
    n_samples = _checks.positive_int("n_samples", n_samples)
    if progress is not None and not callable(progress):
        raise TypeError("progress: expected a callable (done, total) or None")
    d = mix.d
    nn = median_nn_distance(mix, threads=threads)
    grid = sampler_defaults(mix, nn)
    table = []
    for i, f in enumerate(fs):
        h = f * nn / np.sqrt(d)
        x = sample(mix, n_samples, steps=steps, bandwidth=h, n_kernel=n_kernel if h > 0 else 1,
                   antithetic=h > 0, seed=seed, threads=threads, **grid)
        row = {"factor": f, "bandwidth": h, **sample_quality(x, mix, held_out=ho, nn=nn, threads=threads)}
        table.append(row)
        if progress is not None:
            progress(i + 1, len(fs))
    best = least_smoothing(table, mm) or min(table, key=lambda r: (r["memorized"], r["factor"]))
    return BandwidthSelection(best["bandwidth"], best["factor"], nn,
                              f"smallest factor with memorized <= {mm:g}", table)
