"""Prepared data: a Mixture, made once and used by any number of calls.

:class:`Data` is what every compute function accepts as prepared data: a
:class:`Mixture` in this process, or a ``ledkde.distributed.ShardedMixture`` over a Ray
cluster. Both give the call layer the same facts (size, dtype, where the data lie, for
the range checks) and the same engine protocol (``ledkde._backend``).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _checks, _device
from ._loader import _core


class Data:
    """Prepared data (abstract). n, d, dtype; has_weights, has_variances; _centre (d,)
    and _extent, a centre of the data and the largest distance of a point from it (the
    range checks of every call); _backend(where, tile) the engine of a call;
    _rows(indices) the points themselves (float64) and _moments() their Moments, for
    the tools that measure the data."""

    n: int
    d: int
    dtype: np.dtype
    has_weights: bool
    has_variances: bool
    _centre: np.ndarray
    _extent: float
    _resolution: float = 0.0

    def _check_device(self, device) -> None:
        """Refuse a ``device=`` these data cannot run on (before any placement is made)."""

    def _backend(self, where, tile):  # pragma: no cover - abstract
        raise NotImplementedError

    def _rows(self, indices) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _moments(self) -> "Moments":  # pragma: no cover - abstract
        raise NotImplementedError


class Points(Data):
    """Points not prepared for passes (an array, checked): what the tools that measure
    the data themselves (moments, rows) need of a plain array."""

    def __init__(self, arr: np.ndarray):
        self._data = arr
        self.n, self.d = arr.shape
        self.dtype = np.dtype(_checks.natural_float(arr))
        self.has_weights = self.has_variances = False

    def _rows(self, indices) -> np.ndarray:
        return np.asarray(self._data[np.asarray(indices, dtype=np.int64)], dtype=np.float64)

    def _moments(self) -> "Moments":
        return _moments_of(self._data)


# Pruning pays only for data sets this large, in this many dimensions; the
# projection keeps k = min(64, d / 4) principal directions (bench/prune.py
# measured the pruned fraction for k = 32 .. 256 on Fashion-MNIST). Below 160
# dimensions the bound's thin products cost about as much as the dense pass:
# Fashion-MNIST pooled to d = 49 and 98 was slower pruned than dense at every t
# (score 1.04-1.85x; nearest_neighbors 1.3-1.8x at d = 49), d = 128 gained at
# most 1.16x and lost up to 1.8x (bench/prune.py, 2026-11-29).
PRUNE_MIN_POINTS, PRUNE_MIN_DIM = 2048, 160


def projection_k(d: int) -> int:
    return min(64, d // 4)


def principal_basis(arr: np.ndarray, centre: np.ndarray, k: int, sample: int = 2048) -> np.ndarray:
    """(k, d) orthonormal rows spanning the leading principal directions of ``arr - centre``,
    from evenly spaced rows (at most ``sample``) by a randomized range finder with two
    power iterations (Halko, Martinsson and Tropp 2011). Any orthonormal rows give a
    valid pruning bound; the leading directions make it tight. Deterministic."""
    n, d = arr.shape
    rows = arr[:: max(1, n // sample)][:sample].astype(np.float64) - centre
    y = rows @ np.random.default_rng(0).standard_normal((d, min(d, k + 32)))
    for _ in range(2):
        y = rows @ (rows.T @ np.linalg.qr(y)[0])
    q = np.linalg.qr(y)[0]
    top = np.linalg.svd(q.T @ rows, full_matrices=False)[2][:k]
    # Orthonormal to float64 rounding (the bound's residual norms rely on it).
    return np.ascontiguousarray(np.linalg.qr(top.T)[0].T)


class Mixture(Data):
    """Data prepared once for many calls: the components, centred, with their norms.

    ``Mixture(data, log_weights=None, variances=None, dtype=None, threads=None, prune=True,
    logit_tolerance=None)``

    data : (N, d) array; the empirical case is ``mu_i = data[i]``, ``a_i = 1/N``,
    ``s2_i = 0``. log_weights : (N,) unnormalized log a_i. variances : (N,) s2_i >= 0.
    dtype : float32 or float64 working precision (default: float64 if ``data`` needs
    it, else float32). threads : workers of the preparation (default: all cores;
    the calls that build a Mixture for you pass their own ``threads``). prune : let
    the CPU passes skip, at small t, the components whose weight provably lies below
    the working precision, without computing their distances (a projection of the
    data onto its leading principal directions, made here for data of N >= 2048
    points in d >= 160 dimensions with equal weights and variances; results stay
    within the same tolerances). logit_tolerance : the error allowed in each logit
    ``-|y - mu_j|^2 / (2 v_j)`` before the engine recomputes it exactly: a float in
    (0, 0.1], or ``"strict"`` for 64 eps of the working precision (every weight exact to
    working precision). The matrix product's logits are kept wherever their certified
    rounding bound is below it, so each weight is within a factor
    ``exp(2 logit_tolerance)`` of exact and the log-density within ``logit_tolerance``;
    near the maximum at small t the logits are recomputed exactly whatever the value.
    Default None: 3e-3 for float32 (where every component carries weight, at large t,
    the strict rule recomputes every logit in float64; the score's realized errors stay
    at or below 1.8e-6 of its scale: README, "Accuracy and speed at large t"), strict
    for float64. The CUDA passes use the strict rule unless a value is given. Every
    function that takes ``data`` also takes a Mixture, so a data set is centred and
    its norms computed only once. A Mixture keeps a reference to ``data`` (not a
    copy: do not modify the array while the Mixture is in use) for the tools that
    measure the data themselves (``median_nn_distance``, ``collapse_time``, ...), and
    pickles (and deep-copies) as its data and settings, prepared again on loading.
    """

    def __init__(self, data, *, log_weights=None, variances=None, dtype=None, threads=None, prune=True,
                 logit_tolerance=None):
        arr = _checks.array2d("data", _device.to_host("data", data))
        tol = _checks.logit_tolerance(logit_tolerance)
        self._build(arr, log_weights, variances, _checks.mixture_dtype(dtype, arr), threads, True,
                    _checks.boolean("prune", prune), tol)

    @classmethod
    def _of_checked(cls, arr: np.ndarray, log_weights, variances, dtype, threads, pack: bool,
                    prune: bool = True) -> "Mixture":
        """A Mixture of a host array that ``_checks.array2d`` has passed, in a dtype that
        ``_checks.mixture_dtype`` has passed (the call layer's way, which reads data once).
        pack=False (one-shot calls with few queries) skips laying the data out for the
        built-in tile products, which only repays over more work."""
        mix = cls.__new__(cls)
        mix._build(arr, log_weights, variances, dtype, threads, pack, prune)
        return mix

    def _build(self, arr, log_weights, variances, dtype, threads, pack, prune, logit_tolerance=None):
        n, d = arr.shape
        lw = _checks.log_weights(log_weights, n)
        var = _checks.variances(variances, n)
        # What pickling needs to prepare the same Mixture again.
        self._data, self._log_weights, self._variances = arr, lw, var
        self._settings = dict(dtype=np.dtype(dtype).name, prune=bool(prune), logit_tolerance=logit_tolerance)
        self.dtype = np.dtype(dtype)
        self.n, self.d = n, d
        self.has_weights = lw is not None
        self.has_variances = var is not None
        self._core = _core.prepare(_checks.to_working(arr, dtype), lw, var, _checks.threads(threads), bool(pack))
        self._core.logit_tol = _checks.engine_logit_tolerance(logit_tolerance, dtype)
        # What the CUDA copies use: the strict rule unless the caller chose a value
        # (the tolerance has not been validated on a GPU yet).
        self._device_logit_tol = self._core.logit_tol if logit_tolerance is not None else 0.0
        # The centre the engine moved the data by and their largest distance from
        # it (computed in float64 by the preparation): what the range checks of
        # every call need (ledkde._checks.MAX_SQUARED / MAX_LOGIT).
        _checks.squared_scale("data", self._core.norm2_max, dtype, "the squared distance of a point from the data's mean")
        self._centre = np.asarray(self._core.centre)
        self._extent = float(np.sqrt(self._core.norm2_max))
        # How finely a pass in the working type resolves the data (the float32 checks).
        self._resolution = float(self._core.resolution)
        self._on_device = {}  # CUDA device index -> device-resident copy
        if prune and lw is None and var is None and n >= PRUNE_MIN_POINTS and d >= PRUNE_MIN_DIM:
            basis = principal_basis(arr, self._centre, projection_k(d))
            self._core.set_projection(basis, _checks.threads(threads))

    @property
    def logit_tolerance(self) -> float:
        """The error allowed in a logit by the CPU passes (see ``logit_tolerance``; the
        strict rule reads as 64 eps of the working precision)."""
        return self._core.logit_tol or 64 * float(np.finfo(self.dtype).eps)

    @property
    def pruning(self) -> bool:
        """Whether the CPU passes over this mixture may prune (see ``prune``)."""
        return self._core.projection_k > 0

    def __reduce__(self):
        return (_restore_mixture, (self._data, self._log_weights, self._variances, self._settings))

    def _backend(self, where, tile):
        from ._backend import MixtureBackend

        return MixtureBackend(self, where)

    def _rows(self, indices) -> np.ndarray:
        return np.asarray(self._data[np.asarray(indices, dtype=np.int64)], dtype=np.float64)

    def _moments(self) -> "Moments":
        return _moments_of(self._data)

    def _engine(self, where: "_device.Placement"):
        """The compiled mixture for a placement: the host one, or a copy resident on the GPU
        (made once per device and kept, with its centring and norms)."""
        if where.kind == "cpu":
            return self._core
        if where.index not in self._on_device:
            cls = where.module().DeviceMixture32 if self.dtype == np.float32 else where.module().DeviceMixture64
            self._on_device[where.index] = cls(self._core, where.index, self._device_logit_tol)
        return self._on_device[where.index]

    def __repr__(self) -> str:
        return f"Mixture(n={self.n}, d={self.d}, dtype={self.dtype.name})"


def _restore_mixture(data, log_weights, variances, settings) -> Mixture:
    """A pickled Mixture, prepared again."""
    return Mixture(data, log_weights=log_weights, variances=variances, **settings)


class Moments(NamedTuple):
    """First and second moments of n points about the point x0, in units of ``scale``
    (so that data far from the origin or of extreme size lose no precision): s1 =
    sum (x - x0) / scale, s2 = sum (x - x0)(x - x0)^T / scale^2."""

    n: int
    x0: np.ndarray
    scale: float
    s1: np.ndarray
    s2: np.ndarray

    def covariance_unit(self) -> np.ndarray:
        """The sample covariance (n - 1 in the denominator) in units of scale^2."""
        return (self.s2 - np.outer(self.s1, self.s1) / self.n) / (self.n - 1)


def _moments_of(arr: np.ndarray, block: int = 4096) -> Moments:
    """The Moments of the rows of arr, a block of rows at a time, about its first row."""
    x0 = np.asarray(arr[0], dtype=np.float64)
    d = arr.shape[1]
    scale = 0.0
    for i in range(0, arr.shape[0], block):
        scale = max(scale, float(np.abs(np.asarray(arr[i:i + block], dtype=np.float64) - x0).max()))
    scale = scale or 1.0
    s1, s2 = np.zeros(d), np.zeros((d, d))
    for i in range(0, arr.shape[0], block):
        b = (np.asarray(arr[i:i + block], dtype=np.float64) - x0) / scale
        s1 += b.sum(axis=0)
        s2 += b.T @ b
    return Moments(arr.shape[0], x0, scale, s1, s2)


def merge_moments(parts) -> Moments:
    """The Moments of the union of disjoint sets of points, from theirs."""
    x0 = parts[0].x0
    scale = max(p.scale + float(np.abs(p.x0 - x0).max()) for p in parts)
    n, s1, s2 = 0, np.zeros_like(x0), np.zeros((x0.size, x0.size))
    for p in parts:
        r = p.scale / scale
        shift = (p.x0 - x0) / scale  # sum (x - x0) = sum (x - p.x0) + n (p.x0 - x0)
        a = p.s1 * r
        s1 += a + p.n * shift
        s2 += p.s2 * r * r + np.outer(shift, a) + np.outer(a, shift) + p.n * np.outer(shift, shift)
        n += p.n
    return Moments(n, x0, scale, s1, s2)
