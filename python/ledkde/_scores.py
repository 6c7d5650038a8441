"""Plain and kernel-smoothed scores of a Gaussian mixture (empirical data by default)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from . import _checks
from ._backend import OUTPUTS, SmoothPlan
from ._call import resolve
from ._loader import _core
from ._mixture import Mixture  # noqa: F401  (ledkde.Mixture is exported from here)

KERNELS = {"gaussian": 0, "uniform": 1}


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
    call = resolve(data, y=y, t=t, log_weights=log_weights, variances=variances, device=device, threads=threads,
                   tile=tile)
    return call.backend.evaluate(call, outs)


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
    empty = False
    if log_weights is not None:
        lw = _checks.as_array("log_weights", log_weights)
        # A shard without weight: the identity of merge_states (checked like any other call).
        empty = lw.size > 0 and lw.dtype.kind == "f" and bool(np.isneginf(lw).all())
    call = resolve(data, y=y, t=t, log_weights=None if empty else log_weights, variances=variances, device=device,
                   threads=threads, tile=tile)
    y_host = np.array(_host(call.y), copy=True)  # the state's own copy of the queries
    if empty:
        if lw.shape != (call.mix.n,):
            raise ValueError(f"log_weights: expected shape ({call.mix.n},) to match data, got {lw.shape}")
        q = y_host.shape[0]
        return PassState(np.full(q, -np.inf), np.zeros(q), np.zeros(q), np.zeros((q, call.mix.d)), -np.inf,
                         y_host, call.t)
    m, S, E, A, log_mass = call.backend.partial(call)
    return PassState(m, S, E, A, log_mass, y_host, call.t)


def _host(a) -> np.ndarray:
    """A NumPy array of a NumPy or CuPy array."""
    return a if isinstance(a, np.ndarray) else a.get()


def _check_state(name: str, s) -> PassState:
    if not isinstance(s, PassState):
        raise TypeError(f"{name}: expected a PassState (from partial_state), got {type(s).__name__}")
    return _checks.pass_state(name, s)


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
        m, S, E, A, _ = _core.merge_states(m, S, E, A, s.log_max, s.sum, s.ent, s.score_num)
        log_mass = float(np.logaddexp(log_mass, s.log_mass))
    return PassState(m, S, E, A, log_mass, first.y, first.t)


def finalize(state: PassState, outputs: Sequence[str] = OUTPUTS) -> dict[str, np.ndarray]:
    """The outputs of :func:`evaluate` from a (merged) :class:`PassState`, in float64."""
    _check_state("state", state)
    if _is_empty(state):
        raise ValueError("state: every shard had zero weight (all log-weights -inf); there is no density")
    if not (state.sum > 0).all():
        raise ValueError("state: sum is 0 for some queries (no component with weight was seen for them); "
                         "merge the states of every shard first")
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


def smooth_args(bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed,
                return_error=False) -> SmoothPlan:
    """The checked kernel-smoothing arguments. Shared by the smoothed scores and the
    sampler (which passes its largest bandwidth)."""
    h, m, kname, ename, anti, orth, sd = _checks.smoothing(bandwidth, n_kernel, kernel, tuple(KERNELS), estimator,
                                                           tuple(ESTIMATORS), antithetic, orthogonal, seed,
                                                           return_error)
    return SmoothPlan(h, m, KERNELS[kname], ESTIMATORS[ename], anti, orth, sd)


def _smoothed(y, data, t, bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed, return_error,
              log_weights, variances, threads, tile, device, want_score):
    smooth = smooth_args(bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed, return_error)
    call = resolve(data, y=y, t=t, log_weights=log_weights, variances=variances, device=device, threads=threads,
                   tile=tile, kernel=(smooth.bandwidth, smooth.kernel == KERNELS["gaussian"]))
    out, err = call.backend.smoothed(call, smooth, want_score, bool(return_error))
    return (out, err) if return_error else out


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
