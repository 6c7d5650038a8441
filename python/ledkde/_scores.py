"""Plain and kernel-smoothed scores of a Gaussian mixture (empirical data by default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from . import _checks, _device
from ._loader import _core

OUTPUTS = ("log_density", "score", "denoise", "entropy", "max_weight")
_OUT_BITS = {
    "log_density": _core.OUT_LOG_DENSITY,
    "score": _core.OUT_SCORE,
    "denoise": _core.OUT_DENOISE,
    "entropy": _core.OUT_ENTROPY,
    "max_weight": _core.OUT_MAX_WEIGHT,
}
KERNELS = {"gaussian": 0, "uniform": 1}


class Mixture:
    """Data prepared once for many calls: the components, centred, with their norms.

    ``Mixture(data, log_weights=None, variances=None, dtype=None, threads=None)``

    data : (N, d) array; the empirical case is ``mu_i = data[i]``, ``a_i = 1/N``,
    ``s2_i = 0``. log_weights : (N,) unnormalized log a_i. variances : (N,) s2_i >= 0.
    dtype : float32 or float64 working precision (default: float64 if ``data`` needs
    it, else float32). threads : workers of the preparation (default: all cores;
    the calls that build a Mixture for you pass their own ``threads``). Every function that takes ``data`` also takes a Mixture, so a
    data set is centred and its norms computed only once.
    """

    def __init__(self, data, *, log_weights=None, variances=None, dtype=None, threads=None, _pack=True):
        arr = _checks.array2d("data", _device.to_host("data", data))
        n, d = arr.shape
        lw = _checks.log_weights(log_weights, n)
        var = _checks.variances(variances, n)
        if dtype is None:
            dtype = _checks.natural_float(arr)
        try:
            dtype = np.dtype(dtype)
        except TypeError:
            raise TypeError(f"dtype: expected float32 or float64, got {dtype!r}") from None
        if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
        if _checks.natural_float(arr) == np.float64 and dtype == np.float32:
            raise TypeError("dtype: float32 would lose precision of float64 data; convert the data yourself")
        self.dtype = dtype
        self.n, self.d = n, d
        self.has_weights = lw is not None
        self.has_variances = var is not None
        # _pack=False (one-shot calls with few queries): skip laying the data out
        # for the built-in tile products, which only repays over more work.
        self._core = _core.prepare(_checks.to_working(arr, dtype), lw, var, _checks.threads(threads),
                                   bool(_pack))
        # The centre the engine moved the data by and their largest distance from
        # it (computed in float64 by the preparation): what the range checks of
        # every call need (ledkde._checks.MAX_SQUARED / MAX_LOGIT).
        _checks.squared_scale("data", self._core.norm2_max, dtype, "the squared distance of a point from the data's mean")
        self._centre = np.asarray(self._core.centre)
        self._extent = float(np.sqrt(self._core.norm2_max))
        self._on_device = {}  # CUDA device index -> device-resident copy

    def _engine(self, where: "_device.Placement"):
        """The compiled mixture for a placement: the host one, or a copy resident on the GPU
        (made once per device and kept, with its centring and norms)."""
        if where.kind == "cpu":
            return self._core
        if where.index not in self._on_device:
            cls = where.module().DeviceMixture32 if self.dtype == np.float32 else where.module().DeviceMixture64
            self._on_device[where.index] = cls(self._core, where.index)
        return self._on_device[where.index]

    def __repr__(self) -> str:
        return f"Mixture(n={self.n}, d={self.d}, dtype={self.dtype.name})"


# A one-shot call with fewer queries than this runs on BLAS rather than pack
# the data for the built-in tile products. Measured break-even: 8-64 queries
# at d = 64, N = 50000 (BLAS is slow on such thin products); about 256 at
# d = 784, N = 4000 (BLAS runs near its peak there, and the packs are large).
def _pack_min_queries(d: int) -> int:
    return 32 if d <= 512 else 256


def _mixture_for(data, log_weights, variances, y_arr: np.ndarray, threads=None) -> Mixture:
    """The Mixture to use, in the working dtype of both data and queries."""
    if isinstance(data, Mixture):
        if log_weights is not None or variances is not None:
            raise ValueError("log_weights/variances: give them when building the Mixture, not with it")
        if _checks.natural_float(y_arr) == np.float64 and data.dtype == np.float32:
            raise TypeError("y: float64 queries with a float32 Mixture would lose precision; "
                            "build the Mixture with dtype=float64")
        return data
    # Only the dtype here: Mixture() checks the array (shape, finiteness) once.
    arr = _checks.as_array("data", data)
    d = arr.shape[-1] if arr.ndim else 0  # (Mixture() reports a bad shape)
    return Mixture(arr, log_weights=log_weights, variances=variances, threads=threads,
                   dtype=_checks.working_dtype(arr, y_arr), _pack=y_arr.shape[0] >= _pack_min_queries(d))


def _query_extent(name: str, y_like: np.ndarray, mix: Mixture) -> float:
    """The queries' largest distance from the data's mean, refused where its square overflows."""
    ext = _checks.extent(y_like, mix._centre) if y_like.size else 0.0
    _checks.squared_scale(name, ext * ext, mix.dtype, "the squared distance of a query from the data's mean")
    return ext


def _check_ranges(mix: Mixture, *, t_name: str, t: float, noise: tuple, h: float, gaussian: bool,
                  reach: float) -> None:
    """The float-range checks of every pass over ``mix``: the noise's squared length
    (``noise`` = (name, its variance, what to call it)), the kernel draws' squared
    length, and the largest logit at time ``t`` for queries up to ``reach`` from the
    data's mean, carried further by the kernel draws."""
    name, var, what = noise
    _checks.squared_scale(name, var * mix.d, mix.dtype, what)
    _checks.squared_scale("bandwidth", h * h * mix.d, mix.dtype, "the kernel draws' squared length h^2 d")
    _checks.logit_range(t_name, t, max(reach + _checks.kernel_reach(h, mix.d, gaussian), mix._extent), mix.dtype)


