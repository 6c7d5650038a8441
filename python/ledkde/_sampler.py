"""Whole reverse-diffusion runs: one call into compiled code per run."""

from __future__ import annotations

import numbers

import numpy as np

from . import _checks, reference
from ._backend import SamplerPlan
from ._call import check_ranges, resolve
from ._scores import KERNELS, smooth_args

METHODS = {"euler_maruyama": 0, "ode_euler": 1, "ode_heun": 2}
SCHEDULES = ("uniform", "geometric", "edm")
INITS = {"gaussian": 0, "empirical": 1}
# A grid (and a bandwidth per grid time) is kept in memory, 16 bytes a step;
# ten million steps is far beyond any sampler (the finest grids in use have
# thousands).
MAX_STEPS = 10**7


def time_grid(t_max, t_min, steps, schedule="geometric", *, rho=7.0) -> np.ndarray:
    """Decreasing grid of ``steps + 1`` times from ``t_max`` to ``t_min`` (float64).

    ``"uniform"`` in t, ``"geometric"`` in t, or ``"edm"``: Karras et al.'s grid,
    uniform in ``sigma^(1/rho)`` with ``sigma = sqrt(t)``.
    """
    t_max = _checks.positive_scalar("t_max", t_max)
    t_min = _checks.positive_scalar("t_min", t_min)
    if t_min >= t_max:
        raise ValueError(f"t_min: must be below t_max, got t_min={t_min} >= t_max={t_max}")
    steps = _checks.positive_int("steps", steps, maximum=MAX_STEPS, why=" (a grid of times is kept in memory)")
    _checks.choice("schedule", schedule, SCHEDULES)
    rho = _checks.positive_scalar("rho", rho)
    if not 0.1 <= rho <= 100.0:
        raise ValueError(f"rho: the EDM grid's exponent must lie in [0.1, 100] (Karras et al. use 7), got {rho:g}")
    g = reference.time_grid(t_max, t_min, steps, schedule, rho)
    g[0], g[-1] = t_max, t_min  # exact end points whatever the rounding
    if not (np.diff(g) < 0).all():
        raise ValueError(f"steps: {steps} steps from t_max={t_max:g} to t_min={t_min:g} repeat times in float64 "
                         "(the grid is finer than the numbers can tell apart); use fewer steps")
    return g


DEFAULT_STEPS = 100


def _grid(schedule, t_max, t_min, steps, data) -> np.ndarray:
    if isinstance(schedule, str):
        if t_max is None or t_min is None:
            t_max, t_min = _data_times(data, t_max, t_min)
        return time_grid(t_max, t_min, DEFAULT_STEPS if steps is None else steps, schedule)
    arr = _checks._as_array("schedule", schedule)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(f"schedule: an explicit grid must be 1-D with at least 2 times, got shape {arr.shape}")
    g = arr.astype(np.float64)
    if not np.isfinite(g).all() or (g <= 0).any():
        raise ValueError("schedule: times must be finite and > 0")
    if (np.diff(g) >= 0).any():
        raise ValueError("schedule: times must be strictly decreasing")
    for name, v in (("t_max", t_max), ("t_min", t_min)):
        if v is not None and v != (g[0] if name == "t_max" else g[-1]):
            raise ValueError(f"{name}: disagrees with the explicit schedule; leave it out")
    if steps is not None and steps != len(g) - 1:
        raise ValueError(f"steps: the explicit schedule has {len(g) - 1} steps, not {steps}")
    return g


def _data_times(data, t_max, t_min):
    """The grid's ends the command line uses, from the data (sampler_defaults): t_max the
    largest squared distance of a point from the data's mean, t_min = 1e-4 NN^2."""
    from ._bandwidth import sampler_defaults  # (imports this module)
    from ._toolkit import median_nn_distance

    grid = sampler_defaults(data, median_nn_distance(data))
    t_max = grid["t_max"] if t_max is None else t_max
    t_min = grid["t_min"] if t_min is None else t_min
    if _checks.positive_scalar("t_min", t_min) >= _checks.positive_scalar("t_max", t_max):
        raise ValueError(f"t_min: must be below t_max, got t_min={t_min:g} >= t_max={t_max:g} (the one left out "
                         "comes from the data)")
    return t_max, t_min


