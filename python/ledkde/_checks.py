"""Argument checks: what ledkde accepts, written once.

Every public function passes its arguments through these helpers before any
compiled code runs, so that bad input gets a ``ValueError`` or ``TypeError``
that names the argument, and the compiled engine only ever sees C-contiguous,
finite arrays of the working dtype. Inputs are never modified: conversions
make new arrays. Which checks a call needs is decided once, by the call layer
(``_call.resolve``: queries, data, time, float ranges); the checks that belong
to one argument's own parser live beside it: ``device=`` in
``_device.placement``, a sampler's schedule and bandwidth in ``_sampler``, data
files in ``_data``.
"""

from __future__ import annotations

import numbers
import os

import numpy as np

# Real dtypes and the float type each converts to without loss.
_LOSSLESS = {
    np.dtype(np.float16): np.float32,
    np.dtype(np.float32): np.float32,
    np.dtype(np.float64): np.float64,
    np.dtype(np.int8): np.float32,
    np.dtype(np.uint8): np.float32,
    np.dtype(np.int16): np.float32,
    np.dtype(np.uint16): np.float32,
    np.dtype(np.int32): np.float64,
    np.dtype(np.uint32): np.float64,
    np.dtype(np.int64): np.float64,
    np.dtype(np.uint64): np.float64,
}


def _as_array(name: str, a) -> np.ndarray:
    if hasattr(a, "__cuda_array_interface__"):
        raise TypeError(
            f"{name}: a GPU array was given to a function that computes on the CPU only; "
            "pass a NumPy array"
        )
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name}: cannot be read as a numeric array ({exc})") from None
    if arr.dtype not in _LOSSLESS:
        raise TypeError(
            f"{name}: dtype {arr.dtype} is not supported; give float32 or float64 "
            "(integer and float16 arrays are converted when that is lossless)"
        )
    if arr.dtype.kind in "iu" and arr.dtype.itemsize == 8 and arr.size:
        if np.abs(arr.astype(np.float64)).max() > 2.0**53:
            raise TypeError(f"{name}: integers above 2**53 cannot be converted to float64 without loss")
    return arr


def as_array(name: str, a) -> np.ndarray:
    """The array behind ``a`` with a supported dtype (shape and values not checked yet)."""
    return _as_array(name, a)


def natural_float(arr: np.ndarray):
    """The float type an array converts to without loss."""
    return _LOSSLESS[arr.dtype]


def array2d(name: str, a, *, d: int | None = None, allow_empty: bool = False) -> np.ndarray:
    """A 2-D real array, checked for shape and finiteness (not converted yet)."""
    arr = _as_array(name, a)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape (rows, d), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name}: the dimension d (second axis) must be at least 1")
    if arr.shape[0] == 0 and not allow_empty:
        raise ValueError(f"{name}: is empty (no rows)")
    if d is not None and arr.shape[1] != d:
        raise ValueError(f"{name}: has dimension {arr.shape[1]}, but the data have dimension {d}")
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(f"{name}: contains NaN or infinite values")
    return arr


def gpu_array2d(name: str, a, xp, *, d: int | None = None):
    """array2d's checks for a GPU array ``a`` (a CuPy array; ``xp`` is cupy),
    done on the device: shape, a supported dtype, finite values."""
    if a.dtype not in _LOSSLESS:
        raise TypeError(
            f"{name}: dtype {a.dtype} is not supported; give float32 or float64 "
            "(integer and float16 arrays are converted when that is lossless)"
        )
    if a.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array of shape (rows, d), got shape {a.shape}")
    if a.shape[1] == 0:
        raise ValueError(f"{name}: the dimension d (second axis) must be at least 1")
    if d is not None and a.shape[1] != d:
        raise ValueError(f"{name}: has dimension {a.shape[1]}, but the data have dimension {d}")
    if a.size and a.dtype.kind in "iu" and a.dtype.itemsize == 8:
        if float(xp.abs(a.astype(xp.float64)).max()) > 2.0**53:
            raise TypeError(f"{name}: integers above 2**53 cannot be converted to float64 without loss")
    if a.size and a.dtype.kind == "f" and not bool(xp.isfinite(a).all()):
        raise ValueError(f"{name}: contains NaN or infinite values")
    return a