def _mixture_and_time(data, log_weights, variances, y_like, t, kernel=(0.0, True), threads=None):
    """The Mixture for queries shaped and typed like ``y_like``, and the checked time.
    kernel: (h, gaussian) of the kernel draws, which take the pass beyond y."""
    mix = _mixture_for(data if isinstance(data, Mixture) else _device.to_host("data", data), log_weights,
                       variances, y_like, threads)
    if y_like.shape[1] != mix.d:
        raise ValueError(f"y: has dimension {y_like.shape[1]}, but the data have dimension {mix.d}")
    t = _checks.time_for_dtype("t", _checks.positive_scalar("t", t), mix.dtype)
    ext_y = _query_extent("y", y_like, mix)
    h, gaussian = kernel
    _check_ranges(mix, t_name="t", t=t, noise=("t", t, "the noise's squared length t d"), h=h, gaussian=gaussian,
                  reach=ext_y)
    return mix, t


def _prepare(y, data, t, log_weights, variances, device, kernel=(0.0, True), threads=None):
    where = _device.placement(device, y, None if isinstance(data, Mixture) else data)
    y_arr = _checks.array2d("y", _device.to_host("y", y), allow_empty=True)
    mix, t = _mixture_and_time(data, log_weights, variances, y_arr, t, kernel, threads)
    return _checks.to_working(y_arr, mix.dtype), mix, t, where


def _gpu_prepare(y, data, t, log_weights, variances, device, kernel=(0.0, True), threads=None):
    """The zero-copy path for queries already on a GPU: (y in the working dtype
    on its device, Mixture, t, device engine, CUDA module, cupy, device index)."""
    where = _device.placement(device, y, None if isinstance(data, Mixture) else data)
    cp = _device._cupy("y")
    yg = _checks.gpu_array2d("y", _device.as_cupy("y", y), cp)
    if where.index != yg.device.id:  # device="auto" already chose y's own device
        raise ValueError(f"y: lives on cuda:{yg.device.id}, but device={device!r} was asked for")
    # Only y's dtype and dimension matter for the Mixture's working dtype.
    mix, t = _mixture_and_time(data, log_weights, variances, np.empty((0, yg.shape[1]), dtype=yg.dtype), t, kernel,
                               threads)
    with cp.cuda.Device(where.index):
        y_w = cp.ascontiguousarray(yg, dtype=mix.dtype)  # a copy only to convert; y is never written
    return y_w, mix, t, mix._engine(where), where.module(), cp, where.index


