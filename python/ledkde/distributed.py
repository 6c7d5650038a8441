"""Data sets sharded over a Ray cluster: every shard a Ray actor holding a prepared Mixture.

    pip install "ledkde[ray]"

    import ray, ledkde
    from ledkde.distributed import ShardedMixture
    ray.init()                                   # or ray.init(address="auto") on a cluster
    data = ShardedMixture(x, n_shards=4)          # or ShardedMixture(files=["a.npy", "b.npy"])
    s = ledkde.score(y, data, t=0.1)             # as with a Mixture
    samples = ledkde.sample(data, 64, t_max=100.0, t_min=1e-3, steps=100, seed=0)

A ShardedMixture is one more kind of prepared data behind the same call layer as a
Mixture (``ledkde._backend``): every compute function takes it, checks its arguments the
same way, and hands the call to :class:`ShardedBackend`. A pass over sharded data is the
partial-state reduction of a local one (SPEC section 2, ``partial_state`` /
``merge_states`` / ``finalize``): the queries go out once per call (``ray.put``), every
shard returns its states (Q (d + 4) float64 numbers), and the driver merges them in
shard order. The smoothed estimators and the sampler's steps are the engine's own
(compiled), run on the driver over those merged states (a remote row source): for the
same seed, the same samples as the local run up to floating-point rounding (the states
are merged in another order than one pass sums them). Nearest neighbours merge the
shards' k best.

Faults: each actor is created with ``max_restarts`` and its calls with ``max_task_retries``:
an actor that dies is restarted by Ray, reloads its shard from its source (its file, or the
driver's copy in Ray's object store) and the call is retried. A file is reloaded only if it
is the file the shard first loaded (same shape, dtype, size and modification time);
otherwise the shard refuses it, naming the file, and the call fails. A shard that cannot
come back fails the call with an error naming the shard. Bad values in a file are found
once, when the shard first loads it, and reported naming the file and the shard.
Connecting to a cluster is Ray's business; ``ShardedMixture`` starts a local Ray instance
only when none is running.

A shard given ``num_gpus`` keeps its Mixture on its GPU (compiled; not yet run on a GPU).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from . import _checks
from ._loader import _core
from ._mixture import Data, Moments, merge_moments

__all__ = ["ShardedMixture", "ShardedBackend"]

# Seconds to wait for the shards' actors to start (placing them, loading their rows).
PLACE_TIMEOUT = 600.0
# Query rows sent to the shards in one call of a plain pass (bounds the driver's
# memory for the states: (rows, d + 4) float64 numbers).
PASS_ROWS = 8192


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError("ledkde.distributed needs Ray: pip install \"ledkde[ray]\"") from None
    return ray


def _start_ray(ray) -> None:
    """A local Ray instance, started when none is (a cluster: call ray.init(address=...)
    first). Ray's informational lines and warnings are left out; its errors show."""
    import logging

    ray.init(logging_level=logging.ERROR)


def _fingerprint(path: str, arr) -> tuple:
    """What identifies the contents of a .npy file a shard loaded: shape, dtype, size, mtime."""
    st = os.stat(path)
    return (tuple(arr.shape), arr.dtype.str, st.st_size, st.st_mtime_ns)


