"""The one call layer: every compute function resolves its arguments here, once.

``resolve`` takes the arguments a public function was given and, in this order,
each exactly once:

1. decides where the call runs (``_device.placement`` looks at every input once);
2. reads the queries ``y``: a CuPy view on their own GPU when the call runs there
   (no copy), else a checked host array;
3. builds the :class:`Mixture` (the data read and checked once, in the working dtype
   of data and queries) or checks the prepared data given (a Mixture, or a
   ``ShardedMixture``: any ``_mixture.Data``);
4. checks the queries' dimension, the time ``t`` and the float ranges of the pass;

and returns a :class:`Call`, whose ``backend`` (``ledkde._backend``) runs it: the same
protocol for data in this process and data sharded over a cluster, so no public
function asks which kind of data it was given. Argument checks themselves live in
``_checks``; this module only decides which apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _checks, _device
from ._mixture import Data, Mixture, Points

# A one-shot call with fewer queries than this runs on BLAS rather than pack
# the data for the built-in tile products. Measured break-even: 8-64 queries
# at d = 64, N = 50000 (BLAS is slow on such thin products); about 256 at
# d = 784, N = 4000 (BLAS runs near its peak there, and the packs are large).
def _pack_min_queries(d: int) -> int:
    return 32 if d <= 512 else 256


# resolve's y and t for calls without queries or without a time (None is a bad
# y or t, refused by name).
ABSENT = object()


@dataclass(frozen=True)
class Call:
    """A call's resolved arguments.

    where : the placement; mix : the prepared data; t : the checked time (None for calls
    without one); y : (Q, d) queries in the working dtype, a NumPy array or (y_on_gpu)
    a CuPy array on the GPU the call runs on (None for calls without queries);
    threads, tile : as given, checked by ``options``. backend : the engine that runs
    the call (``ledkde._backend``).
    """

    where: _device.Placement
    mix: Data
    t: float | None
    y: Any
    y_on_gpu: bool
    threads: Any = None
    tile: Any = None
    backend: Any = None

    @property
    def module(self):
        """The compiled module of the placement (its option types)."""
        return self.where.module()

    def options(self, default=_checks.TILE_PASS):
        """The compiled PassOptions (threads and tile checked)."""
        return _checks.pass_options(self.module, self.threads, self.tile, default)

    def output(self, value):
        """Results as the kind of array the inputs were (see ``_device.Placement.output``)."""
        return self.where.output(value)

    def cupy(self):
        """CuPy, for calls whose queries are on the GPU."""
        return _device._cupy("y")


def check_ranges(mix: Data, *, t_name: str, t: float, noise: tuple, h: float, gaussian: bool,
                 reach: float, rounding: float) -> None:
    """The float-range checks of every pass over ``mix``: the noise's squared length
    (``noise`` = (name, its variance, what to call it)), the kernel draws' squared
    length, the largest logit at time ``t`` for queries up to ``reach`` from the
    data's mean, carried further by the kernel draws, and (float32) the resolution of
    the data and of queries whose centred coordinates round by ``rounding``."""
    name, var, what = noise
    _checks.squared_scale(name, var * mix.d, mix.dtype, what)
    _checks.squared_scale("bandwidth", h * h * mix.d, mix.dtype, "the kernel draws' squared length h^2 d")
    _checks.logit_range(t_name, t, max(reach + _checks.kernel_reach(h, mix.d, gaussian), mix._extent), mix.dtype)
    # A kernel draw moves a coordinate by h g, |g| below 8 but for 1e-15 of the draws:
    # half a unit in the last place of that more.
    _checks.resolution(t_name, t, mix.dtype, mix._resolution, rounding + 2.0**-24 * 8.0 * h)


def _query_extent(name: str, y, mix: Data, on_gpu: bool) -> tuple[float, float]:
    """The queries' largest distance from the data's mean (refused where its square
    overflows) and the largest rounding of a centred coordinate to float32."""
    if not y.shape[0]:
        ext = rounding = 0.0
    elif on_gpu:  # on the device: only the two numbers come back
        cp = _device._cupy("y")
        diff = y.astype(cp.float64) - cp.asarray(mix._centre)
        top = float(cp.abs(diff).max())
        ext = top * float(cp.sqrt(((diff / top) ** 2).sum(axis=1).max())) if top > 0 else 0.0
        rounding = float(cp.abs(diff - diff.astype(cp.float32)).max())
    else:
        ext, rounding = _checks.extent(y, mix._centre)
    _checks.squared_scale(name, ext * ext, mix.dtype, "the squared distance of a query from the data's mean")
    return ext, rounding


def _mixture(data, data_on_gpu: bool, log_weights, variances, query_float, dtype, threads, pack, prune,
             y_name) -> Data:
    """The prepared data of a call: ``data`` itself when it is prepared (a Mixture, a
    ShardedMixture), else a Mixture built once from the data read in the working dtype
    of data and queries (``query_float``: the float type the queries need, or None) or
    in ``dtype`` when given."""
    if isinstance(data, Data):
        kind = type(data).__name__
        if log_weights is not None or variances is not None:
            raise ValueError(f"log_weights/variances: give them when building the {kind}, not with it")
        if dtype is not None and np.dtype(dtype) != data.dtype:
            raise ValueError(f"dtype: the {kind} works in {data.dtype.name}, not {np.dtype(dtype).name}; build "
                             f"the {kind} with the dtype you want")
        if query_float == np.float64 and data.dtype == np.float32:
            raise TypeError(f"{y_name}: float64 queries with a float32 {kind} would lose precision; "
                            f"build the {kind} with dtype=float64")
        return data
    arr = _checks.array2d("data", _device.to_host("data", data, data_on_gpu))
    if dtype is None and query_float == np.float64:
        dtype = np.float64
    return Mixture._of_checked(arr, log_weights, variances, _checks.mixture_dtype(dtype, arr), threads,
                               pack(arr.shape[1]), prune)


def resolve(data, *, y=ABSENT, t=ABSENT, log_weights=None, variances=None, device="auto", threads=None, tile=None,
            kernel=(0.0, True), dtype=None, pack=None, prune=False, cpu_only=False, y_name="y") -> Call:
    """Resolve a call's arguments once (see the module's docstring).

    y : the queries (omitted for calls without any: the sampler). t : the time
    (omitted for calls without one; its checks are then the caller's). kernel : (h,
    gaussian) of kernel draws that take the pass beyond y. dtype : the working dtype
    asked for (the sampler's ``dtype=``). pack : lay out a new Mixture for the built-in
    tile products (default: when the queries are many enough to repay it). prune : give
    a new Mixture the projection of certified pruning (a one-shot call does not repay
    it; the sampler's many passes do).
    cpu_only : for functions that compute on the CPU only (GPU arrays are refused).
    y_name : what the queries are called in error messages.
    """
    has_y = y is not ABSENT
    if isinstance(data, Data):
        data._check_device(device)
    where = _device.placement("cpu" if cpu_only else device, y if has_y else None,
                              None if isinstance(data, Data) else data)
    y_gpu, data_gpu = where.gpu_inputs
    if cpu_only and (y_gpu or data_gpu):
        raise TypeError(f"{y_name if y_gpu else 'data'}: a GPU array was given to a function that computes on the "
                        "CPU only; pass a NumPy array")
    y_on_gpu = y_gpu and where.kind == "cuda"
    query_float = None
    if not has_y:
        y = None
    elif y_on_gpu:
        cp = _device._cupy("y")
        y = _checks.gpu_array2d(y_name, _device.as_cupy(y_name, y), cp)
        if where.index != y.device.id:  # device="auto" already chose y's own device
            raise ValueError(f"{y_name}: lives on cuda:{y.device.id}, but device={device!r} was asked for")
        query_float = _checks.float_of_dtype(y.dtype)
    else:
        y = _checks.array2d(y_name, _device.to_host(y_name, y, y_gpu), allow_empty=True)
        query_float = _checks.natural_float(y)
    q = 0 if y is None else y.shape[0]
    pack_for = (lambda d: q >= _pack_min_queries(d)) if pack is None else (lambda d: bool(pack))
    mix = _mixture(data, data_gpu, log_weights, variances, query_float, dtype, threads, pack_for, prune, y_name)
    if tile is not None:
        _checks.tiles(tile)
    backend = mix._backend(where, tile)
    if y is not None and y.shape[1] != mix.d:
        raise ValueError(f"{y_name}: has dimension {y.shape[1]}, but the data have dimension {mix.d}")
    has_t = t is not ABSENT
    if has_t:
        t = _checks.time_for_dtype("t", _checks.positive_scalar("t", t), mix.dtype)
    if y is not None:
        ext_y, rounding_y = _query_extent(y_name, y, mix, y_on_gpu)
        if y_on_gpu:
            with cp.cuda.Device(where.index):
                y = cp.ascontiguousarray(y, dtype=mix.dtype)  # a copy only to convert; y is never written
        else:
            y = _checks.to_working(y, mix.dtype)
    if has_t:
        h, gaussian = kernel
        check_ranges(mix, t_name="t", t=t, noise=("t", t, "the noise's squared length t d"), h=h,
                     gaussian=gaussian, reach=ext_y if y is not None else 0.0,
                     rounding=rounding_y if y is not None else 0.0)
    return Call(where, mix, t if has_t else None, y, y_on_gpu, threads, tile, backend)


def points(data, name: str = "data") -> Data:
    """The points of ``data`` for the tools that measure the data themselves (their rows,
    their moments), without preparing them for passes: prepared data as they are, an
    array checked once."""
    if isinstance(data, Data):
        return data
    return Points(_checks.array2d(name, _device.to_host(name, data)))
