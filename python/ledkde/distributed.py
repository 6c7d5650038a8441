"""Data sets sharded over a Ray cluster: every shard a Ray actor holding a prepared Mixture.

    pip install "ledkde[ray]"

    import ray, ledkde
    from ledkde.distributed import ShardedMixture
    ray.init()                                   # or ray.init(address="auto") on a cluster
    data = ShardedMixture(x, n_shards=4)          # or ShardedMixture(files=["a.npy", "b.npy"])
    s = ledkde.score(y, data, t=0.1)             # as with a Mixture
    samples = ledkde.sample(data, 64, t_max=100.0, t_min=1e-3, steps=100, seed=0)

A pass over sharded data is the partial-state reduction of a local one (SPEC section 2,
``partial_state`` / ``merge_states`` / ``finalize``): the queries go out once per call
(``ray.put``), every shard returns its states (Q (d + 4) float64 numbers), and the driver
merges them in shard order and finalizes them. The sampler's step loop runs on the driver
with the local sampler's random stream (the same Philox counters): for the same seed, the
same samples as the local run up to floating-point rounding (the states are merged in
another order than one pass sums them). Nearest neighbours merge the shards' k best.

Faults: each actor is created with ``max_restarts`` and its calls with ``max_task_retries``:
an actor that dies is restarted by Ray, reloads its shard from its source (its file, or the
driver's copy in Ray's object store) and the call is retried. A shard that cannot come back
fails the call with an error naming the shard. Connecting to a cluster is Ray's business;
``ShardedMixture`` starts a local Ray instance only when none is running.

Supported on sharded data: ``evaluate``, ``score``, ``denoise``, ``log_density``,
``partial_state``, ``smoothed_score`` and ``led_kde_log_density`` (every estimator; the
draws made on the driver from the stream, every draw's state merged over the shards, the
estimate by the engine's own estimator code), ``nearest_neighbors``, ``memorization`` and
``sample`` (every method, schedule, init and bandwidth form, ``return_error``). A shard
given ``num_gpus`` keeps its Mixture on its GPU (compiled; not yet run on a GPU).
"""

from __future__ import annotations

import os
from typing import Sequence

import numpy as np

from . import _checks
from ._loader import _core

__all__ = ["ShardedMixture"]

# Seconds to wait for the shards' actors to start (placing them, loading their rows).
PLACE_TIMEOUT = 600.0


def _ray():
    try:
        import ray
    except ImportError:
        raise ImportError("ledkde.distributed needs Ray: pip install \"ledkde[ray]\"") from None
    return ray


class _Shard:
    """One shard: a prepared Mixture of its rows, made from its source (an array, or a
    .npy file memory-mapped here so that the driver never holds it)."""

    def __init__(self, source, offset: int, log_weights, variances, dtype, threads, prune, use_gpu,
                 logit_tolerance=None):
        from ._mixture import Mixture

        self.data = np.load(source, mmap_mode="r") if isinstance(source, str) else source
        self.offset = offset
        self.device = "cuda" if use_gpu else "cpu"  # a shard given a GPU keeps its Mixture there
        self.mix = Mixture(self.data, log_weights=log_weights, variances=variances, dtype=dtype, threads=threads,
                           prune=prune, logit_tolerance=logit_tolerance)

    def info(self):
        return self.mix.n, self.mix.d, self.mix.dtype.name, os.getpid(), self.mix.logit_tolerance

    def partial(self, y, t, threads):
        """(m, S, E, A, B, log_mass) of the rows y (already in the working dtype, checked
        by the driver) over this shard: the compiled partial pass (B: the control
        estimator's pilot needs it with per-component variances)."""
        from . import _device

        where = _device.placement(self.device)
        m, S, E, A, B = where.module().partial(self.mix._engine(where), y, t, _checks.pass_options(where.module(),
                                                                                                  threads, None))
        return m, S, E, A, B, float(self.mix._core.log_mass)

    def knn(self, y, k, threads):
        from ._toolkit import nearest_neighbors

        k = min(k, self.mix.n)
        nb = nearest_neighbors(y, self.mix, k, threads=threads)
        return np.asarray(nb.distances, dtype=np.float64), np.asarray(nb.indices) + self.offset

    def rows(self, local_indices):
        return np.asarray(self.data[np.asarray(local_indices)], dtype=np.float64)

    def pid(self):
        return os.getpid()