def _ptr(a) -> int:
    return 0 if a is None else a.data.ptr


def _outputs(outputs) -> list:
    if isinstance(outputs, str):
        return [outputs]
    try:
        return list(outputs)
    except TypeError:
        raise TypeError(f"outputs: expected a name or a sequence of names from {', '.join(OUTPUTS)}, "
                        f"got {type(outputs).__name__}") from None


def evaluate(y, data, t, *, outputs: Sequence[str] = ("log_density", "score"), log_weights=None,
             variances=None, threads=None, tile=None, device="auto") -> dict[str, np.ndarray]:
    """Several per-query quantities of ``p_t = sum_i a_i N(mu_i, (s2_i + t) I)`` in one pass.

    y : (Q, d) queries. data : (N, d) components (or a :class:`Mixture`). t : time > 0.
    outputs : any of ``"log_density"`` (Q,), ``"score"`` (Q, d), ``"denoise"`` (Q, d),
    ``"entropy"`` (Q,) and ``"max_weight"`` (Q,) of the posterior weights.
    Returns a dict name -> array, in the working dtype (float32 if y and data are
    float32, else float64). device : ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
    (see ``ledkde.cuda_available``); GPU inputs give CuPy results.
    """
    outs = _outputs(outputs)
    if not outs:
        raise ValueError("outputs: ask for at least one of " + ", ".join(OUTPUTS))
    for o in outs:
        _checks.choice("outputs", o, OUTPUTS)
    if _device.is_gpu_array(y) and device != "cpu":
        y_w, mix, t, engine, module, cp, index = _gpu_prepare(y, data, t, log_weights, variances, device,
                                                              threads=threads)
        q, d = y_w.shape
        with cp.cuda.Device(index):
            res = {o: cp.empty((q, d) if o in ("score", "denoise") else (q,), dtype=mix.dtype) for o in outs}
            module.evaluate_ptr(engine, y_w.data.ptr, q, t, *(_ptr(res.get(o)) for o in OUTPUTS))
        return res
    y_w, mix, t, where = _prepare(y, data, t, log_weights, variances, device, threads=threads)
    opts = _checks.pass_options(where.module(), threads, tile)
    bits = 0
    for o in outs:
        bits |= _OUT_BITS[o]
    res = where.module().evaluate(mix._engine(where), y_w, t, bits, opts)
    return where.output({name: arr for name, arr in zip(OUTPUTS, res) if name in outs})


def log_density(y, data, t, *, log_weights=None, variances=None, threads=None, tile=None,
                device="auto") -> np.ndarray:
    """``log p_t(y)``, shape (Q,). See :func:`evaluate` for the arguments."""
    return evaluate(y, data, t, outputs=("log_density",), log_weights=log_weights,
                    variances=variances, threads=threads, tile=tile, device=device)["log_density"]


def denoise(y, data, t, *, log_weights=None, variances=None, threads=None, tile=None,
            device="auto") -> np.ndarray:
    """Posterior mean (Tweedie) ``y + t s_t(y)``, shape (Q, d). See :func:`evaluate`."""
    return evaluate(y, data, t, outputs=("denoise",), log_weights=log_weights,
                    variances=variances, threads=threads, tile=tile, device=device)["denoise"]


def score(y, data, t, *, log_weights=None, variances=None, threads=None, tile=None,
          device="auto") -> np.ndarray:
    """Score ``grad log p_t(y)``, shape (Q, d). See :func:`evaluate`."""
    return evaluate(y, data, t, outputs=("score",), log_weights=log_weights,
                    variances=variances, threads=threads, tile=tile, device=device)["score"]