class _Shard:
    """One shard: a prepared Mixture of its rows, made from its source (an array, or a
    .npy file memory-mapped here so that the driver never holds it). A file is checked
    against the fingerprint the driver took of it; a shard whose log-weights are all
    -inf holds its points (nearest neighbours count them) and contributes the empty
    state to every pass. An error in the rows is kept and reported by info(), so that
    the driver fails once, naming the file, instead of Ray restarting the actor."""

    def __init__(self, path, fingerprint, offset: int, dtype, threads, prune, use_gpu, logit_tolerance=None):
        # The arrays (in-memory rows, log-weights, variances) arrive with every call as
        # references in a list, and the first call loads them: a constructor of plain
        # values is one Ray can rerun on a restart without holding arguments in its
        # object store for the actor, and a call retried after a restart brings them.
        self.path, self.fingerprint, self.offset = path, fingerprint, offset
        self.options = dict(dtype=dtype, threads=threads, prune=prune, logit_tolerance=logit_tolerance)
        self.device = "cuda" if use_gpu else "cpu"  # a shard given a GPU keeps its Mixture there
        self.error = None
        self.mix = None

    def _load(self, held) -> None:
        """Prepares the rows on the first call (and the first after a restart)."""
        from ._mixture import Mixture

        if self.mix is not None or self.error is not None:
            return
        source, log_weights, variances = (None if ref is None else _ray().get(ref) for ref in held)
        self.empty = log_weights is not None and bool(np.isneginf(log_weights).all())
        try:
            if self.path is not None:
                self.data = np.load(self.path, mmap_mode="r")
                if _fingerprint(self.path, self.data) != self.fingerprint:
                    raise ValueError(f"{self.path!r} changed since the ShardedMixture was built (shape, dtype, size "
                                     "or modification time differ); a shard reloads only the file it first loaded")
            else:
                self.data = source
            self.mix = Mixture(self.data, log_weights=None if self.empty else log_weights, variances=variances,
                               **self.options)
        except (ValueError, TypeError, OSError) as exc:
            self.error = f"{type(exc).__name__}: {exc}"

    def _ready(self, held):
        """Every call but info() on a shard whose rows could not be prepared raises why."""
        self._load(held)
        if self.error is not None:
            raise ValueError(self.error.split(": ", 1)[1] if ": " in self.error else self.error)

    def info(self, held):
        self._load(held)
        if self.error is not None:
            return {"error": self.error}
        m = self.mix
        return {"n": m.n, "d": m.d, "dtype": m.dtype.name, "pid": os.getpid(), "logit_tolerance": m.logit_tolerance,
                "centre": m._centre, "extent": m._extent, "resolution": m._resolution,
                "log_mass": -np.inf if self.empty else float(m._core.log_mass)}

    def partial(self, held, y, t, threads):
        """(m, S, E, A, B, log_mass) of the rows y (already in the working dtype, checked
        by the driver) over this shard: the compiled partial pass (B: the control
        estimator's pilot needs it with per-component variances)."""
        from . import _device

        self._ready(held)
        if self.empty:
            q = y.shape[0]
            return (np.full(q, -np.inf), np.zeros(q), np.zeros(q), np.zeros(y.shape), np.zeros(q), -np.inf)
        where = _device.placement(self.device)
        m, S, E, A, B = where.module().partial(self.mix._engine(where), y, t,
                                               _checks.pass_options(where.module(), threads, None))
        return m, S, E, A, B, float(self.mix._core.log_mass)

    def knn(self, held, y, k, threads):
        self._ready(held)
        k = min(k, self.mix.n)
        dist, idx = _core.knn(self.mix._core, y, k, _checks.pass_options(_core, threads, None))
        return np.asarray(dist, dtype=np.float64), np.asarray(idx) + self.offset

    def rows(self, held, local_indices):
        self._ready(held)
        return np.asarray(self.data[np.asarray(local_indices, dtype=np.int64)], dtype=np.float64)

    def moments(self, held):
        self._ready(held)
        return self.mix._moments()

    def pid(self):
        return os.getpid()


def _file_sources(files, n_shards):
    """The files' paths, sizes, dimension, natural float type and fingerprints, read from
    their headers on the driver."""
    if isinstance(files, (str, bytes)) or not len(files):
        raise TypeError("files: expected a list of .npy paths")
    sources, sizes, prints, d, floats = [], [], [], None, set()
    for i, f in enumerate(files):
        try:
            arr = np.load(f, mmap_mode="r")
        except (OSError, ValueError) as exc:
            raise ValueError(f"files[{i}]: cannot read {f!r} as a .npy array ({exc})") from None
        _checks.as_array(f"files[{i}]", arr[:0])
        if arr.ndim != 2 or arr.shape[0] == 0 or (d is not None and arr.shape[1] != d):
            raise ValueError(f"files[{i}]: expected (n, {d if d is not None else 'd'}) rows, got {arr.shape}")
        d = arr.shape[1]
        floats.add(np.dtype(_checks.natural_float(arr)))
        path = os.path.abspath(f)
        sources.append(path)
        sizes.append(arr.shape[0])
        prints.append(_fingerprint(path, arr))
    if n_shards is not None and n_shards != len(files):
        raise ValueError(f"n_shards: the files make {len(files)} shards, not {n_shards}")
    natural = np.dtype(np.float64) if np.dtype(np.float64) in floats else np.dtype(np.float32)
    return sources, sizes, prints, natural


