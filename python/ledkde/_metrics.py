"""Memorization diagnostics (SPEC section 1): nearest and second-nearest training points."""

from __future__ import annotations

import numpy as np


def two_nearest(samples: np.ndarray, data: np.ndarray, *, chunk: int = 256):
    """Indices (Q,) of the nearest training point and distances (Q, 2) to the two nearest.

    Distances from float64 coordinates; candidates by the BLAS expansion, then
    the two winners recomputed by coordinate differences.
    """
    x = np.asarray(samples, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    dn = (data**2).sum(1)
    idx = np.empty((len(x), 2), dtype=np.int64)
    for i in range(0, len(x), chunk):
        xb = x[i:i + chunk]
        d2 = dn[None, :] - 2 * xb @ data.T
        k = min(2, data.shape[0])
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if data.shape[0] > 2 else np.argsort(d2, axis=1)[:, :k]
        rows = np.arange(len(xb))[:, None]
        order = np.argsort(d2[rows, part], axis=1)
        idx[i:i + chunk, :k] = part[rows, order]
        if k == 1:
            idx[i:i + chunk, 1] = idx[i:i + chunk, 0]
    exact = np.sqrt(((x[:, None, :] - data[idx]) ** 2).sum(-1))
    swap = exact[:, 1] < exact[:, 0]
    exact[swap] = exact[swap][:, ::-1]
    idx[swap] = idx[swap][:, ::-1]
    return idx[:, 0], exact


def memorized_fraction(distances: np.ndarray, ratio: float = 1.0 / 3.0) -> float:
    """Fraction of samples with d1 / d2 < ratio (the usual criterion)."""
    d1, d2 = distances[:, 0], distances[:, 1]
    return float(np.mean(d1 < ratio * d2))


def median_nn_distance(data: np.ndarray, *, max_points: int = 2000, seed: int = 0) -> float:
    """Median distance from a training point to its nearest other training point.

    Over at most ``max_points`` points drawn at random, each against the whole set
    (a point's nearest is itself, so its second-nearest is the neighbour).
    """
    data = np.asarray(data, dtype=np.float64)
    if len(data) < 2:
        raise ValueError("data: need at least 2 points for a nearest-neighbour distance")
    pick = data
    if len(data) > max_points:
        pick = data[np.random.default_rng(seed).choice(len(data), max_points, replace=False)]
    return float(np.median(two_nearest(pick, data)[1][:, 1]))