class ShardedMixture:
    """A data set split over Ray actors, accepted as ``data`` by the compute functions.

    ``ShardedMixture(data=None, *, files=None, log_weights=None, variances=None, n_shards=None,
    num_cpus=1, num_gpus=0, dtype=None, prune=True, logit_tolerance=None, max_restarts=3)``

    data : (N, d) array, split into ``n_shards`` contiguous shards (default: one per CPU
    of the Ray cluster, at most N). files : instead of data, .npy files of (n_i, d) rows,
    one shard each, memory-mapped by the actor that holds it (the driver reads only their
    headers). log_weights, variances : (N,) for the whole set (split with the rows).
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
            if isinstance(files, (str, bytes)) or not len(files):
                raise TypeError("files: expected a list of .npy paths")
            sources, sizes, d = [], [], None
            for i, f in enumerate(files):
                try:
                    arr = np.load(f, mmap_mode="r")
                except (OSError, ValueError) as exc:
                    raise ValueError(f"files[{i}]: cannot read {f!r} as a .npy array ({exc})") from None
                _checks.as_array(f"files[{i}]", arr[:0])
                if arr.ndim != 2 or arr.shape[0] == 0 or (d is not None and arr.shape[1] != d):
                    raise ValueError(f"files[{i}]: expected (n, {d if d is not None else 'd'}) rows, got {arr.shape}")
                d = arr.shape[1]
                sources.append(os.path.abspath(f))
                sizes.append(arr.shape[0])
            if n_shards is not None and n_shards != len(files):
                raise ValueError(f"n_shards: the files make {len(files)} shards, not {n_shards}")
        else:
            arr = _checks.array2d("data", data)
            n = arr.shape[0]
            if n_shards is None:
                if not ray.is_initialized():
                    ray.init()
                n_shards = max(1, min(n, int(ray.cluster_resources().get("CPU", 1)) // num_cpus))
            n_shards = _checks.positive_int("n_shards", n_shards, maximum=n)
            bounds = np.linspace(0, n, n_shards + 1).astype(np.int64)
            sizes = list(np.diff(bounds))
            sources = None
        n_total = int(sum(sizes))
        lw = _checks.log_weights(log_weights, n_total)
        var = _checks.variances(variances, n_total)
        if not ray.is_initialized():
            ray.init()
        # Actors that the cluster can never place would wait for ever: refuse them
        # here. (Ones that wait for resources other work holds fail after
        # PLACE_TIMEOUT with an error naming the shard.)
        total = ray.cluster_resources()
        for res, each in (("CPU", num_cpus), ("GPU", num_gpus)):
            if each > 0 and each * len(sizes) > total.get(res, 0.0) + 1e-9:
                raise ValueError(f"n_shards: {len(sizes)} shards x num_{res.lower()}s={each:g} need "
                                 f"{each * len(sizes):g} {res}s, but the Ray cluster has {total.get(res, 0.0):g}; "
                                 f"use fewer shards or less per shard")
        offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=max_restarts,
                           max_task_retries=max_restarts)(_Shard)
        self._actors = []
        # In-memory shards: the driver keeps its references, so that a restarted
        # actor finds its rows in Ray's object store.
        self._sources = []
        threads = max(1, int(num_cpus))
        for i in range(len(sizes)):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            src = sources[i] if sources is not None else ray.put(np.ascontiguousarray(arr[lo:hi]))
            self._sources.append(src)
            self._actors.append(actor.remote(src, lo, None if lw is None else lw[lo:hi],
                                             None if var is None else var[lo:hi], dtype, threads, prune,
                                             num_gpus > 0, logit_tolerance))
        self._threads = threads
        infos = self._gather([a.info.remote() for a in self._actors], timeout=PLACE_TIMEOUT)
        self.n = n_total
        self.d = int(infos[0][1])
        self.dtype = np.dtype(infos[0][2])
        self.shard_sizes = [int(s) for s in sizes]
        self.has_variances = var is not None
        # What the shards' Mixtures were built with (the same for all).
        self.logit_tolerance = infos[0][4]

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
                raise RuntimeError(f"shard {i} of {len(refs)} failed and could not be restored: "
                                   f"{type(exc).__name__}: {exc}") from None
        return out

    # ----------------------------------------------------------------- passes
    def _states(self, y: np.ndarray, t: float, want_b: bool = False):
        """The merged partial state (m, S, E, A, log_mass) of queries y over all shards,
        in shard order; with want_b (m, S, E, A, B, log_mass)."""
        ray = _ray()
        ref = ray.put(y)
        parts = self._gather([a.partial.remote(ref, t, self._threads) for a in self._actors])
        m, S, E, A, B, log_mass = parts[0]
        for pm, pS, pE, pA, pB, plm in parts[1:]:
            m, S, E, A, B = _core.merge_states(m, S, E, A, pm, pS, pE, pA, B, pB)
            log_mass = float(np.logaddexp(log_mass, plm))
        return (m, S, E, A, B, log_mass) if want_b else (m, S, E, A, log_mass)

    def _queries(self, name: str, y) -> np.ndarray:
        arr = _checks.array2d(name, y, d=self.d, allow_empty=True)
        if _checks.natural_float(arr) == np.float64 and self.dtype == np.float32:
            raise TypeError(f"{name}: float64 queries with float32 shards would lose precision; "
                            "build the ShardedMixture with dtype=float64")
        return np.ascontiguousarray(arr, dtype=self.dtype)

    def evaluate(self, y, t, outputs):
        """The outputs of ledkde.evaluate over all shards (in the shards' working dtype)."""
        yw = self._queries("y", y)
        t = _checks.positive_scalar("t", t)
        m, S, E, A, log_mass = self._states(yw, t)
        ld, sc, ent, mw = _core.finalize_state(m, S, E, A)
        res = {"log_density": ld - log_mass, "score": sc, "denoise": yw.astype(np.float64) + t * sc,
               "entropy": ent, "max_weight": mw}
        return {o: res[o].astype(self.dtype) for o in outputs}

    def partial_state(self, y, t):
        from ._scores import PassState

        yw = self._queries("y", y)
        t = _checks.positive_scalar("t", t)
        m, S, E, A, log_mass = self._states(yw, t)
        return PassState(m, S, E, A, log_mass, np.array(yw, copy=True), t)

    def _smoothed_rows(self, y64, t, sm, want_ld, want_err):
        """The smoothed estimates (smooth_estimator.h) of float64 points y64, their draws
        made here from the stream (rows ``y + u``; the pilot row ``y``), every row's state
        merged over the shards, the estimate by the engine's own code."""
        q, d = y64.shape
        copies = _core.rows_per_point(sm, self.has_variances, want_ld)
        draws = sm.n_kernel if sm.bandwidth > 0 else 1
        rows = np.repeat(y64[:, None, :], copies, axis=1)
        if sm.bandwidth > 0:
            for i in range(q):
                rows[i, :draws] += _core.kernel_draws(sm.seed, i, sm.eval, draws, sm.antithetic, sm.orthogonal,
                                                      sm.kernel, sm.bandwidth, d)
        rows = np.ascontiguousarray(rows.reshape(q * copies, d), dtype=self.dtype)
        m, S, E, A, B, log_mass = self._states(rows, t, want_b=True)
        return _core.smoothed_estimate(m, S, A, B if self.has_variances else None, rows, y64, t, -log_mass, sm,
                                       not want_ld, want_ld, want_err)

    def smoothed(self, y, t, sm, want_score, return_error):
        """smoothed_score (want_score) or led_kde_log_density over all shards: (values, errors)."""
        yw = self._queries("y", y)
        t = _checks.positive_scalar("t", t)
        sc, sse, ld, lse = self._smoothed_rows(yw.astype(np.float64), t, sm, not want_score, return_error)
        out, err = (sc, sse) if want_score else (ld, lse)
        return out.astype(self.dtype), (err.astype(self.dtype) if err is not None else None)

    def nearest_neighbors(self, y, k):
        from ._toolkit import Neighbors

        yw = self._queries("y", y)
        k = _checks.positive_int("k", k)
        if k > self.n:
            raise ValueError(f"k: asks for {k} neighbours but the data have only {self.n} points")
        ray = _ray()
        ref = ray.put(yw)
        parts = self._gather([a.knn.remote(ref, k, self._threads) for a in self._actors])
        dist = np.concatenate([p[0] for p in parts], axis=1)
        idx = np.concatenate([p[1] for p in parts], axis=1)
        # The k best of all shards: nearest first, ties to the lower index (as one machine).
        order = np.lexsort((idx, dist), axis=1)[:, :k]
        return Neighbors(np.take_along_axis(dist, order, 1).astype(self.dtype), np.take_along_axis(idx, order, 1))

    def _rows_at(self, indices):
        """Rows of the data set by global index, fetched from the shards that hold them."""
        indices = np.asarray(indices, dtype=np.int64)
        bounds = np.concatenate([[0], np.cumsum(self.shard_sizes)])
        shard = np.searchsorted(bounds, indices, side="right") - 1
        out = np.empty((len(indices), self.d))
        wanted = [np.flatnonzero(shard == s) for s in range(self.n_shards)]
        parts = self._gather([a.rows.remote(indices[w] - bounds[s]) for s, (a, w) in enumerate(zip(self._actors, wanted))])
        for w, rows in zip(wanted, parts):
            out[w] = rows
        return out

    def sample(self, n_samples, times, bandwidths, method, init, denoise_last, keep, progress, smooth, want_error):
        """The sampler's step loop on the driver, the local sampler's stream and
        evaluation numbers (sampler_cpu.cpp): the plain or the smoothed score."""
        d = self.d
        K = len(times) - 1
        seed = smooth.seed
        y = np.sqrt(times[0]) * _core.stream_normal_rows(seed, 0, n_samples, 0, _core.PURPOSE_INIT_NOISE, d)
        if init == "empirical":  # an exact draw of p_{t_max}: a training point plus the noise
            y += self._rows_at([_core.stream_index(seed, i, self.n) for i in range(n_samples)])
        kept = {0: y.copy()} if 0 in keep else {}
        slots = K + (1 if denoise_last else 0)
        err = np.zeros(slots)

        def score(at, grid, evaln, slot):
            h = float(bandwidths[grid])
            if h == 0.0:
                m, S, E, A, _ = self._states(np.ascontiguousarray(at, dtype=self.dtype), times[grid])
                return A / S[:, None]
            sm = _core.SmoothOptions(bandwidth=h, n_kernel=smooth.n_kernel, kernel=smooth.kernel,
                                     estimator=smooth.estimator, antithetic=smooth.antithetic,
                                     orthogonal=smooth.orthogonal, seed=seed, eval=evaln)
            sc, se, _, _ = self._smoothed_rows(at, times[grid], sm, False, want_error)
            if want_error:
                norm = np.sqrt((sc * sc).sum(1))
                rel = np.where(se == 0, 0.0, se / np.where(norm > 0, norm, np.nan))
                err[slot] += np.nan_to_num(rel, nan=np.inf).sum()
            return sc

        evals = K * (2 if method == "ode_heun" else 1) + (1 if denoise_last else 0)
        done = 0
        for k in range(K):
            D = times[k] - times[k + 1]
            s = score(y, k, 2 * k, k)
            done += 1
            if method == "euler_maruyama":
                z = _core.stream_normal_rows(seed, 0, n_samples, k, _core.PURPOSE_NOISE, d)
                y = y + (D * s + np.sqrt(D) * z)  # as sampler_cpu.cpp associates it
            elif method == "ode_euler":
                y = y + 0.5 * D * s
            else:
                y2 = y + 0.5 * D * s
                s2 = score(y2, k + 1, 2 * k + 1, k)
                done += 1
                y = y + 0.25 * D * (s + s2)
            if k + 1 in keep:
                kept[k + 1] = y.copy()
            if progress is not None:
                progress(done, evals)
        if denoise_last:
            y = y + times[K] * score(y, K, 2 * K, K)
            if progress is not None:
                progress(evals, evals)
        per_slot = np.array([2.0 if method == "ode_heun" and s < K else 1.0 for s in range(slots)])
        traj = np.stack([kept[k] for k in keep]).astype(self.dtype) if keep else None
        return y.astype(self.dtype), traj, (err / (n_samples * per_slot) if want_error else None)

    def actor_pids(self) -> list[int]:
        """The process id of each shard's actor (tests kill one to check recovery)."""
        return self._gather([a.pid.remote() for a in self._actors])

    def actors(self):
        return list(self._actors)


def is_sharded(data) -> bool:
    return isinstance(data, ShardedMixture)


def refuse(what: str, **given) -> None:
    """Arguments that a call over a ShardedMixture cannot take (they belong to its
    construction), refused by name when given (not None)."""
    for name, value in given.items():
        if value is not None:
            raise ValueError(f"{name}: {what}")
