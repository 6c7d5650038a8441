"""Local (LS) and equivariant local (ELS) closed-form denoisers of a set of training images.

The scores with a convolutional network's inductive biases (SPEC section 1; Kamb &
Ganguli, Niedoba et al., Lukoianov et al.): each pixel's denoised value depends only on a
patch around it (locality), and with ``equivariant=True`` a query patch may match a
training patch at any position (equivariance). A :class:`Local` is prepared data like a
:class:`~ledkde.Mixture`: ``denoise``, ``score``, ``evaluate`` (``"score"``,
``"denoise"``) and ``sample`` take it; a local score has no normalized density, so
``log_density``, the LED-KDE log-density and partial states are refused with the reason.
"""

from __future__ import annotations

import numbers

import numpy as np

from . import _checks, _device
from ._loader import _core
from ._mixture import Data, _moments_of

PADDINGS = {"zero": 0, "circular": 1, "boundary": 2}
# The default patch schedule: a log-linear ramp in sigma / sigma_data (sigma = sqrt(t),
# sigma_data the data's per-pixel standard deviation) from 3 pixels at and below
# RAMP[0] to the image's size at and above RAMP[1].
RAMP = (0.05, 5.0)


def _odd(v: float) -> int:
    """The odd integer nearest v (at least 1)."""
    return max(1, 2 * int(np.floor(v / 2.0)) + 1)


class Local(Data):
    """Training images prepared for the local denoisers.

    ``Local(data, *, image_shape=None, patch=None, equivariant=False, padding="zero",
    log_weights=None, dtype=None, merge=True)``

    data : (N, H, W), (N, H, W, C) images (channels last), or (N, d) rows in (H, W, C)
    order with ``image_shape`` (H, W) or (H, W, C). patch : the window size P, an odd
    int, a callable of t returning one, or None for the default schedule (below); the
    sampler also takes one value per step or per grid time. equivariant : False: LS,
    ``D(y)_p = sum_n w_{n,p} x_n[p]``, one softmax over the images per pixel of the
    window distance ``-|W_p (y - x_n)|^2 / 2t``; True: ELS, one softmax over every
    training patch at every position, value its centre pixel. padding : ``"zero"``
    (window pixels outside the image left out, or zero), ``"circular"`` (windows wrap),
    ``"boundary"`` (ELS: a query pixel meets only the training patches that the border
    cuts on the same sides by the same amounts). log_weights : (N,) per image. merge :
    ELS merges identical training patches into one component weighted by their count
    (exact; MNIST's empty background is most of its patches).

    Default patch schedule: a log-linear ramp in sigma / sigma_data (sigma = sqrt(t),
    sigma_data the data's per-pixel standard deviation) from 3 pixels at sigma <= 0.05
    sigma_data to the image's size (the largest odd P <= max(H, W)) at sigma >= 5
    sigma_data. Its end points span the calibrated schedules published for trained
    UNets (MNIST 3 -> 27, CIFAR-10 3 -> 25 over a 20-step cosine grid, Kamb & Ganguli);
    the ramp between them is this library's choice, not a calibration.

    A window over the whole image (``padding="zero"``, P >= 2 max(H, W) - 1) gives the
    global empirical denoiser. CPU only (``device="cuda"`` is refused).
    """

    def __init__(self, data, *, image_shape=None, patch=None, equivariant=False, padding="zero", log_weights=None,
                 dtype=None, merge=True):
        arr, shape = _images(data, image_shape)
        self.image_shape = shape
        self.equivariant = _checks.boolean("equivariant", equivariant)
        self.padding = _checks.choice("padding", padding, tuple(PADDINGS))
        if self.padding == "boundary" and not self.equivariant:
            raise ValueError("padding: 'boundary' is the equivariant (ELS) border rule; LS takes 'zero' or 'circular'")
        self.merge = _checks.boolean("merge", merge)
        self.n, self.d = arr.shape
        lw = _checks.log_weights(log_weights, self.n)
        self.dtype = np.dtype(_checks.mixture_dtype(dtype, arr))
        self.has_weights, self.has_variances = lw is not None, False
        self._data = np.ascontiguousarray(arr, dtype=self.dtype)
        core = _core.LocalImages32 if self.dtype == np.float32 else _core.LocalImages64
        h, w, c = shape
        self._core = core(self._data, h, w, c, lw, not self.equivariant)
        self._centre = self._data.mean(axis=0, dtype=np.float64)
        self._extent, _ = _checks.extent(self._data, self._centre)
        self._sigma_data = float(np.sqrt(self._data.astype(np.float64).var(axis=0).mean()))
        # LS sums squared differences in float64 from the values as given; ELS runs the
        # mixture pass over patches centred on their chunk's mean (float32: half a unit
        # in the last place of the largest centred coordinate).
        top = float(np.abs(self._data - self._centre).max()) if self.equivariant else 0.0
        self._resolution = 0.5 * float(np.finfo(self.dtype).eps) * top
        self._patch = _patch_rule(patch, shape, self._sigma_data)
        self._mixture = None

    def __repr__(self) -> str:
        kind = "ELS" if self.equivariant else "LS"
        return f"Local(n={self.n}, image_shape={self.image_shape}, {kind}, padding={self.padding!r})"

    def patch_at(self, t: float) -> int:
        """The patch size used at time t (a number, or the schedule's value there)."""
        return self._patch(_checks.positive_scalar("t", t))

    def _spec(self, patch: int):
        return _core.LocalSpec(patch=patch, equivariant=self.equivariant, padding=PADDINGS[self.padding],
                               merge=self.merge)

    # ------------------------------------------------------------------ Data
    def _check_device(self, device) -> None:
        if device not in ("auto", "cpu"):
            raise ValueError(f"device: the local denoisers run on the CPU only (no GPU kernel yet), not on {device!r}")

    def _backend(self, where, tile):
        if tile is not None:
            raise ValueError("tile: the local denoisers choose their own tiles")
        if where.kind != "cpu":
            raise TypeError("y: the local denoisers run on the CPU only (no GPU kernel yet); pass NumPy arrays")
        return LocalBackend(self)

    def _rows(self, indices) -> np.ndarray:
        return np.asarray(self._data[np.asarray(indices, dtype=np.int64)], dtype=np.float64)

    def _moments(self):
        return _moments_of(self._data)

    def __reduce__(self):
        raise TypeError("a Local cannot be pickled yet; pickle its data and settings and build it again")