def working_dtype(*arrays: np.ndarray):
    """float64 if any array needs it, else float32."""
    return np.float64 if any(natural_float(a) == np.float64 for a in arrays) else np.float32


def float_of_dtype(dtype):
    """The float type a NumPy or CuPy array of ``dtype`` converts to without loss (None
    for an unsupported dtype: the array's own check names the argument)."""
    return _LOSSLESS.get(np.dtype(dtype))


def mixture_dtype(value, arr: np.ndarray) -> np.dtype:
    """The working dtype of a Mixture of ``arr``: ``value`` (float32 or float64, never
    one that loses the data's precision) or, for None, the data's own."""
    if value is None:
        return np.dtype(natural_float(arr))
    try:
        dtype = np.dtype(value)
    except TypeError:
        raise TypeError(f"dtype: expected float32 or float64, got {value!r}") from None
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"dtype: expected float32 or float64, got {dtype}")
    if natural_float(arr) == np.float64 and dtype == np.float32:
        raise TypeError("dtype: float32 would lose precision of float64 data; convert the data yourself")
    return dtype


def boolean(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name}: expected True or False, got {type(value).__name__}")
    return bool(value)


def to_working(arr: np.ndarray, dtype) -> np.ndarray:
    """A C-contiguous copy-or-view in the working dtype (never the caller's buffer to write)."""
    return np.ascontiguousarray(arr, dtype=dtype)


def positive_scalar(name: str, value, *, allow_zero: bool = False) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (numbers.Real, np.ndarray)):
        raise TypeError(f"{name}: expected a real number, got {type(value).__name__}")
    if isinstance(value, np.ndarray):
        if value.ndim != 0 or value.dtype.kind not in "fiu":
            raise TypeError(f"{name}: expected a real number, got an array of shape {value.shape}")
        value = value.item()
    try:
        v = float(value)
    except OverflowError:  # a Python integer beyond the float64 range
        raise ValueError(f"{name}: must be finite, got an integer beyond the float64 range") from None
    if not np.isfinite(v):
        raise ValueError(f"{name}: must be finite, got {v}")
    if v < 0 or (v == 0 and not allow_zero):
        raise ValueError(f"{name}: must be {'>= 0' if allow_zero else '> 0'}, got {v}")
    return v


# Largest logit_tolerance a Mixture takes: each weight within a factor
# e^(2 tol) of exact, 22% at 0.1; beyond that it is no tolerance at all.
MAX_LOGIT_TOLERANCE = 0.1
# The default per working precision (None: the strict rule, 64 eps). float32:
# the float32 matrix product's logits are kept wherever their certified bound
# is below 3e-3 -- at large t, where every logit's bound exceeds 64 eps, the
# strict rule recomputes all of them in float64 (1.6-1.9x the dense limit);
# the realized score errors stay at or below 1.8e-6 of the score's scale
# (README, "Accuracy and speed at large t").
DEFAULT_LOGIT_TOLERANCE = {np.dtype(np.float32): 3e-3, np.dtype(np.float64): None}
STRICT = "strict"


def logit_tolerance(value) -> float | str | None:
    """None (the working precision's default), "strict" (64 eps of the working precision)
    or a float in (0, 0.1]."""
    if value is None or (isinstance(value, str) and value == STRICT):
        return value
    if isinstance(value, str):
        raise TypeError(f"logit_tolerance: expected None, {STRICT!r} or a real number, got the string {value!r}")
    v = positive_scalar("logit_tolerance", value)
    if v > MAX_LOGIT_TOLERANCE:
        raise ValueError(f"logit_tolerance: must be at most {MAX_LOGIT_TOLERANCE} (each weight within a factor "
                         f"exp(2 logit_tolerance) of exact), got {v}")
    return v