class ShardedMixture(Data):
    """A data set split over Ray actors, accepted as ``data`` by every compute function.

    ``ShardedMixture(data=None, *, files=None, log_weights=None, variances=None, n_shards=None,
    num_cpus=1, num_gpus=0, dtype=None, prune=True, logit_tolerance=None, max_restarts=3)``

    data : (N, d) array, split into ``n_shards`` contiguous shards (default: one per CPU
    of the Ray cluster, at most N). files : instead of data, .npy files of (n_i, d) rows,
    one shard each, memory-mapped by the actor that holds it (the driver reads only their
    headers); files of float32 and float64 rows together work in float64.
    log_weights, variances : (N,) for the whole set (split with the rows; a shard
    whose slice of log-weights is all -inf carries no weight).
    num_cpus, num_gpus : Ray resources per shard actor (numbers > 0, fractions allowed; its
    Mixture uses max(1, int(num_cpus)) threads); shards that the cluster could not place all at
    once are refused.
    dtype, prune, logit_tolerance : as for :class:`ledkde.Mixture`. max_restarts : how often Ray may restart
    a shard's actor after a failure.
    """

    def __init__(self, data=None, *, files: Sequence[str] | None = None, log_weights=None, variances=None,
                 n_shards: int | None = None, num_cpus: int = 1, num_gpus: int = 0, dtype=None, prune: bool = True,
                 logit_tolerance=None, max_restarts: int = 3):
        ray = _ray()
        if (data is None) == (files is None):
            raise ValueError("data/files: give exactly one of them")
        num_cpus = _checks.positive_scalar("num_cpus", num_cpus)
        num_gpus = _checks.positive_scalar("num_gpus", num_gpus, allow_zero=True)
        max_restarts = _checks.positive_int("max_restarts", max_restarts, minimum=0, maximum=1000)
        prune = _checks.boolean("prune", prune)
        logit_tolerance = _checks.logit_tolerance(logit_tolerance)
        if files is not None:
            sources, sizes, prints, natural = _file_sources(files, n_shards)
            dtype = _checks.mixture_dtype(dtype, np.zeros(0, natural))
        else:
            arr = _checks.array2d("data", data)
            dtype = _checks.mixture_dtype(dtype, arr)
            n = arr.shape[0]
            if n_shards is None:
                if not ray.is_initialized():
                    _start_ray(ray)
                n_shards = max(1, min(n, int(ray.cluster_resources().get("CPU", 1) // num_cpus)))
            n_shards = _checks.positive_int("n_shards", n_shards, maximum=n)
            bounds = np.linspace(0, n, n_shards + 1).astype(np.int64)
            sizes = [int(s) for s in np.diff(bounds)]
            sources = prints = None
        n_total = int(sum(sizes))
        lw = _checks.log_weights(log_weights, n_total)
        var = _checks.variances(variances, n_total)
        if not ray.is_initialized():
            _start_ray(ray)
        self._refuse_unplaceable(ray, len(sizes), num_cpus, num_gpus)
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts,
                           max_task_retries=max_restarts)(_Shard)
        self._actors = []
        # In-memory shards: the driver keeps its references, so that a restarted
        # actor finds its rows in Ray's object store.
        self._sources = []
        self._threads = max(1, int(num_cpus))
        for i in range(len(sizes)):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            # The driver holds each shard's arrays in the object store for the shard's
            # lifetime (a restarted actor finds them) and passes the references with
            # every call (_Shard._load).
            held = [ray.put(np.ascontiguousarray(a)) if a is not None else None
                    for a in ((arr[lo:hi] if sources is None else None), None if lw is None else lw[lo:hi],
                              None if var is None else var[lo:hi])]
            self._sources.append(held)
            self._actors.append(actor.remote(sources[i] if sources is not None else None, prints[i] if prints else None,
                                             lo, dtype, self._threads, prune, num_gpus > 0, logit_tolerance))
        infos = self._gather([a.info.remote(h) for a, h in zip(self._actors, self._sources)], timeout=PLACE_TIMEOUT)
        self._check_infos(infos, files)
        self._describe(infos, sizes, lw, var)

    def _refuse_unplaceable(self, ray, n_shards, num_cpus, num_gpus) -> None:
        """Actors that the cluster can never place would wait for ever: refuse them here.
        (Ones that wait for resources other work holds fail after PLACE_TIMEOUT with an
        error naming the shard.)"""
        total = ray.cluster_resources()
        for res, each in (("CPU", num_cpus), ("GPU", num_gpus)):
            if each > 0 and each * n_shards > total.get(res, 0.0) + 1e-9:
                raise ValueError(f"n_shards: {n_shards} shards x num_{res.lower()}s={each:g} need "
                                 f"{each * n_shards:g} {res}s, but the Ray cluster has {total.get(res, 0.0):g}; "
                                 f"use fewer shards or less per shard")

    def _check_infos(self, infos, files) -> None:
        for i, info in enumerate(infos):
            if "error" in info:
                self.close()
                what = f"files[{i}] ({files[i]!r})" if files is not None else "data"
                raise ValueError(f"{what}: shard {i} could not prepare its rows: {info['error']}")

    def _describe(self, infos, sizes, lw, var) -> None:
        """The facts the call layer reads (Data), from the shards' reports."""
        self.n = int(sum(sizes))
        self.d = int(infos[0]["d"])
        self.dtype = np.dtype(infos[0]["dtype"])
        self.shard_sizes = [int(s) for s in sizes]
        self.has_weights = lw is not None
        self.has_variances = var is not None
        self.logit_tolerance = infos[0]["logit_tolerance"]  # the same for all shards
        w = np.array(sizes, dtype=np.float64)
        self._centre = (w[:, None] * np.stack([i["centre"] for i in infos])).sum(0) / w.sum()
        self._extent = max(_checks.norm(i["centre"] - self._centre) + i["extent"] for i in infos)
        self._resolution = max(i["resolution"] for i in infos)  # each shard centres on its own centre
        self._log_mass = float(np.logaddexp.reduce([i["log_mass"] for i in infos]))
        logw = None if lw is None else lw - self._log_mass  # normalized, as a Mixture keeps them
        remote = _core.RemoteSource32 if self.dtype == np.float32 else _core.RemoteSource64
        self._remote = remote(n=self.n, d=self.d, log_mass=self._log_mass, log_weights=logw, variances=var,
                              pass_=self._remote_pass, points=self._rows)

    def __repr__(self) -> str:
        return f"ShardedMixture(n={self.n}, d={self.d}, shards={len(self._actors)}, dtype={self.dtype.name})"

    @property
    def n_shards(self) -> int:
        return len(self._actors)

    def close(self) -> None:
        """Ends the shards' actors now (else Ray ends them when this object is gone)."""
        ray = _ray()
        for a in self._actors:
            ray.kill(a, no_restart=True)
        self._actors = []
        self._sources = []

    def __enter__(self) -> "ShardedMixture":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __reduce__(self):
        raise TypeError("a ShardedMixture holds Ray actors and cannot be pickled; pass its files or data instead")

    def _gather(self, refs, timeout=None):
        """ray.get of one call per shard, in shard order; a failure names its shard."""
        ray = _ray()
        if not refs:
            raise RuntimeError("this ShardedMixture was closed")
        out = []
        for i, ref in enumerate(refs):
            try:
                out.append(ray.get(ref, timeout=timeout))
            except ray.exceptions.GetTimeoutError:
                raise RuntimeError(f"shard {i} of {len(refs)}: its actor was not placed within {timeout:g} s "
                                   "(no free resources on the Ray cluster?)") from None
            except ray.exceptions.RayError as exc:
                # An error the shard raised itself: its own words, not Ray's traceback.
                cause = getattr(exc, "cause", None) if isinstance(exc, ray.exceptions.RayTaskError) else None
                what = f"{type(cause).__name__}: {cause}" if cause is not None else f"{type(exc).__name__}: {exc}"
                raise RuntimeError(f"shard {i} of {len(refs)} failed and could not be restored: {what}") from None
        return out

    # ----------------------------------------------------------------- Data
    def _check_device(self, device) -> None:
        if device not in ("auto", "cpu"):
            raise ValueError(f"device: a ShardedMixture's shards run where Ray placed them, not on {device!r}; "
                             "give device='auto' or 'cpu'")

    def _backend(self, where, tile):
        if tile is not None:
            raise ValueError("tile: a ShardedMixture's shards choose their own tiles")
        if where.kind != "cpu":
            raise TypeError("y: a ShardedMixture takes NumPy queries (its shards run where Ray placed them)")
        return ShardedBackend(self)

    def _rows(self, indices) -> np.ndarray:
        """Rows of the data set by global index (float64), fetched from the shards that hold them."""
        indices = np.asarray(indices, dtype=np.int64).ravel()
        bounds = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        shard = np.searchsorted(bounds, indices, side="right") - 1
        out = np.empty((len(indices), self.d))
        wanted = [(s, np.flatnonzero(shard == s)) for s in range(self.n_shards)]
        wanted = [(s, w) for s, w in wanted if w.size]
        parts = self._gather([self._actors[s].rows.remote(self._sources[s], indices[w] - bounds[s]) for s, w in wanted])
        for (_, w), rows in zip(wanted, parts):
            out[w] = rows
        return out

    def _moments(self) -> Moments:
        return merge_moments(self._gather([a.moments.remote(h) for a, h in zip(self._actors, self._sources)]))

    # ----------------------------------------------------------------- passes
    def _states(self, y: np.ndarray, t: float):
        """The merged partial state (m, S, E, A, B, log_mass) of the rows y (working
        dtype) over all shards, in shard order."""
        ray = _ray()
        ref = ray.put(y)
        parts = self._gather([a.partial.remote(h, ref, t, self._threads) for a, h in zip(self._actors, self._sources)])
        m, S, E, A, B, log_mass = parts[0]
        for pm, pS, pE, pA, pB, plm in parts[1:]:
            m, S, E, A, B = _core.merge_states(m, S, E, A, pm, pS, pE, pA, B, pB)
            log_mass = float(np.logaddexp(log_mass, plm))
        return m, S, E, A, B, log_mass

    def _remote_pass(self, rows: np.ndarray, t: float):
        """The remote row source's pass (bindings/bind_remote.h): merged states of rows."""
        return self._states(rows, t)[:5]

    def actor_pids(self) -> list[int]:
        """The process id of each shard's actor (tests kill one to check recovery)."""
        return self._gather([a.pid.remote() for a in self._actors])

    def actors(self):
        return list(self._actors)


class ShardedBackend:
    """The engine protocol (``ledkde._backend``) over a ShardedMixture."""

    def __init__(self, data: ShardedMixture):
        self.data = data

    def _states(self, call):
        """The merged states of the call's queries, PASS_ROWS rows at a time."""
        y, q = call.y, call.y.shape[0]
        if q <= PASS_ROWS:
            return self.data._states(y, call.t)
        parts = [self.data._states(y[i:i + PASS_ROWS], call.t) for i in range(0, q, PASS_ROWS)]
        return tuple(np.concatenate([p[k] for p in parts]) for k in range(5)) + (parts[0][5],)

    def evaluate(self, call, outs):
        m, S, E, A, _, log_mass = self._states(call)
        ld, sc, ent, mw = _core.finalize_state(m, S, E, A)
        res = {"log_density": ld - log_mass, "score": sc, "denoise": call.y.astype(np.float64) + call.t * sc,
               "entropy": ent, "max_weight": mw}
        return {o: res[o].astype(self.data.dtype) for o in outs}

    def partial(self, call):
        m, S, E, A, _, log_mass = self._states(call)
        return m, S, E, A, log_mass

    def smoothed(self, call, smooth, want_score: bool, return_error: bool):
        opt = _checks.pass_options(_core, 1, None)
        sc, ld, sse, lse = self.data._remote.smoothed(call.y, call.t, smooth.options(_core), want_score,
                                                      not want_score, return_error, opt)
        return (sc, sse) if want_score else (ld, lse)

    def knn(self, call, k: int):
        ray = _ray()
        ref = ray.put(call.y)
        parts = self.data._gather([a.knn.remote(h, ref, k, self.data._threads)
                                   for a, h in zip(self.data._actors, self.data._sources)])
        dist = np.concatenate([p[0] for p in parts], axis=1)
        idx = np.concatenate([p[1] for p in parts], axis=1)
        # The k best of all shards: nearest first, ties to the lower index (as one machine).
        order = np.lexsort((idx, dist), axis=1)[:, :k]
        return np.take_along_axis(dist, order, 1).astype(self.data.dtype), np.take_along_axis(idx, order, 1)

    def sample(self, call, n_samples: int, plan, want_error: bool, progress):
        from ._backend import refuse_patch

        refuse_patch(plan)
        # One worker on the driver (the shards do the parallel work; the compiled
        # sampler takes all samples in one tile for a remote source).
        opt = _checks.pass_options(_core, 1, None, _checks.TILE_SAMPLER)
        return self.data._remote.sample(n_samples, plan.config(_core), want_error, progress, opt)