def _images(data, image_shape):
    """(rows (N, d) in (H, W, C) order, (H, W, C)) of the data, checked."""
    arr = _checks.as_array("data", _device.to_host("data", data))
    if arr.ndim in (3, 4):
        shape = arr.shape[1:] + ((1,) if arr.ndim == 3 else ())
        if image_shape is not None and tuple(_shape(image_shape)) != shape:
            raise ValueError(f"image_shape: {tuple(image_shape)} disagrees with the images' shape {arr.shape[1:]}")
        arr = arr.reshape(arr.shape[0], -1)
    elif arr.ndim == 2:
        if image_shape is None:
            raise ValueError("image_shape: give (H, W) or (H, W, C) for data given as rows")
        shape = _shape(image_shape)
        if shape[0] * shape[1] * shape[2] != arr.shape[1]:
            raise ValueError(f"image_shape: {tuple(image_shape)} holds {shape[0] * shape[1] * shape[2]} values, but "
                             f"the rows have {arr.shape[1]}")
    else:
        raise ValueError(f"data: expected images (N, H, W[, C]) or rows (N, d), got shape {arr.shape}")
    return _checks.array2d("data", arr), shape


def _shape(image_shape) -> tuple:
    try:
        dims = tuple(image_shape)
    except TypeError:
        raise TypeError(f"image_shape: expected (H, W) or (H, W, C), got {image_shape!r}") from None
    if len(dims) not in (2, 3):
        raise ValueError(f"image_shape: expected (H, W) or (H, W, C), got {dims}")
    dims = tuple(_checks.positive_int("image_shape", v) for v in dims)
    return dims if len(dims) == 3 else dims + (1,)