def engine_logit_tolerance(checked, dtype) -> float:
    """The engine's Mixture::logit_tol for a value logit_tolerance() passed: 0 is the
    strict rule (64 eps of the working precision)."""
    if checked is None:
        checked = DEFAULT_LOGIT_TOLERANCE[np.dtype(dtype)]
    return 0.0 if checked is None or checked == STRICT else float(checked)


# Smallest time whose logits |y - mu|^2 / (2 t) stay inside the working
# type's range for data of any reasonable size (1/(2t) times norms up to 1e8).
MIN_TIME = {np.dtype(np.float32): 1e-30, np.dtype(np.float64): 1e-290}


def time_for_dtype(name: str, t: float, dtype) -> float:
    lo = MIN_TIME[np.dtype(dtype)]
    if t < lo:
        hint = "; pass float64 arrays for smaller times" if np.dtype(dtype) == np.float32 else ""
        raise ValueError(f"{name}: {t:g} is below {lo:g}, where {np.dtype(dtype).name} logits overflow{hint}")
    return t


# Squared lengths (of data points and queries from the data's mean, of the noise
# t d, of the kernel draws h^2 d) above which the working type cannot form
# |y - x|^2 without overflow, and the largest logit |y - x|^2 / (2 t) it can hold
# with room for the sums of a pass (float32: 3.4e38; float64: 1.8e308).
MAX_SQUARED = {np.dtype(np.float32): 1e36, np.dtype(np.float64): 1e300}
MAX_LOGIT = {np.dtype(np.float32): 1e37, np.dtype(np.float64): 1e305}


def _dtype_hint(dtype) -> str:
    return "; pass float64 arrays, or rescale the data" if np.dtype(dtype) == np.float32 else "; rescale the data"


def squared_scale(name: str, value: float, dtype, what: str) -> float:
    """Refuse a squared length the working type cannot square and sum."""
    lim = MAX_SQUARED[np.dtype(dtype)]
    if not value <= lim:
        raise ValueError(f"{name}: {what} reaches {value:.3g}, above {lim:g}, where {np.dtype(dtype).name} "
                         f"distances overflow{_dtype_hint(dtype)}")
    return value


def logit_range(name: str, t: float, extent: float, dtype) -> float:
    """Refuse a time so small that |y - x|^2 / (2 t) can overflow, for points and queries
    within ``extent`` of the data's mean (so |y - x| <= 2 extent)."""
    top = (2.0 * extent) * (2.0 * extent) / (2.0 * t)
    lim = MAX_LOGIT[np.dtype(dtype)]
    if not top <= lim:
        raise ValueError(f"{name}: {t:g} is too small for queries and points up to {extent:.3g} from the data's "
                         f"mean: |y - x|^2 / (2t) can reach {top:.3g}, above {lim:g}, where {np.dtype(dtype).name} "
                         f"logits overflow{_dtype_hint(dtype)}")
    return t


# float32 passes resolve the data and the queries to within this fraction of the
# noise's scale sqrt(t) per coordinate, or are refused (float64 has no such limit
# in practice): the score and the denoiser then stay within about 1e-4 of their
# scale. What limits float32 is the rounding of coordinates centred on the data's
# centre: the data's (Mixture's resolution: their centring, measured when it is
# prepared, and the weighted sums of the pass) and the queries' (measured per call).
RESOLUTION = 1e-4


