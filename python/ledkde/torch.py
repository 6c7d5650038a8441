"""ledkde's closed-form denoisers as PyTorch modules, for the samplers of k-diffusion, EDM,
diffusers and torchdiffeq (the ``torch`` extra).

``Denoiser(data, ...)`` is a ``torch.nn.Module`` whose ``forward(x, sigma)`` returns the
ideal denoiser ``D(x; sigma) = x + sigma^2 s_{sigma^2}(x)`` (variance-exploding
convention, ``x = x0 + sigma z``), the interface k-diffusion's samplers and EDM's
``edm_sampler`` call. The engine call is a ``torch.library`` custom operator
(``torch.ops.ledkde.denoise``, with a fake implementation), so ``torch.compile`` captures it
without a graph break; its backward is the exact vector-Jacobian product of the empirical
denoiser, ``J v = Cov_w(x_n) v / sigma^2`` (J is symmetric), and the exact derivative in
sigma, both from one more pass over the data (:func:`ledkde.torch.vjp`).
:func:`vp_prediction` gives the x0 / epsilon / v predictions of the variance-preserving
parametrization (diffusers' schedulers).
"""

from __future__ import annotations

import itertools
import math
import weakref

import numpy as np
import torch

from . import _checks, _scores
from ._device import cuda_available
from ._loader import _core
from ._local import Local
from ._mixture import Mixture

__all__ = ["Denoiser", "vjp", "vp_prediction"]

# The engine objects behind the operator: a custom operator takes tensors and numbers,
# so a Denoiser passes the number of its entry here.
_ENGINES: dict = {}
_HANDLES = itertools.count(1)
# Entries (queries x data rows) of one block of the backward pass's logits.
_BLOCK = 1 << 22