def _patch_size(value, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"patch: expected an odd integer{where}, got {type(value).__name__}")
    p = int(value)
    if p < 1 or p % 2 == 0:
        raise ValueError(f"patch: must be an odd size >= 1{where}, got {p}")
    return p


def default_patch(t: float, image_shape, sigma_data: float) -> int:
    """The default schedule (see :class:`Local`): 3 at sigma <= 0.05 sigma_data, the
    image's size at sigma >= 5 sigma_data, log-linear in sigma between."""
    full = _odd(max(image_shape[:2]) - 1) if max(image_shape[:2]) > 1 else 1
    if full <= 3 or sigma_data <= 0:
        return full
    lo, hi = RAMP
    s = (np.log(np.sqrt(t) / sigma_data) - np.log(lo)) / (np.log(hi) - np.log(lo))
    return int(min(full, _odd(3 + (full - 3) * float(np.clip(s, 0.0, 1.0)))))


def _patch_rule(patch, shape, sigma_data):
    """The patch size as a function of t (checked where it can be)."""
    if patch is None:
        return lambda t: default_patch(t, shape, sigma_data)
    if callable(patch):
        return lambda t: _patch_size(patch(t), f" (returned by the callable at t={t:g})")
    if np.ndim(patch) == 0:
        p = _patch_size(patch, "")
        return lambda t: p
    raise TypeError("patch: give a number or a callable of t when building the Local (one value per step goes to "
                    "sample(patch=...))")


def patches_for_grid(local: Local, patch, times: np.ndarray) -> list:
    """The patch at each grid time of a sampler run: the Local's rule, or ``patch`` (one
    value per step, the last also serving t_min, or one per grid time; a number; a callable)."""
    K = len(times) - 1
    if patch is None:
        return [local._patch(float(t)) for t in times]
    if callable(patch) or np.ndim(patch) == 0:
        rule = _patch_rule(patch, local.image_shape, local._sigma_data)
        return [rule(float(t)) for t in times]
    vals = list(np.asarray(patch).ravel())
    if len(vals) == K:
        vals.append(vals[-1])
    if len(vals) != K + 1:
        raise ValueError(f"patch: expected {K} values (one per step) or {K + 1} (one per grid time), got {len(vals)}")
    return [_patch_size(v, " per step") for v in vals]


class LocalBackend:
    """The engine protocol (``ledkde._backend``) over a Local."""

    def __init__(self, local: Local):
        self.local = local

    def evaluate(self, call, outs):
        bad = [o for o in outs if o not in ("score", "denoise")]
        if bad:
            raise ValueError(f"outputs: a local score has no normalized density, so no {', '.join(bad)}; ask for "
                             "'score' or 'denoise'")
        spec = self.local._spec(self.local._patch(call.t))
        den, sc = self.local._core.denoise(call.y, call.t, spec, call.options())
        res = {"denoise": den, "score": sc}
        return call.output({o: res[o] for o in outs})

    def partial(self, call):
        raise ValueError("data: a local score has no density to split into partial states")

    def smoothed(self, call, smooth, want_score, return_error):
        what = "smoothed_score" if want_score else "led_kde_log_density"
        raise ValueError(f"data: {what} is not available for local denoisers (a local score has no density to "
                         "smooth by LED-KDE); sample(..., bandwidth=...) smooths their score in a run")

    def knn(self, call, k: int):
        if self.local._mixture is None:  # the images as a Mixture, for nearest neighbours
            from ._mixture import Mixture
            self.local._mixture = Mixture(self.local._data, dtype=self.local.dtype, prune=False)
        mix = self.local._mixture
        return _core.knn(mix._core, call.y, k, call.options())

    def sample(self, call, n_samples: int, plan, want_error: bool, progress):
        patches = patches_for_grid(self.local, plan.patch, plan.times)
        spec = self.local._spec(patches[-1])
        return self.local._core.sample(n_samples, plan.config(_core), spec, patches, want_error, progress,
                                       call.options(_checks.TILE_SAMPLER))