def _bandwidths(bandwidth, times: np.ndarray) -> np.ndarray:
    """Bandwidth at each of the K+1 grid times."""
    K = len(times) - 1
    if callable(bandwidth):
        src = "bandwidth (callable)"
        vals = np.empty(K + 1)
        for i, t in enumerate(times):
            v = bandwidth(float(t))
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Real, np.floating, np.integer)):
                raise TypeError(f"{src}: must return a real number for each t, returned {type(v).__name__} "
                                f"at t={t:g}")
            vals[i] = float(v)
    elif np.ndim(bandwidth) == 0:
        vals = np.full(K + 1, _checks.positive_scalar("bandwidth", bandwidth, allow_zero=True))
        src = "bandwidth"
    else:
        vals = _checks._as_array("bandwidth", bandwidth).astype(np.float64).ravel()
        src = "bandwidth"
        if vals.shape[0] == K:  # one per step; the last one also serves t_min
            vals = np.append(vals, vals[-1])
        elif vals.shape[0] != K + 1:
            raise ValueError(f"bandwidth: expected {K} values (one per step) or {K + 1} (one per grid time), "
                             f"got {vals.shape[0]}")
    if not np.isfinite(vals).all() or (vals < 0).any():
        raise ValueError(f"{src}: values must be finite and >= 0")
    return vals


def sample(data, n_samples, *, t_max=None, t_min=None, steps=None, schedule="geometric",
           method="euler_maruyama", bandwidth=0.0, n_kernel=1, kernel="gaussian", estimator="control",
           antithetic=False, orthogonal=False, init="gaussian", denoise_last=True, seed=0,
           return_trajectory=None, return_error=False, log_weights=None, variances=None, threads=None,
           progress=None, tile=None, dtype=None, device="auto", patch=None):
    """Draw ``n_samples`` by reverse diffusion with the (smoothed) score of ``data``.

    data : (N, d) training points, a :class:`Mixture`, a ``ShardedMixture`` or a
    :class:`Local` (the local denoisers' scores; ``patch`` then overrides its patch
    rule: one odd size, a callable of t, or one per step or grid time). The grid goes from
    ``t_max`` to ``t_min`` in ``steps`` steps of ``schedule`` (``"uniform"``,
    ``"geometric"``, ``"edm"``, or an explicit decreasing array of times). Left out, they
    are the command line's, from the data: ``t_max`` the largest squared distance of a
    training point from the data's mean, ``t_min = 1e-4 NN^2`` (NN: the median
    nearest-neighbour distance), 100 steps (:func:`sampler_defaults`).
    method : ``"euler_maruyama"`` (reverse SDE), ``"ode_euler"`` or ``"ode_heun"``
    (probability flow). bandwidth : a number, one value per step (or per grid
    time), or a callable of t; 0 gives the plain score. n_kernel draws of
    ``kernel`` estimate the smoothed score, with ``estimator``, ``antithetic`` and
    ``orthogonal`` as in :func:`smoothed_score` (default: the control estimator,
    whose linear term is removed exactly). init : ``"gaussian"`` (N(0, t_max I))
    or ``"empirical"`` (exact draw of p_{t_max}). denoise_last : return
    ``y_K + t_min s(y_K)`` with the score the run used. return_trajectory : grid
    indices (0..steps) whose states to return as well. progress : callable
    ``(done, total)`` called every few tens of milliseconds from the calling thread.

    return_error : also return the Monte Carlo error of the run, shape
    (steps + denoise_last,): per step the mean over samples of the relative
    standard error ``|se| / |s|`` of the smoothed scores it used (Heun: both
    evaluations; the last entry is the final denoising; 0 where h = 0).

    Returns samples (n_samples, d); with return_trajectory and/or return_error a
    tuple ``(samples, [trajectory (len(indices), n_samples, d)], [mc_error])``. The whole loop runs in compiled code; Ctrl-C
    stops it with KeyboardInterrupt. device : ``"auto"``, ``"cpu"``, ``"cuda"`` or
    ``"cuda:N"``; on the GPU the same seed gives the same samples as on the CPU up to
    floating-point rounding.
    """
    n_samples = _checks.positive_int("n_samples", n_samples)
    times = _grid(schedule, t_max, t_min, steps, data)
    K = len(times) - 1
    mcode = METHODS[_checks.choice("method", method, tuple(METHODS))]
    icode = INITS[_checks.choice("init", init, tuple(INITS))]
    hs = _bandwidths(bandwidth, times)
    smooth = smooth_args(float(hs.max()), n_kernel, kernel, estimator, antithetic, orthogonal, seed, return_error)
    denoise_last = _checks.boolean("denoise_last", denoise_last)
    keep = _trajectory_indices(return_trajectory, K)
    if progress is not None and not callable(progress):
        raise TypeError("progress: expected a callable (done, total) or None")
    call = resolve(data, log_weights=log_weights, variances=variances, device=device, threads=threads, tile=tile,
                   dtype=dtype, pack=True, prune=True)
    mix = call.mix
    need = n_samples * mix.d * mix.dtype.itemsize * (1 + len(keep))
    if need > _checks.physical_memory():
        raise ValueError(f"n_samples: {n_samples} samples{' and their trajectory' if keep else ''} need "
                         f"{need / 2**30:.3g} GiB, more than this machine's memory "
                         f"({_checks.physical_memory() / 2**30:.3g} GiB); draw them in batches")
    _sampler_ranges(mix, schedule, times, hs, icode, smooth.kernel == KERNELS["gaussian"])
    plan = SamplerPlan(times, hs, mcode, smooth, icode, bool(denoise_last), keep, patch)
    samples, traj, err = call.backend.sample(call, n_samples, plan, bool(return_error), progress)
    res = (samples,) + ((traj,) if return_trajectory is not None else ()) + ((err,) if return_error else ())
    return res if len(res) > 1 else samples


