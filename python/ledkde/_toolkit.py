"""Measuring instruments: nearest neighbours, memorization, collapse time, score errors, sample quality."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from . import _checks
from ._loader import _core
from ._call import points, resolve
from ._mixture import Data, Mixture
from ._scores import score, smoothed_score


class Neighbors(NamedTuple):
    """distances (Q, k), nearest first, and the matching indices (Q, k) into the data."""

    distances: np.ndarray
    indices: np.ndarray


def nearest_neighbors(y, data, k: int = 2, *, threads=None, tile=None) -> Neighbors:
    """Exact k nearest training points of each query.

    y : (Q, d); data : (N, d), a :class:`Mixture` or a ``ShardedMixture``; k <= N.
    Returns :class:`Neighbors` with distances (Q, k) in the working dtype and indices
    (Q, k) int64; ties go to the lower index. Tiled like the score pass (no Q x N
    buffer): approximate distances by matrix products, and every candidate that could
    be among the k nearest measured again by coordinate differences in float64. The
    points alone count: log-weights and variances of a Mixture play no part.
    """
    call = resolve(data, y=y, threads=threads, tile=tile, cpu_only=True)
    k = _checks.positive_int("k", k)
    if k > call.mix.n:
        raise ValueError(f"k: asks for {k} neighbours but the data have only {call.mix.n} points")
    dist, idx = call.backend.knn(call, k)
    return call.output(Neighbors(dist, idx))  # a PyTorch CPU tensor in: tensors out


def _prepared(data, threads=None, name: str = "data") -> Data:
    """Prepared data (a Mixture built when given an array), for the tools that call
    several passes over the same data."""
    return resolve(data, threads=threads, cpu_only=True, y_name=name).mix


def nearest_distinct(y, data: Data, reference, threads=None):
    """For each query, the distance to and index of the nearest point of ``data`` that
    differs from ``reference[i]`` (a point, (Q, d)): duplicates of it are passed over.
    Raises when every point of ``data`` equals some query's reference."""
    q = y.shape[0]
    dist = np.full(q, np.nan)
    index = np.full(q, -1, dtype=np.int64)
    todo = np.arange(q)
    k = min(2, data.n)
    while todo.size:
        nb = nearest_neighbors(y[todo], data, k, threads=threads)
        rows = data._rows(nb.indices.ravel()).reshape(todo.size, k, data.d)
        differs = (rows != reference[todo][:, None, :]).any(axis=2)
        found = differs.any(axis=1)
        first = differs.argmax(axis=1)
        hit = todo[found]
        dist[hit] = nb.distances[found, first[found]]
        index[hit] = nb.indices[found, first[found]]
        todo = todo[~found]
        if todo.size and k == data.n:
            raise ValueError("data: all its points are the same point; there is no second distinct neighbour")
        k = min(2 * k, data.n)
    return dist, index


@dataclass
class MemorizationReport:
    """Per-sample nearest-neighbour diagnostics (SPEC section 1).

    d1, d2 : (n,) distances to the nearest and second-nearest training point;
    nearest : (n,) index of the nearest; memorized : (n,) bool, ``d1 < ratio * d2``;
    fraction : the memorized fraction; held_out_d1 : (n,) distance to the nearest
    held-out point (or None); distinct_nearest : number of different training points
    that are some sample's nearest, over the number of samples (1 = all different,
    a diversity figure); ratio : the criterion used.
    """

    d1: np.ndarray
    d2: np.ndarray
    nearest: np.ndarray
    memorized: np.ndarray
    fraction: float
    held_out_d1: np.ndarray | None
    distinct_nearest: float
    ratio: float

    def summary(self) -> dict:
        out = {
            "samples": int(self.d1.size),
            "memorized_fraction": self.fraction,
            "ratio": self.ratio,
            "mean_d1": float(self.d1.mean()),
            "median_d1_over_d2": float(np.median(self.d1 / self.d2)),
            "distinct_nearest": self.distinct_nearest,
        }
        if self.held_out_d1 is not None:
            out["mean_held_out_d1"] = float(self.held_out_d1.mean())
        return out

    def __str__(self) -> str:
        rows = [f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                for k, v in self.summary().items()]
        return "\n".join(["| memorization | value |", "| --- | --- |", *rows])