# --------------------------------------------------------------------------- partial states
@dataclass
class PassState:
    """The partial state of a score pass over some of the components (float64).

    log_max : (Q,) running maximum logit; sum : (Q,) sum of exp(logit - log_max);
    ent : (Q,) sum of exp(logit - log_max) (logit - log_max); score_num : (Q, d)
    sum of exp(logit - log_max) (mu - y) / v; log_mass : log of the total
    (unnormalized) weight of the components seen; y, t : the queries and time.
    States of disjoint shards of one data set merge with :func:`merge_states`.
    """

    log_max: np.ndarray
    sum: np.ndarray
    ent: np.ndarray
    score_num: np.ndarray
    log_mass: float
    y: np.ndarray
    t: float


def partial_state(y, data, t, *, log_weights=None, variances=None, threads=None, tile=None,
                  device="auto") -> PassState:
    """The unfinalized pass of :func:`evaluate` over ``data`` (one shard of a data set).

    Log-weights are used as given (not normalized), so that shards combine: give
    each shard its own slice of the log-weights; a shard whose log-weights are all
    -inf gives the empty state, which merges as the identity. Merge the states of
    all shards with :func:`merge_states`, then :func:`finalize`. The states are
    NumPy arrays whatever the device, so shards computed on different GPUs
    (``device="cuda:N"``) merge on the host. The state keeps its own copy of ``y``.
    """
    if log_weights is not None:
        lw = _checks.as_array("log_weights", log_weights)
        if lw.size and lw.dtype.kind == "f" and np.isneginf(lw).all():
            # A shard without weight: the identity of merge_states (checked like any other call).
            y_w, mix, t, _ = _prepare(y, data, t, None, variances, device, threads=threads)
            if lw.shape != (mix.n,):
                raise ValueError(f"log_weights: expected shape ({mix.n},) to match data, got {lw.shape}")
            q = y_w.shape[0]
            return PassState(np.full(q, -np.inf), np.zeros(q), np.zeros(q), np.zeros((q, mix.d)), -np.inf,
                             np.array(y_w, copy=True), t)
    y_w, mix, t, where = _prepare(y, data, t, log_weights, variances, device, threads=threads)
    opts = _checks.pass_options(where.module(), threads, tile)
    m, S, E, A = where.module().partial(mix._engine(where), y_w, t, opts)
    return PassState(m, S, E, A, float(mix._core.log_mass), np.array(y_w, copy=True), t)


def _check_state(name: str, s) -> PassState:
    """A PassState whose arrays the compiled merge and finalize can read safely."""
    if not isinstance(s, PassState):
        raise TypeError(f"{name}: expected a PassState (from partial_state), got {type(s).__name__}")
    y = s.y
    if not isinstance(y, np.ndarray) or y.ndim != 2 or y.dtype.kind != "f":
        raise ValueError(f"{name}: y must be a 2-D float array of the queries")
    q, d = y.shape
    for field, shape in (("log_max", (q,)), ("sum", (q,)), ("ent", (q,)), ("score_num", (q, d))):
        a = getattr(s, field)
        if not isinstance(a, np.ndarray) or a.dtype != np.float64 or a.shape != shape:
            raise ValueError(f"{name}: {field} must be a float64 array of shape {shape} for {q} queries in "
                             f"dimension {d}, got {getattr(a, 'dtype', type(a).__name__)} "
                             f"{getattr(a, 'shape', '')}")
    if not isinstance(s.log_mass, (float, np.floating)) or np.isnan(s.log_mass) or s.log_mass == np.inf:
        raise ValueError(f"{name}: log_mass must be a float below +inf")
    if not isinstance(s.t, (float, np.floating)) or not np.isfinite(s.t) or s.t <= 0:
        raise ValueError(f"{name}: t must be a finite time > 0")
    return s


def _is_empty(s: PassState) -> bool:
    return s.log_mass == -np.inf and not s.sum.any()