def resolution(name: str, t: float, dtype, data_error: float, query_error: float) -> None:
    """Refuse a float32 pass at time t whose data and queries, centred, float32 holds only
    to more than RESOLUTION sqrt(t): the data's largest centring rounding ``data_error``
    plus the queries' ``query_error``."""
    if np.dtype(dtype) != np.float32:
        return
    err = data_error + query_error
    if err > RESOLUTION * np.sqrt(t):
        raise ValueError(f"{name}: at {name} = {t:.3g} the noise's scale per coordinate is sqrt(t) = {np.sqrt(t):.3g}, "
                         f"but float32 holds the data and queries, centred on the data's centre, only to {err:.2g} "
                         f"(data {data_error:.2g}, queries {query_error:.2g}), more than {RESOLUTION:g} of it; pass "
                         "float64 arrays (or centre and rescale the data)")


def norm(v: np.ndarray) -> float:
    """|v| without overflow in the squares (v float64, 1-D)."""
    top = float(np.abs(v).max(initial=0.0))
    return top * float(np.sqrt(((v / top) ** 2).sum())) if top > 0 else 0.0


def extent(arr: np.ndarray, centre: np.ndarray) -> tuple[float, float]:
    """(max_i |arr_i - centre|, the largest rounding of a coordinate of arr - centre to
    float32) in float64, a block of rows at a time (no full float64 copy), without
    overflow in the squares."""
    top2 = rounding = 0.0
    for i in range(0, arr.shape[0], 4096):
        block = arr[i:i + 4096].astype(np.float64) - centre
        with np.errstate(over="ignore"):
            rounding = max(rounding, float(np.abs(block - block.astype(np.float32)).max(initial=0.0)))
        with np.errstate(over="ignore"):
            s2 = float(np.einsum("ij,ij->i", block, block).max(initial=0.0))
        if not np.isfinite(s2):  # squares beyond float64: the same, scaled
            scale = float(np.abs(block).max())
            s2 = scale * scale * float(np.einsum("ij,ij->i", block / scale, block / scale).max())
        top2 = max(top2, s2)
    return float(np.sqrt(top2)), rounding


def kernel_reach(h: float, d: int, gaussian: bool) -> float:
    """How far a kernel draw can take a query: h for the uniform ball; for N(0, h^2 I)
    h (sqrt(d) + 8), beyond which a draw's length has probability below 1e-14."""
    return h * (np.sqrt(d) + 8.0) if gaussian else h


def positive_int(name: str, value, *, minimum: int = 1, maximum: int | None = None, why: str = "") -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {type(value).__name__}")
    v = int(value)
    if v < minimum:
        raise ValueError(f"{name}: must be at least {minimum}, got {v}")
    if maximum is not None and v > maximum:
        raise ValueError(f"{name}: must be at most {maximum}{why}, got {v}")
    return v


# More worker threads than this is a mistake, not a machine (the engines also
# never start more workers than there are tasks).
MAX_THREADS = 4096