def memorization(samples, data, *, held_out=None, ratio: float = 1.0 / 3.0, threads=None) -> MemorizationReport:
    """Nearest and second-nearest training distances of generated samples.

    samples : (n, d); data : (N, d) training points, a Mixture or a ShardedMixture
    (at least 2 distinct points); held_out : optional (M, d) points not used for
    training, whose nearest distance is a reference for "as close as a new real point
    would be". A sample is memorized when d1 / d2 < ratio (1/3 is the usual
    criterion). d2 is the distance to the nearest training point *distinct* from the
    nearest one: copies of a training point that the data set holds several times
    count once, so a sample on a duplicated point (d1 = 0) is memorized.
    """
    r = _checks.positive_scalar("ratio", ratio)
    if r >= 1:
        raise ValueError(f"ratio: must be below 1, got {r}")
    call = resolve(data, y=samples, threads=threads, cpu_only=True, y_name="samples")
    samples, data = call.y, call.mix  # checked once, the data prepared once
    if data.n < 2:
        raise ValueError(f"data: need at least 2 distinct training points for a second-nearest distance, got {data.n}")
    if held_out is not None:
        held_out = _checks.array2d("held_out", held_out, d=samples.shape[1])
    nb = nearest_neighbors(samples, data, 1, threads=threads)
    d1 = nb.distances[:, 0].astype(np.float64)
    first = nb.indices[:, 0]
    d2 = nearest_distinct(samples, data, data._rows(first), threads)[0] if d1.size else np.zeros(0)
    mem = d1 < r * d2
    ho = None
    if held_out is not None:
        ho = nearest_neighbors(samples, held_out, 1, threads=threads).distances[:, 0].astype(np.float64)
    n = max(1, d1.size)
    return MemorizationReport(d1, d2, first, mem, float(mem.mean()) if d1.size else 0.0, ho,
                              len(np.unique(first)) / n, r)


def median_nn_distance(data, *, max_points: int = 2000, seed: int = 0, threads=None) -> float:
    """Median distance from a training point to its nearest distinct training point.

    data : (N, d) points, a Mixture or a ShardedMixture. Over at most ``max_points``
    points drawn at random, each against the whole set; copies of a point (duplicates
    in the data) are passed over, so the figure stays a distance between different
    points however many duplicates the data hold.
    """
    mix = _prepared(data, threads)
    max_points = _checks.positive_int("max_points", max_points, minimum=2)
    if mix.n < 2:
        raise ValueError("data: need at least 2 points for a nearest-neighbour distance")
    pick = np.arange(mix.n)
    if mix.n > max_points:
        pick = np.sort(np.random.default_rng(_checks.seed(seed)).choice(mix.n, max_points, replace=False))
    points = mix._rows(pick)
    queries = np.asarray(points, dtype=mix.dtype)
    return float(np.median(nearest_distinct(queries, mix, points.astype(mix.dtype), threads)[0]))


# --------------------------------------------------------------------------- collapse time
def collapse_time(data, *, method: str = "entropy") -> float:
    """Time t_C below which the empirical score concentrates on single training points.

    From the "dynamical regimes of diffusion models" analysis (Biroli, Bonnaire, de Bortoli,
    Mezard 2024), in this library's time convention (x_t = x_0 + B_t): collapse happens
    when the entropy of p_t exceeds that of one noise blob N(x_i, t I) by only log N,
    i.e. the N blobs stop overlapping.

    data : (N, d) points, a Mixture or a ShardedMixture (their points alone count).
    ``method="isotropic"``: data treated as N(m, s^2 I_d) with s^2 the mean per-coordinate
    variance, for which the condition reads t_C = s^2 / (N^(2/d) - 1).
    ``method="entropy"`` (default): the same excess-entropy condition with the data's
    own covariance spectrum lambda_k (the Gaussian approximation of p_t):
    sum_k log(1 + lambda_k / t_C) = 2 log N, solved by bisection in log t. For
    isotropic data both agree.
    """
    _checks.choice("method", method, ("entropy", "isotropic"))
    mix = points(data)
    if mix.n < 2:
        raise ValueError("data: need at least 2 points")
    mom = mix._moments()
    cov = mom.covariance_unit()
    if not np.abs(cov).max() > 0:
        raise ValueError("data: all points are the same, so the weights never spread and there is no collapse time")
    # The spectrum is scale-covariant: solved in units of the data's spread, then scaled back.
    with np.errstate(over="ignore"):
        t_c = np.float64(mom.scale) ** 2 * _collapse_unit(cov, mix.n, mix.d, method)
    if not np.isfinite(t_c):
        raise ValueError(f"data: spread over {mom.scale:.3g}, its collapse time is beyond the float64 range; rescale "
                         "the data")
    return float(t_c)


def _collapse_unit(cov: np.ndarray, n: int, d: int, method: str) -> float:
    if method == "isotropic":
        s2 = float(np.trace(cov) / d)
        return s2 / np.expm1(2.0 * np.log(n) / d)
    lam = np.clip(np.linalg.eigvalsh(cov), 0.0, None)
    lam = lam[lam > 1e-12 * lam.max()]
    target = 2.0 * np.log(n)

    def excess(t):
        return np.log1p(lam / t).sum() - target

    lo, hi = 1e-12 * lam.max(), 1e12 * lam.max()
    if excess(lo) < 0:
        return lo  # the spectrum cannot hold log N of excess entropy: collapse at once
    for _ in range(200):
        mid = np.sqrt(lo * hi)
        if excess(mid) > 0:
            lo = mid
        else:
            hi = mid
        if hi / lo < 1 + 1e-12:
            break
    return float(np.sqrt(lo * hi))