def merge_states(states: Iterable[PassState]) -> PassState:
    """Merge the states of disjoint shards (associative; same queries and time).
    Empty states (shards without weight) are the identity."""
    if isinstance(states, PassState):
        states = [states]
    try:
        states = list(states)
    except TypeError:
        raise TypeError(f"states: expected an iterable of PassState, got {type(states).__name__}") from None
    if not states:
        raise ValueError("states: give at least one PassState")
    for i, s in enumerate(states):
        _check_state(f"states[{i}]", s)
    first = states[0]
    for i, s in enumerate(states[1:], start=1):
        if s.t != first.t or s.y.shape != first.y.shape or not np.array_equal(s.y, first.y):
            raise ValueError(f"states[{i}]: computed for other queries or another time than states[0]")
    full = [s for s in states if not _is_empty(s)]
    if not full:
        return PassState(first.log_max.copy(), first.sum.copy(), first.ent.copy(), first.score_num.copy(),
                         -np.inf, first.y, first.t)
    m, S, E, A = full[0].log_max, full[0].sum, full[0].ent, full[0].score_num
    log_mass = full[0].log_mass
    for s in full[1:]:
        m, S, E, A = _core.merge_states(m, S, E, A, s.log_max, s.sum, s.ent, s.score_num)
        log_mass = float(np.logaddexp(log_mass, s.log_mass))
    return PassState(m, S, E, A, log_mass, first.y, first.t)


def finalize(state: PassState, outputs: Sequence[str] = OUTPUTS) -> dict[str, np.ndarray]:
    """The outputs of :func:`evaluate` from a (merged) :class:`PassState`, in float64."""
    _check_state("state", state)
    if _is_empty(state):
        raise ValueError("state: every shard had zero weight (all log-weights -inf); there is no density")
    outs = _outputs(outputs)
    for o in outs:
        _checks.choice("outputs", o, OUTPUTS)
    ld, sc, ent, mw = _core.finalize_state(state.log_max, state.sum, state.ent, state.score_num)
    res = {
        "log_density": ld - state.log_mass,
        "score": sc,
        "denoise": state.y.astype(np.float64) + state.t * sc,
        "entropy": ent,
        "max_weight": mw,
    }
    return {o: res[o] for o in outs}


# --------------------------------------------------------------------------- smoothed scores
ESTIMATORS = {"naive": 0, "control": 1}


def smooth_args(bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed, return_error=False):
    """The checked kernel-smoothing arguments: (h, M, kernel code, estimator code,
    antithetic, orthogonal, seed). Shared by the smoothed scores and the sampler
    (which passes its largest bandwidth)."""
    h = _checks.positive_scalar("bandwidth", bandwidth, allow_zero=True)
    m = _checks.positive_int("n_kernel", n_kernel, maximum=2**30, why=" (the draws' stream index is 32-bit)")
    k = KERNELS[_checks.choice("kernel", kernel, tuple(KERNELS))]
    e = ESTIMATORS[_checks.choice("estimator", estimator, tuple(ESTIMATORS))]
    for name, v in (("antithetic", antithetic), ("orthogonal", orthogonal), ("return_error", return_error)):
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name}: expected True or False, got {type(v).__name__}")
    if antithetic and m % 2:
        raise ValueError(f"n_kernel: must be even with antithetic=True (pairs u, -u), got {m}")
    if return_error and h > 0 and m < (4 if antithetic else 2):
        raise ValueError(f"n_kernel: a standard error needs at least two independent draws "
                         f"({'two antithetic pairs, n_kernel >= 4' if antithetic else 'n_kernel >= 2'}), got {m}")
    return h, m, k, e, bool(antithetic), bool(orthogonal), _checks.seed(seed)