def _trajectory_indices(return_trajectory, K: int) -> list:
    """The grid indices of return_trajectory (None: none), checked."""
    if return_trajectory is None:
        return []
    arr = np.atleast_1d(np.asarray(return_trajectory))
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise TypeError("return_trajectory: expected a grid index (0..steps) or a sequence of them, got "
                        f"{return_trajectory!r}")
    keep = [int(k) for k in arr]
    bad = [k for k in keep if not 0 <= k <= K]
    if bad:
        raise ValueError(f"return_trajectory: step indices must lie in [0, {K}], got {bad}")
    if not keep:
        raise ValueError("return_trajectory: give at least one step index")
    return keep


def _sampler_ranges(mix, schedule, times, hs, icode: int, gaussian: bool) -> None:
    """The float-range checks of a run: t_min, the starting noise, the kernel draws."""
    t_name = "t_min" if isinstance(schedule, str) else "schedule"
    _checks.time_for_dtype(t_name, float(times[-1]), mix.dtype)
    # Samples start about sqrt(t_max d) from the data (N(0, t_max I): from the
    # origin), and the kernel draws reach further.
    reach = mix._extent + 2 * np.sqrt(float(times[0]) * mix.d)
    if icode == INITS["gaussian"]:
        origin = _checks.norm(mix._centre)
        _checks.squared_scale("init", origin * origin, mix.dtype, "'gaussian' starts at the origin; its squared distance "
                              "from the data's mean")
        reach += origin
    # (The samples are positions in the working dtype: their own rounding is the run's
    # resolution, so only the data's is checked against t_min.)
    check_ranges(mix, t_name=t_name, t=float(times[-1]),
                 noise=("t_max" if isinstance(schedule, str) else "schedule", float(times[0]),
                        "the starting noise's squared length t_max d"),
                 h=float(hs.max()), gaussian=gaussian, reach=reach, rounding=0.0)