# --------------------------------------------------------------------------- score errors
@dataclass
class GaussianMixture:
    """A target with an exact score: weights (K,), means (K, d), variances (K,) (isotropic;
    None: all 0, point masses)."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def __post_init__(self):
        self.means = np.asarray(_checks.array2d("means", self.means), dtype=np.float64)
        k = self.means.shape[0]
        w = np.asarray(self.weights, dtype=np.float64)
        if w.shape != (k,) or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
            raise ValueError(f"weights: expected ({k},) non-negative finite weights with a positive sum")
        self.weights = w / w.sum()
        var = _checks.variances(self.variances, k)
        self.variances = np.zeros(k) if var is None else var  # None: point masses, as for a Mixture

    @property
    def d(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, rng: np.random.Generator, t: float = 0.0) -> np.ndarray:
        """n exact draws of p_t (the mixture convolved with N(0, t I))."""
        n = _checks.positive_int("n", n, minimum=0)
        t = _checks.positive_scalar("t", t, allow_zero=True)
        if not isinstance(rng, np.random.Generator):
            raise TypeError(f"rng: expected a numpy.random.Generator (np.random.default_rng(seed)), "
                            f"got {type(rng).__name__}")
        comp = rng.choice(len(self.weights), size=n, p=self.weights)
        sd = np.sqrt(self.variances[comp] + t)[:, None]
        return self.means[comp] + sd * rng.standard_normal((n, self.d))

    def score(self, x, t: float, threads=None) -> np.ndarray:
        return score(np.asarray(x, dtype=np.float64), self.means, t, log_weights=np.log(self.weights),
                     variances=self.variances, threads=threads)

    def log_likelihood(self, x) -> np.ndarray:
        """Exact log p_0(x) per sample (needs variances > 0)."""
        if (self.variances <= 0).any():
            raise ValueError("variances: the log-likelihood at t = 0 needs every component variance > 0")
        x = np.asarray(_checks.array2d("x", x, d=self.d), dtype=np.float64)
        mix = Mixture(self.means, log_weights=np.log(self.weights), variances=self.variances, dtype=np.float64)
        # v_i = s2_i + 0: the compiled pass handles t = 0 when every s2_i > 0.
        ld, *_ = _core.evaluate(mix._core, np.ascontiguousarray(x), 0.0, _core.OUT_LOG_DENSITY,
                                _checks.pass_options(_core, None, None))
        return ld


def score_error_study(target: GaussianMixture, n_train: int, times: Sequence[float],
                      bandwidths: Sequence[float] = (0.0,), *, n_repeats: int = 20, n_eval: int = 200,
                      n_kernel: int = 16, seed: int = 0, threads=None, progress=None) -> dict:
    """Bias, variance and MSE of the empirical (h = 0) and smoothed scores against the exact one.

    For each time t: n_eval evaluation points x ~ p_t (fixed), n_repeats training sets
    of n_train points drawn from the target; for each bandwidth h the smoothed score
    K_h * s_t of each training set is compared with the target's exact score.
    Per-dimension figures (averaged over coordinates and evaluation points), unbiased
    over the repeats: variance = E_D |s_D - E_D s_D|^2 / d, bias2 = |E_D s_D - s|^2 / d,
    mse = bias2 + variance = E_D |s_D - s|^2 / d. For h > 0 the Monte Carlo noise of the
    n_kernel draws is part of the variance.
    Returns a dict of arrays of shape (len(times), len(bandwidths)) plus the inputs.
    """
    times = np.asarray([_checks.positive_scalar("times", t) for t in times])
    hs = np.asarray([_checks.positive_scalar("bandwidths", h, allow_zero=True) for h in bandwidths])
    n_train = _checks.positive_int("n_train", n_train)
    n_repeats = _checks.positive_int("n_repeats", n_repeats, minimum=2)
    n_eval = _checks.positive_int("n_eval", n_eval)
    rng = np.random.default_rng(seed)
    d = target.d
    bias2 = np.zeros((len(times), len(hs)))
    var = np.zeros_like(bias2)
    total, done = len(times) * n_repeats, 0
    for a, t in enumerate(times):
        x = target.sample(n_eval, rng, t)
        exact = target.score(x, t, threads)
        est = np.zeros((len(hs), n_repeats, n_eval, d))
        for r in range(n_repeats):
            train = target.sample(n_train, rng)
            mix = Mixture(train, dtype=np.float64)
            for b, h in enumerate(hs):
                est[b, r] = smoothed_score(x, mix, t, bandwidth=h, n_kernel=n_kernel, seed=seed + 7919 * r,
                                           threads=threads)
            done += 1
            if progress is not None:
                progress(done, total)
        mean = est.mean(axis=1)
        var[a] = ((est - mean[:, None]) ** 2).sum(axis=1).mean(axis=(1, 2)) / (n_repeats - 1)
        # |mean - s|^2 overestimates the squared bias by variance / n_repeats: remove it,
        # so that bias2 + variance is an unbiased estimate of the MSE (bias2 may dip below 0).
        bias2[a] = ((mean - exact) ** 2).mean(axis=(1, 2)) - var[a] / n_repeats
    return {"times": times, "bandwidths": hs, "n_train": n_train, "bias2": bias2, "variance": var,
            "mse": bias2 + var}


def effective_dataset_size(n_values: np.ndarray, plain_mse: np.ndarray, target_mse: float) -> float:
    """N at which the plain empirical score's MSE reaches target_mse (log-log interpolation).

    n_values : increasing training-set sizes; plain_mse : the plain score's MSE at each.
    Returns inf when even the largest N stays above the target, and the smallest N
    when the target is above every measured MSE.
    """
    n_values = _checks.as_array("n_values", n_values).astype(np.float64)
    plain_mse = _checks.as_array("plain_mse", plain_mse).astype(np.float64)
    if n_values.ndim != 1 or n_values.size < 2:
        raise ValueError(f"n_values: expected a 1-D array of at least 2 sizes, got shape {n_values.shape}")
    if plain_mse.shape != n_values.shape:
        raise ValueError(f"plain_mse: expected shape {n_values.shape} (one per size in n_values), got {plain_mse.shape}")
    if not np.isfinite(n_values).all() or (n_values <= 0).any() or (np.diff(n_values) <= 0).any():
        raise ValueError("n_values: sizes must be finite, > 0 and increasing")
    if not np.isfinite(plain_mse).all() or (plain_mse <= 0).any():
        raise ValueError("plain_mse: errors must be finite and > 0 (they are interpolated in logs)")
    target_mse = _checks.positive_scalar("target_mse", target_mse)
    if target_mse >= plain_mse[0]:
        return float(n_values[0])
    below = np.nonzero(plain_mse <= target_mse)[0]
    if below.size == 0:
        return float("inf")
    j = below[0]
    x0, x1 = np.log(n_values[j - 1]), np.log(n_values[j])
    y0, y1 = np.log(plain_mse[j - 1]), np.log(plain_mse[j])
    return float(np.exp(x0 + (np.log(target_mse) - y0) * (x1 - x0) / (y1 - y0)))


# --------------------------------------------------------------------------- sample quality
def energy_distance(x, y, *, max_points: int = 4000, seed: int = 0) -> float:
    """Energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| between two samples.

    U-statistic within each sample (the diagonal left out), hence unbiased: zero in
    expectation when both come from the same distribution, so an estimate can fall
    slightly below 0 (by about its own noise). Samples larger than max_points are
    subsampled at random. Distances are formed after moving both samples to their
    pooled mean, so points far from the origin lose no precision.
    """
    max_points = _checks.positive_int("max_points", max_points, minimum=2)
    rng = np.random.default_rng(_checks.seed(seed))
    xs = [np.asarray(_checks.array2d(name, a), dtype=np.float64) for name, a in (("x", x), ("y", y))]
    if xs[0].shape[1] != xs[1].shape[1]:
        raise ValueError(f"y: has dimension {xs[1].shape[1]}, but x has dimension {xs[0].shape[1]}")
    xs = [a[rng.choice(len(a), max_points, replace=False)] if len(a) > max_points else a for a in xs]
    if len(xs[0]) < 2 or len(xs[1]) < 2:
        raise ValueError("x, y: need at least 2 points each")
    centre = np.concatenate(xs).mean(axis=0)
    a, b = xs[0] - centre, xs[1] - centre
    scale = max(float(np.abs(a).max()), float(np.abs(b).max()))
    if scale > 0:  # |p|^2 must not overflow: distances scale with the data
        a, b = a / scale, b / scale
    else:
        scale = 1.0

    def mean_dist(p, q, same):
        d2 = (p**2).sum(1)[:, None] + (q**2).sum(1)[None, :] - 2 * p @ q.T
        dist = np.sqrt(np.maximum(d2, 0.0))
        if same:
            np.fill_diagonal(dist, 0.0)
            return dist.sum() / (len(p) * (len(p) - 1))
        return dist.mean()

    return float(scale * (2 * mean_dist(a, b, False) - mean_dist(a, a, True) - mean_dist(b, b, True)))