def _smoothed(y, data, t, bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed, return_error,
              log_weights, variances, threads, tile, device, want_score):
    h, m, k, est, anti, orth, sd = smooth_args(bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal,
                                               seed, return_error)
    want_ld = not want_score
    if _device.is_gpu_array(y) and device != "cpu":
        y_w, mix, t, engine, module, cp, index = _gpu_prepare(y, data, t, log_weights, variances, device,
                                                                 kernel=(h, k == KERNELS["gaussian"]), threads=threads)
        q, d = y_w.shape
        with cp.cuda.Device(index):
            out = cp.empty((q, d) if want_score else (q,), dtype=mix.dtype)
            err = cp.empty((q,), dtype=mix.dtype) if return_error else None
            ptr = out.data.ptr
            eptr = 0 if err is None else err.data.ptr
            module.smoothed_ptr(engine, y_w.data.ptr, q, t, h, m, k, est, anti, orth, sd,
                                ptr if want_score else 0, 0 if want_score else ptr,
                                eptr if want_score else 0, 0 if want_score else eptr)
        return (out, err) if return_error else out
    y_w, mix, t, where = _prepare(y, data, t, log_weights, variances, device, kernel=(h, k == KERNELS["gaussian"]),
                                  threads=threads)
    module = where.module()
    smooth = module.SmoothOptions(bandwidth=h, n_kernel=m, kernel=k, estimator=est, antithetic=anti,
                                  orthogonal=orth, seed=sd)
    sc, ld, sse, lse = module.smoothed(mix._engine(where), y_w, t, smooth, want_score, want_ld, bool(return_error),
                                       _checks.pass_options(module, threads, tile))
    out, err = (sc, sse) if want_score else (ld, lse)
    if return_error:
        return where.output(out), where.output(err)
    return where.output(out)


_SMOOTH_DOC = """
    Estimated from ``n_kernel`` draws ``u`` of the kernel ``K_h``: ``"gaussian"``
    (N(0, h^2 I)) or ``"uniform"`` (uniform on the ball of radius h).
    estimator : ``"control"`` (default) removes the term that is linear in ``u``
    and has mean zero (``-u/t`` in the score, ``s_t(y) . u`` in the log-density),
    which otherwise dominates the estimate at small t; ``"naive"`` is the plain
    average of ``s_t(y + u)``, kept to show that artifact. Both are unbiased.
    antithetic : draws in pairs (u, -u). orthogonal : blocks of up to d mutually
    orthogonal draws (each still distributed as K_h). The draws come from the
    counter-based stream of ``seed`` (row index = query index, step 0), so the
    result does not depend on ``threads``. ``bandwidth=0`` gives the plain value
    exactly. return_error : also return the Monte Carlo standard error per query,
    shape (Q,) (for the score: the expected length of the error vector), from the
    spread of the draws (antithetic: of the pairs; for orthogonal draws the same
    formula, which tends to overstate the error).
"""


def smoothed_score(y, data, t, *, bandwidth, n_kernel, kernel="gaussian", estimator="control", antithetic=False,
                   orthogonal=False, seed=0, return_error=False, log_weights=None, variances=None, threads=None,
                   tile=None, device="auto"):
    return _smoothed(y, data, t, bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed,
                     return_error, log_weights, variances, threads, tile, device, True)


def led_kde_log_density(y, data, t, *, bandwidth, n_kernel, kernel="gaussian", estimator="control",
                        antithetic=False, orthogonal=False, seed=0, return_error=False, log_weights=None,
                        variances=None, threads=None, tile=None, device="auto"):
    return _smoothed(y, data, t, bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed,
                     return_error, log_weights, variances, threads, tile, device, False)


smoothed_score.__doc__ = """Kernel-smoothed score ``(K_h * s_t)(y) = E_u[s_t(y + u)]``, shape (Q, d).

    Returns the score, or ``(score, standard_error)`` with ``return_error=True``.
""" + _SMOOTH_DOC
led_kde_log_density.__doc__ = """``(K_h * log p_t)(y)``, shape (Q,): the log of the LED-KDE up to its normalizing constant.

    Same draws as :func:`smoothed_score` for the same seed. Returns the
    log-density, or ``(log_density, standard_error)`` with ``return_error=True``.
""" + _SMOOTH_DOC
