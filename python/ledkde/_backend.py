"""The engine behind a call: one protocol, implemented by every kind of prepared data.

A compute function resolves its arguments once (``_call.resolve``) and hands the
resolved :class:`~ledkde._call.Call` to ``call.backend``, which runs it. Two
backends exist, with the same five operations:

- :class:`MixtureBackend`: a :class:`~ledkde.Mixture` in this process, on the CPU or on
  one GPU (the compiled modules ``_core`` and ``_cuda``);
- ``ledkde.distributed.ShardedBackend``: a data set sharded over a Ray cluster, whose
  passes are partial states merged over the shards and whose smoothed estimators and
  sampler are the compiled ones, run over those merged states (a remote row source);
- ``ledkde._local.LocalBackend``: the local denoisers (LS, ELS) of a set of images,
  whose sampler is the compiled one over their denoiser (a local row source).

Operations (arguments checked by the call layer; arrays in the working dtype):

``evaluate(call, outputs)`` -> dict name -> array; ``partial(call)`` -> (m, S, E, A,
log_mass), float64 NumPy arrays; ``smoothed(call, smooth, want_score, return_error)``
-> (values, errors or None); ``knn(call, k)`` -> (distances, indices);
``sample(call, n_samples, config, want_error, progress, tile_q)`` -> (samples,
trajectory or None, errors or None), ``config`` a :class:`SamplerPlan`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import _checks, _device
from ._loader import _core

OUTPUTS = ("log_density", "score", "denoise", "entropy", "max_weight")
_OUT_BITS = {o: getattr(_core, "OUT_" + o.upper()) for o in OUTPUTS}


@dataclass(frozen=True)
class SmoothPlan:
    """The checked kernel-smoothing settings of a call (codes of the compiled enums)."""

    bandwidth: float
    n_kernel: int
    kernel: int
    estimator: int
    antithetic: bool
    orthogonal: bool
    seed: int

    def options(self, module, bandwidth=None):
        """The compiled SmoothOptions of ``module`` (bandwidth overridden when given)."""
        return module.SmoothOptions(bandwidth=self.bandwidth if bandwidth is None else bandwidth,
                                    n_kernel=self.n_kernel, kernel=self.kernel, estimator=self.estimator,
                                    antithetic=self.antithetic, orthogonal=self.orthogonal, seed=self.seed)


@dataclass(frozen=True)
class SamplerPlan:
    """A checked sampler run: grid, bandwidth per grid time, method and init codes."""

    times: np.ndarray
    bandwidths: np.ndarray
    method: int
    smooth: SmoothPlan
    init: int
    denoise_last: bool
    keep: list
    patch: object = None  # the local denoisers' patch per step (None: the data's own rule)

    def config(self, module):
        """The compiled SamplerConfig of ``module``."""
        return module.SamplerConfig(times=self.times, bandwidth=self.bandwidths, method=self.method,
                                    smooth=self.smooth.options(module, 0.0), init=self.init,
                                    denoise_last=self.denoise_last, keep=self.keep)


def refuse_patch(plan: SamplerPlan) -> None:
    """patch= belongs to the local denoisers' runs."""
    if plan.patch is not None:
        raise ValueError("patch: a patch size applies to local denoisers (ledkde.Local data) only")


def _ptr(a) -> int:
    return 0 if a is None else a.data.ptr


class MixtureBackend:
    """A Mixture in this process, run by the compiled module of its placement."""

    def __init__(self, mix, where: _device.Placement):
        self.mix, self.where = mix, where
        self.module = where.module()
        self.engine = mix._engine(where)

    def _gpu(self, call):
        """(CuPy, the queries' shape) for a call whose queries live on the GPU."""
        return call.cupy(), call.y.shape

    def evaluate(self, call, outs):
        if call.y_on_gpu:
            cp, (q, d) = self._gpu(call)
            with cp.cuda.Device(self.where.index):
                res = {o: cp.empty((q, d) if o in ("score", "denoise") else (q,), dtype=self.mix.dtype) for o in outs}
                self.module.evaluate_ptr(self.engine, call.y.data.ptr, q, call.t,
                                         *(_ptr(res.get(o)) for o in OUTPUTS))
            return res
        bits = 0
        for o in outs:
            bits |= _OUT_BITS[o]
        res = self.module.evaluate(self.engine, call.y, call.t, bits, call.options())
        return call.output({name: arr for name, arr in zip(OUTPUTS, res) if name in outs})

    def partial(self, call):
        y = call.y.get() if call.y_on_gpu else call.y  # the states are NumPy arrays whatever the device
        m, S, E, A, _ = self.module.partial(self.engine, y, call.t, call.options())
        return m, S, E, A, float(self.mix._core.log_mass)

    def smoothed(self, call, smooth: SmoothPlan, want_score: bool, return_error: bool):
        s = smooth
        if call.y_on_gpu:
            cp, (q, d) = self._gpu(call)
            with cp.cuda.Device(self.where.index):
                out = cp.empty((q, d) if want_score else (q,), dtype=self.mix.dtype)
                err = cp.empty((q,), dtype=self.mix.dtype) if return_error else None
                ptr, eptr = out.data.ptr, _ptr(err)
                self.module.smoothed_ptr(self.engine, call.y.data.ptr, q, call.t, s.bandwidth, s.n_kernel, s.kernel,
                                         s.estimator, s.antithetic, s.orthogonal, s.seed,
                                         ptr if want_score else 0, 0 if want_score else ptr,
                                         eptr if want_score else 0, 0 if want_score else eptr)
            return out, err
        sc, ld, sse, lse = self.module.smoothed(self.engine, call.y, call.t, s.options(self.module), want_score,
                                                not want_score, return_error, call.options())
        out, err = (sc, sse) if want_score else (ld, lse)
        return call.output(out), call.output(err)

    def knn(self, call, k: int):
        if self.where.kind != "cpu":
            raise TypeError("y: nearest neighbours are computed on the CPU only; pass NumPy arrays")
        return self.module.knn(self.engine, call.y, k, call.options())

    def sample(self, call, n_samples: int, plan: SamplerPlan, want_error: bool, progress):
        refuse_patch(plan)
        module, mix, where = self.module, self.mix, self.where
        args = (self.engine, n_samples, plan.config(module), want_error, progress,
                call.options(_checks.TILE_SAMPLER))
        if where.kind == "cuda" and where.gpu_output:
            # GPU data in, GPU samples out: the run writes straight into CuPy arrays.
            cp = _device._cupy("data")
            with cp.cuda.Device(where.index):
                samples = cp.empty((n_samples, mix.d), dtype=mix.dtype)
                traj = cp.empty((len(plan.keep), n_samples, mix.d), dtype=mix.dtype) if plan.keep else None
                _, _, err = module.sample(*args, samples.data.ptr, _ptr(traj))
            return samples, traj, err
        samples, traj, err = module.sample(*args)
        return where.output(samples), where.output(traj), err