class _Engine:
    """What one Denoiser computes with: the prepared data, the layout of a sample, the
    smoothing options (or None)."""

    def __init__(self, data, channels_last: bool, smoothing):
        self.data, self.channels_last, self.smoothing = data, channels_last, smoothing

    def rows(self, x: torch.Tensor) -> torch.Tensor:
        """(B, ...) samples as (B, d) rows in the data's order (channels last for Local)."""
        if self.channels_last and x.dim() == 4:
            x = x.permute(0, 2, 3, 1)
        return x.reshape(x.shape[0], -1)

    def unrows(self, r: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        if self.channels_last and like.dim() == 4:
            b, c, h, w = like.shape
            return r.reshape(b, h, w, c).permute(0, 3, 1, 2).contiguous()
        return r.reshape(like.shape)

    def denoise(self, y: torch.Tensor, t: float) -> torch.Tensor:
        if self.smoothing is None:
            return _scores.denoise(y, self.data, t)
        return y + t * _scores.smoothed_score(y, self.data, t, **self.smoothing)


def _groups(sigma: torch.Tensor):
    """(sigma value, row indices) per distinct sigma: one engine pass each."""
    values, inverse = torch.unique(sigma.detach().cpu(), return_inverse=True)
    return [(float(v), torch.nonzero(inverse == i).flatten()) for i, v in enumerate(values)]


def _denoise_rows(engine: _Engine, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """The engine's denoiser of the samples x, one pass per distinct sigma (CPU tensors as
    NumPy views, so that each pass is one plain engine call)."""
    rows = engine.rows(x).contiguous()
    cpu = rows.device.type == "cpu"
    y = rows.numpy() if cpu else rows
    if bool((sigma == sigma[0]).all()):
        s = float(sigma[0])
        out = engine.denoise(y, s * s)
    else:
        out = np.empty(y.shape, y.dtype) if cpu else torch.empty_like(rows)
        for s, idx in _groups(sigma):
            i = idx.numpy() if cpu else idx.to(rows.device)
            out[i] = engine.denoise(y[i], s * s)
    out = torch.from_numpy(np.asarray(out, dtype=y.dtype)) if cpu else out.to(x.dtype)
    return engine.unrows(out, x)


@torch.library.custom_op("ledkde::denoise", mutates_args=())
def _denoise(x: torch.Tensor, sigma: torch.Tensor, handle: int) -> torch.Tensor:
    return _denoise_rows(_ENGINES[handle], x, sigma)


@_denoise.register_fake
def _(x, sigma, handle):
    return torch.empty_like(x)


@torch.library.custom_op("ledkde::denoise_vjp", mutates_args=())
def _denoise_vjp(x: torch.Tensor, sigma: torch.Tensor, grad: torch.Tensor, handle: int) -> tuple[torch.Tensor,
                                                                                                 torch.Tensor]:
    engine = _ENGINES[handle]
    y = engine.rows(x).detach().cpu().numpy()
    g = engine.rows(grad).detach().cpu().numpy()
    gx, gs = np.empty(y.shape), np.empty(y.shape[0])
    for s, idx in _groups(sigma):
        i = idx.numpy()
        gx[i], gs[i] = vjp(y[i], engine.data, s, g[i])
    gx = engine.unrows(torch.from_numpy(gx).to(x.dtype), x).to(x.device)
    return gx, torch.from_numpy(gs).to(sigma.dtype).to(sigma.device)


@_denoise_vjp.register_fake
def _(x, sigma, grad, handle):
    return torch.empty_like(x), torch.empty_like(sigma)


def _setup(ctx, inputs, output):
    x, sigma, handle = inputs
    ctx.save_for_backward(x, sigma)
    ctx.handle = handle
    ctx.engine = _ENGINES[handle]  # the graph outlives a Denoiser dropped after its call


def _backward(ctx, grad):
    x, sigma = ctx.saved_tensors
    engine = ctx.engine
    if engine.smoothing is not None or isinstance(engine.data, Local):
        raise RuntimeError("backward: the exact Jacobian is implemented for the empirical denoiser; this Denoiser "
                           "is " + ("kernel-smoothed" if engine.smoothing is not None else "local") +
                           " (its Jacobian would need the smoothing's or the patches' own formula)")
    gone = ctx.handle not in _ENGINES
    _ENGINES[ctx.handle] = engine
    try:
        gx, gs = torch.ops.ledkde.denoise_vjp(x, sigma, grad.contiguous(), ctx.handle)
    finally:
        if gone:
            _ENGINES.pop(ctx.handle, None)
    return gx, gs, None


torch.library.register_autograd("ledkde::denoise", _backward, setup_context=_setup)


def vjp(y, data, sigma: float, v):
    """The exact vector-Jacobian products of the empirical denoiser ``D(y; sigma)``, in float64.

    y, v : (Q, d) rows; data : (N, d) points or a Mixture / ShardedMixture without
    per-component variances. Returns ``(J v, (dD/dsigma) . v)``: ``J = Cov_w(x_n) /
    sigma^2`` (symmetric, so ``J^T v = J v``) with ``w`` the posterior weights at ``y``,
    and ``dD/dsigma . v = Cov_w(x_n . v, |y - x_n|^2) / sigma^3``, shapes (Q, d) and (Q,).
    One pass over the data in blocks (float64 matrix products, an online log-sum-exp):
    compiled for a Mixture (threads over blocks of rows), in NumPy for a ShardedMixture;
    memory bounded by the block, not by N.
    """
    pts = data if hasattr(data, "_rows") else Mixture(_checks.array2d("data", data), dtype=np.float64)
    if getattr(pts, "has_variances", False):
        raise ValueError("data: the Jacobian with per-component variances is not implemented")
    logw = getattr(pts, "_log_weights", None)
    if getattr(pts, "has_weights", False) and logw is None:
        raise ValueError("data: the Jacobian of weighted sharded data is not implemented")
    y = np.ascontiguousarray(y, dtype=np.float64)
    v = np.ascontiguousarray(v, dtype=np.float64)
    t = float(sigma) ** 2
    if isinstance(pts, Mixture):  # the compiled pass over the points as given (ledkde/cpu.h denoise_vjp_cpu)
        x = pts._data if pts._data.dtype in (np.float32, np.float64) else pts._data.astype(np.float64)
        lw = None if logw is None else np.ascontiguousarray(logw, dtype=np.float64)
        return _core.denoise_vjp(np.ascontiguousarray(x), lw, np.ascontiguousarray(pts._centre, dtype=np.float64),
                                 y, v, t, _checks.pass_options(_core, None, None))
    acc = _Moments(y.shape[0], y.shape[1])
    step = max(1, _BLOCK // max(1, y.shape[0]))
    for lo in range(0, pts.n, step):
        x = pts._rows(np.arange(lo, min(pts.n, lo + step)))
        d2 = np.maximum((y * y).sum(1)[:, None] - 2.0 * (y @ x.T) + (x * x).sum(1)[None, :], 0.0)
        logits = -d2 / (2.0 * t) + (0.0 if logw is None else np.asarray(logw)[lo:lo + len(x)][None, :])
        acc.add(logits, x, d2, v @ x.T)
    return acc.products(v, t)


class _Moments:
    """The online (log-sum-exp) sums of the backward pass, per query: S = sum e, and the
    e-weighted sums of x, (v.x) x, v.x, d2 and (v.x) d2 (e = exp(logit - running max))."""

    def __init__(self, q: int, d: int):
        self.m = np.full(q, -np.inf)
        self.s, self.c, self.e2, self.ce2 = (np.zeros(q) for _ in range(4))
        self.a, self.b = np.zeros((q, d)), np.zeros((q, d))

    def add(self, logits, x, d2, c):
        m = np.maximum(self.m, logits.max(1))
        keep = np.where(np.isfinite(self.m), np.exp(self.m - m), 0.0)
        e = np.exp(logits - m[:, None])
        self.s = self.s * keep + e.sum(1)
        self.c = self.c * keep + (e * c).sum(1)
        self.e2 = self.e2 * keep + (e * d2).sum(1)
        self.ce2 = self.ce2 * keep + (e * c * d2).sum(1)
        self.a = self.a * keep[:, None] + e @ x
        self.b = self.b * keep[:, None] + (e * c) @ x
        self.m = m

    def products(self, v, t):
        mean = self.a / self.s[:, None]
        jv = (self.b / self.s[:, None] - mean * (mean * v).sum(1)[:, None]) / t
        ds = (self.ce2 / self.s - (self.c / self.s) * (self.e2 / self.s)) / t**1.5
        return jv, ds


class Denoiser(torch.nn.Module):
    """The ideal denoiser of a training set, ``forward(x, sigma) -> D(x; sigma)``.

    data : the training set, a tensor or array ``(N, C, H, W)`` (PyTorch's channels-first
    images) or ``(N, d)``, or a prepared :class:`ledkde.Mixture`, :class:`ledkde.Local` or
    ``ShardedMixture``. For a ``Local`` the samples ``x`` of shape (B, C, H, W) are laid out
    channels last (its rows' order) for the engine and back. bandwidth, n_kernel and
    ``**smoothing`` (estimator, antithetic, seed, ...): the kernel-smoothed denoiser
    ``x + sigma^2 (K_h * s)`` (:func:`ledkde.smoothed_score`); bandwidth 0 (the default):
    the exact one. sigma_min, sigma_max : what EDM's sampler reads (default: the square
    roots of the data's grid ends, :func:`ledkde.sample`'s defaults).

    forward: ``x`` (B, ...) of the data's sample shape, float32 or float64, CPU (CUDA
    tensors where ledkde's CUDA backend is available); ``sigma`` a number, a 0-d tensor or
    a (B,) tensor whose entries may differ (one engine pass per distinct value). Returns a
    tensor of the shape, dtype and device of ``x``. Differentiable in ``x`` and ``sigma``
    (exact products, :func:`vjp`) for the empirical denoiser.
    """

    def __init__(self, data, *, bandwidth: float = 0.0, n_kernel: int = 8, sigma_min: float | None = None,
                 sigma_max: float | None = None, **smoothing):
        super().__init__()
        prepared, shape = _prepare(data)
        self.sample_shape = shape
        self.bandwidth = _checks.positive_scalar("bandwidth", bandwidth, allow_zero=True)
        smooth = None
        if self.bandwidth > 0:
            smooth = dict(bandwidth=self.bandwidth, n_kernel=n_kernel, **smoothing)
        elif smoothing:
            raise TypeError(f"{sorted(smoothing)[0]}: a smoothing option needs bandwidth > 0")
        self._engine = _Engine(prepared, isinstance(prepared, Local), smooth)
        self._handle = next(_HANDLES)
        _ENGINES[self._handle] = self._engine
        weakref.finalize(self, _ENGINES.pop, self._handle, None)
        self.sigma_min, self.sigma_max = _sigma_range(prepared, sigma_min, sigma_max)

    @classmethod
    def local(cls, images, **options) -> "Denoiser":
        """The local (``equivariant=False``) or equivariant local denoiser of ``images``
        (N, C, H, W): ``options`` are those of :class:`ledkde.Local` (patch, equivariant,
        padding, ...) and of the Denoiser (sigma_min, sigma_max)."""
        sig = {k: options.pop(k) for k in ("sigma_min", "sigma_max") if k in options}
        if isinstance(images, torch.Tensor):
            images = images.detach().cpu().numpy()
        arr = _checks.as_array("images", images)
        if arr.ndim != 4:
            raise ValueError(f"images: expected (N, C, H, W), got shape {arr.shape}")
        return cls(Local(np.ascontiguousarray(arr.transpose(0, 2, 3, 1)), **options), **sig)

    @property
    def data(self):
        """The prepared data the engine runs on."""
        return self._engine.data

    def round_sigma(self, sigma):
        """EDM's hook: the noise levels are continuous here, so sigma as a tensor, unchanged."""
        return sigma if isinstance(sigma, torch.Tensor) else torch.as_tensor(sigma, dtype=torch.float64)

    def forward(self, x: torch.Tensor, sigma) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if x.dtype not in (torch.float32, torch.float64):
            raise TypeError(f"x: expected float32 or float64, got {x.dtype}")
        if x.device.type not in ("cpu", "cuda"):
            raise ValueError(f"x: a tensor on {x.device.type!r}; the engine runs on the CPU, and on CUDA devices "
                             "where ledkde's CUDA backend is built")
        if x.device.type == "cuda" and not cuda_available():
            raise RuntimeError("x: a CUDA tensor, but ledkde's CUDA backend is not available here "
                               "(ledkde.cuda_available() is False); move x to the CPU")
        if x.dim() < 2 or tuple(x.shape[1:]) != self.sample_shape:
            raise ValueError(f"x: expected (B, {', '.join(map(str, self.sample_shape))}) like the data, "
                             f"got {tuple(x.shape)}")
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
        if sigma.dim() > 1 or (sigma.dim() == 1 and sigma.shape[0] not in (1, x.shape[0])):
            raise ValueError(f"sigma: expected a number or a ({x.shape[0]},) tensor, got shape {tuple(sigma.shape)}")
        sigma = sigma.reshape(-1).expand(x.shape[0]).contiguous()
        if not (torch.compiler.is_compiling() or (torch.is_grad_enabled() and (x.requires_grad or sigma.requires_grad))):
            # Nothing to trace or differentiate: the operator's body, without its dispatch.
            return _denoise_rows(self._engine, x.contiguous(), sigma)
        return torch.ops.ledkde.denoise(x.contiguous(), sigma, self._handle)

    def extra_repr(self) -> str:
        kind = "smoothed" if self.bandwidth > 0 else ("local" if isinstance(self.data, Local) else "empirical")
        return f"{kind}, sample shape {self.sample_shape}, sigma in [{self.sigma_min:.4g}, {self.sigma_max:.4g}]"


def _prepare(data):
    """(the engine's data, the shape of one sample)."""
    if isinstance(data, Local):
        h, w, c = data.image_shape
        return data, ((c, h, w) if c > 1 else (1, h, w))
    if hasattr(data, "_rows") and hasattr(data, "d"):  # Mixture, ShardedMixture
        return data, (data.d,)
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    arr = _checks.as_array("data", data)
    if arr.ndim < 2:
        raise ValueError(f"data: expected (N, d) rows or (N, C, H, W) images, got shape {arr.shape}")
    return Mixture(np.ascontiguousarray(arr.reshape(arr.shape[0], -1))), tuple(arr.shape[1:])


def _sigma_range(data, sigma_min, sigma_max):
    if sigma_min is None or sigma_max is None:
        from ._sampler import _data_times

        t_max, t_min = _data_times(data, None, None)
        sigma_min = math.sqrt(t_min) if sigma_min is None else sigma_min
        sigma_max = math.sqrt(t_max) if sigma_max is None else sigma_max
    return (_checks.positive_scalar("sigma_min", sigma_min), _checks.positive_scalar("sigma_max", sigma_max))


def vp_prediction(denoiser, x_t: torch.Tensor, alpha_bar, prediction_type: str = "epsilon") -> torch.Tensor:
    """A variance-preserving model output from a (variance-exploding) denoiser.

    ``x_t = sqrt(abar) x0 + sqrt(1 - abar) eps`` (diffusers' convention; ``alpha_bar`` a
    number or a (B,) tensor, in (0, 1)): ``x0 = D(x_t / sqrt(abar), sqrt((1 - abar) / abar))``,
    ``eps = (x_t - sqrt(abar) x0) / sqrt(1 - abar)``, ``v = sqrt(abar) eps - sqrt(1 - abar) x0``.
    prediction_type : ``"sample"`` (x0), ``"epsilon"`` or ``"v_prediction"``, as a diffusers
    scheduler's config names it. Give the scheduler's sample before ``scale_model_input``
    (DDIM and DDPM leave it unchanged; Euler-type schedulers divide it by sqrt(sigma^2 + 1),
    which is sqrt(abar) of this formula applied to ``x_t``).
    """
    _checks.choice("prediction_type", prediction_type, ("sample", "epsilon", "v_prediction"))
    abar = torch.as_tensor(alpha_bar, dtype=x_t.dtype, device=x_t.device).reshape(-1)
    if not bool(((abar > 0) & (abar < 1)).all()):
        raise ValueError("alpha_bar: must lie in (0, 1)")
    shape = (-1,) + (1,) * (x_t.dim() - 1)
    a, b = abar.sqrt().reshape(shape), (1 - abar).sqrt().reshape(shape)
    x0 = denoiser(x_t / a, (b / a).reshape(-1).expand(x_t.shape[0]))
    if prediction_type == "sample":
        return x0
    eps = (x_t - a * x0) / b
    return eps if prediction_type == "epsilon" else a * eps - b * x0