def physical_memory() -> int:
    """Bytes of memory of this machine (a large number where the system does not say)."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
        return 1 << 50


def threads(value) -> int:
    if value is None:
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # pragma: no cover - not Linux
            return max(1, os.cpu_count() or 1)
    return positive_int("threads", value, maximum=MAX_THREADS)


# Query rows x components per tile. 256 x 512 measured best for the score
# pass at d = 64 and 784 (bench/README.md); the sampler uses 128-row tiles of
# samples so that a few hundred samples still give every core a tile.
TILE_PASS = (256, 512)
TILE_SAMPLER = (128, 512)
# A tile of logits per worker: at most 2**24 cells (128 MiB in float64).
MAX_TILE_SIDE, MAX_TILE_CELLS = 1 << 20, 1 << 24


def tiles(value, default=TILE_PASS) -> tuple[int, int]:
    if value is None:
        return default
    try:
        tq, tn = value
    except (TypeError, ValueError):
        raise TypeError("tile: expected a pair (tile_q, tile_n) of positive integers") from None
    tq = positive_int("tile[0] (tile_q)", tq, maximum=MAX_TILE_SIDE)
    tn = positive_int("tile[1] (tile_n)", tn, maximum=MAX_TILE_SIDE)
    if tq * tn > MAX_TILE_CELLS:
        raise ValueError(f"tile: tile_q x tile_n must be at most {MAX_TILE_CELLS} (each worker holds one tile of "
                         f"logits), got {tq} x {tn}")
    return tq, tn


def pass_options(module, threads_value, tile_value, default=TILE_PASS):
    """The compiled options of a pass (module: the engine that runs it), checked."""
    tq, tn = tiles(tile_value, default)
    return module.PassOptions(threads=threads(threads_value), tile_q=tq, tile_n=tn)


def seed(value) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"seed: expected a non-negative integer, got {type(value).__name__}")
    v = int(value)
    if not 0 <= v < 2**64:
        raise ValueError(f"seed: must be in [0, 2**64), got {v}")
    return v


def log_weights(value, n: int) -> np.ndarray | None:
    if value is None:
        return None
    arr = _as_array("log_weights", value)
    if arr.shape != (n,):
        raise ValueError(f"log_weights: expected shape ({n},) to match data, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if np.isnan(arr).any() or np.isposinf(arr).any():
        raise ValueError("log_weights: contains NaN or +inf")
    if np.isneginf(arr).all():
        raise ValueError("log_weights: all entries are -inf (every component has zero weight)")
    return arr


def variances(value, n: int) -> np.ndarray | None:
    if value is None:
        return None
    arr = _as_array("variances", value)
    if arr.shape != (n,):
        raise ValueError(f"variances: expected shape ({n},) to match data, got {arr.shape}")
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise ValueError("variances: contains NaN or infinite values")
    if (arr < 0).any():
        raise ValueError("variances: must be >= 0 (component variances), found a negative entry")
    return arr


def choice(name: str, value, options) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name}: expected one of {', '.join(repr(o) for o in options)}, got {value!r}")
    return value


def smoothing(bandwidth, n_kernel, kernel, kernels, estimator, estimators, antithetic, orthogonal, seed_value,
              return_error=False):
    """The kernel-smoothing arguments of the smoothed scores and the sampler, checked:
    (h, M, kernel name, estimator name, antithetic, orthogonal, seed)."""
    h = positive_scalar("bandwidth", bandwidth, allow_zero=True)
    m = positive_int("n_kernel", n_kernel, maximum=2**30, why=" (the draws' stream index is 32-bit)")
    k = choice("kernel", kernel, kernels)
    e = choice("estimator", estimator, estimators)
    anti, orth = boolean("antithetic", antithetic), boolean("orthogonal", orthogonal)
    ret = boolean("return_error", return_error)
    if anti and m % 2:
        raise ValueError(f"n_kernel: must be even with antithetic=True (pairs u, -u), got {m}")
    if ret and h > 0 and m < (4 if anti else 2):
        raise ValueError(f"n_kernel: a standard error needs at least two independent draws "
                         f"({'two antithetic pairs, n_kernel >= 4' if anti else 'n_kernel >= 2'}), got {m}")
    return h, m, k, e, anti, orth, seed(seed_value)


def pass_state(name: str, s):
    """A PassState (ledkde.PassState, already known to be one) whose arrays the compiled
    merge and finalize can read safely."""
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
    if np.isnan(s.log_max).any() or np.isposinf(s.log_max).any():
        raise ValueError(f"{name}: log_max must hold numbers below +inf (-inf: nothing seen), not NaN")
    for field in ("sum", "ent", "score_num"):
        if not np.isfinite(getattr(s, field)).all():
            raise ValueError(f"{name}: {field} must hold finite numbers")
    if (s.sum < 0).any():
        raise ValueError(f"{name}: sum must be >= 0 (a sum of weights)")
    if not isinstance(s.log_mass, (float, np.floating)) or np.isnan(s.log_mass) or s.log_mass == np.inf:
        raise ValueError(f"{name}: log_mass must be a float below +inf")
    if not isinstance(s.t, (float, np.floating)) or not np.isfinite(s.t) or s.t <= 0:
        raise ValueError(f"{name}: t must be a finite time > 0")
    return s
