"""Plain NumPy definitions of every ledkde operation, in float64.

Written for clarity, not speed: distances come from coordinate differences
(no ``|x|^2 - 2 x.y + |y|^2`` expansion), the data are processed in chunks so
large N fits in memory, and the random stream is re-implemented from its
definition (Philox4x32-10, see ``philox4x32_10``). The tests compare the
compiled engine against these functions.
"""

from __future__ import annotations

import numpy as np

_CHUNK = 1 << 21  # elements of a (queries x components x d) difference block

PURPOSE_NOISE, PURPOSE_INIT_NOISE, PURPOSE_INIT_INDEX, PURPOSE_KERNEL = 1, 2, 3, 4


# --------------------------------------------------------------------------- mixture quantities
def _logits(y, data, t, log_weights, variances):
    """Logits l_i(y) = log a_i - |y - mu_i|^2 / (2 v_i) - (d/2) log(2 pi v_i), shape (Q, N)."""
    y = np.asarray(y, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    q, d = y.shape
    n = data.shape[0]
    if log_weights is None:
        log_a = np.full(n, -np.log(n))
    else:
        lw = np.asarray(log_weights, dtype=np.float64)
        log_a = lw - np.logaddexp.reduce(lw)
    v = t + (np.zeros(n) if variances is None else np.asarray(variances, dtype=np.float64))
    d2 = np.empty((q, n))
    step = max(1, _CHUNK // max(1, n * d))
    for i in range(0, q, step):
        diff = y[i:i + step, None, :] - data[None, :, :]
        d2[i:i + step] = np.einsum("qnd,qnd->qn", diff, diff)
    return log_a - d2 / (2 * v) - 0.5 * d * np.log(2 * np.pi * v), v


def _weighted_differences(y, data, coef):
    """sum_i coef[q, i] (data_i - y_q), shape (Q, d), from coordinate differences (chunked)."""
    q, d = y.shape
    n = data.shape[0]
    out = np.empty((q, d))
    step = max(1, _CHUNK // max(1, n * d))
    for i in range(0, q, step):
        diff = data[None, :, :] - y[i:i + step, None, :]
        out[i:i + step] = np.einsum("qn,qnd->qd", coef[i:i + step], diff)
    return out


def _posterior(y, data, t, log_weights, variances):
    """Posterior weights w (Q, N), variances v (N,) and log-density (Q,)."""
    l, v = _logits(y, data, t, log_weights, variances)
    # Softmax by the maximum: the weights sum to 1 even when the logits are
    # so large that adding log(sum) to them is lost in rounding.
    top = l.max(axis=1, keepdims=True)
    e = np.exp(l - top)
    tot = e.sum(axis=1, keepdims=True)
    return e / tot, v, (top + np.log(tot))[:, 0]


def evaluate(y, data, t, *, log_weights=None, variances=None):
    """All per-query quantities of SPEC section 1 as a dict (float64).

    log_density (Q,), score (Q, d), denoise (Q, d), entropy (Q,), max_weight (Q,).
    The queries are processed one block at a time; each block holds a (block, N)
    matrix of logits.
    """
    y = np.asarray(y, dtype=np.float64)
    data = np.asarray(data, dtype=np.float64)
    q, d = y.shape
    n = data.shape[0]
    out = {k: [] for k in ("log_density", "score", "denoise", "entropy", "max_weight")}
    block = max(1, (1 << 22) // max(1, n))
    for i in range(0, q, block):
        yb = y[i:i + block]
        w, v, lse = _posterior(yb, data, t, log_weights, variances)
        # score = sum_i w_i (mu_i - y) / v_i, from the differences mu_i - y
        # themselves: (w/v) @ mu - y sum(w/v) cancels badly when v is tiny or
        # the data lie far from the origin.
        sc = _weighted_differences(yb, data, w / v)
        with np.errstate(divide="ignore", invalid="ignore"):
            ent = -np.where(w > 0, w * np.log(w), 0.0).sum(axis=1)
        out["log_density"].append(lse)
        out["score"].append(sc)
        out["denoise"].append(yb + t * sc)
        out["entropy"].append(ent)
        out["max_weight"].append(w.max(axis=1))
    return {k: np.concatenate(vs) if vs else np.zeros((0,) if k in ("log_density", "entropy", "max_weight") else (0, d))
            for k, vs in out.items()}


def log_density(y, data, t, **kw):
    return evaluate(y, data, t, **kw)["log_density"]


def score(y, data, t, **kw):
    return evaluate(y, data, t, **kw)["score"]


def denoise(y, data, t, **kw):
    return evaluate(y, data, t, **kw)["denoise"]


# --------------------------------------------------------------------------- local denoisers
def _window_sum(e, r, padding):
    """sum over the (2r+1) x (2r+1) window centred on every pixel of e (..., H, W):
    pixels outside the image left out ("zero") or the window wrapped ("circular")."""
    out = np.zeros_like(e)
    h, w = e.shape[-2:]
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            if padding == "circular":
                out += np.roll(e, (-dy, -dx), axis=(-2, -1))
                continue
            if abs(dy) >= h or abs(dx) >= w:  # the window reaches past the image: nothing there
                continue
            src = e[..., max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            out[..., max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)] += src
    return out


def _patches(img, r, padding):
    """(H, W, P, P, C) patches of images (H, W, C) centred on every pixel: outside pixels 0
    ("zero", "boundary") or wrapped ("circular")."""
    h, w, c = img.shape
    iy = np.arange(h)[:, None] + np.arange(-r, r + 1)[None, :]
    ix = np.arange(w)[:, None] + np.arange(-r, r + 1)[None, :]
    if padding == "circular":
        return img[(iy % h)[:, None, :, None], (ix % w)[None, :, None, :]]
    inside = ((iy >= 0) & (iy < h))[:, None, :, None] & ((ix >= 0) & (ix < w))[None, :, None, :]
    out = img[np.clip(iy, 0, h - 1)[:, None, :, None], np.clip(ix, 0, w - 1)[None, :, None, :]]
    return np.where(inside[..., None], out, 0.0)


def border_class(h, w, r):
    """(H, W, 4) how far the border cuts the window of every pixel: (top, bottom, left,
    right), the number of window rows or columns outside the image on each side."""
    i, j = np.arange(h), np.arange(w)
    top, bottom = np.maximum(0, r - i), np.maximum(0, i + r - (h - 1))
    left, right = np.maximum(0, r - j), np.maximum(0, j + r - (w - 1))
    return np.stack(np.broadcast_arrays(top[:, None], bottom[:, None], left[None, :], right[None, :]), axis=-1)


def local_denoise(y, data, t, *, image_shape, patch, equivariant=False, padding="zero", log_weights=None):
    """The local (LS) and equivariant local (ELS) denoisers of SPEC section 1, (Q, d), float64.

    Rows are images in (H, W, C) order (image_shape (H, W) or (H, W, C)); patch is an odd
    window size P. LS: D(y)_p = sum_n w_{n,p} x_n[p], one softmax over the images per
    pixel of -|W_p (y - x_n)|^2 / 2t (+ log a_n). ELS: D(y)_p = sum_{n,q} w x_n[q], one
    softmax over every training patch at every position of -|P_p y - P_q x_n|^2 / 2t;
    "boundary": pixel p meets only the positions q whose windows the border cuts alike.
    """
    h, w = image_shape[:2]
    c = image_shape[2] if len(image_shape) > 2 else 1
    y = np.asarray(y, dtype=np.float64).reshape(-1, h, w, c)
    x = np.asarray(data, dtype=np.float64).reshape(-1, h, w, c)
    n = x.shape[0]
    lw = np.zeros(n) if log_weights is None else np.asarray(log_weights, dtype=np.float64)
    r = (patch - 1) // 2
    out = np.empty_like(y)
    for i, yi in enumerate(y):
        out[i] = _els(yi, x, lw, t, r, padding) if equivariant else _ls(yi, x, lw, t, r, padding)
    return out.reshape(len(y), -1)


def _ls(yi, x, lw, t, r, padding):
    e = ((yi[None] - x) ** 2).sum(-1)  # (N, H, W)
    logits = lw[:, None, None] - _window_sum(e, r, padding) / (2 * t)
    wts = np.exp(logits - logits.max(axis=0, keepdims=True))
    wts /= wts.sum(axis=0, keepdims=True)
    return np.einsum("nhw,nhwc->hwc", wts, x)


def _els(yi, x, lw, t, r, padding):
    n, h, w, c = x.shape
    pad = "zero" if padding == "boundary" else padding
    qp = _patches(yi, r, pad).reshape(h * w, -1)  # query patches
    xp = np.stack([_patches(xn, r, pad) for xn in x]).reshape(n, h * w, -1)
    cls = border_class(h, w, r).reshape(h * w, 4)
    out = np.empty((h * w, c))
    for p in range(h * w):
        keep = np.ones(h * w, bool) if padding != "boundary" else (cls == cls[p]).all(axis=1)
        d2 = ((xp[:, keep] - qp[p]) ** 2).sum(-1)  # (N, positions)
        logits = lw[:, None] - d2 / (2 * t)
        wts = np.exp(logits - logits.max())
        out[p] = np.einsum("nq,nqc->c", wts, x.reshape(n, h * w, c)[:, keep]) / wts.sum()
    return out.reshape(h, w, c)


def local_score(y, data, t, **kw):
    """(D(y) - y) / t of local_denoise."""
    return (local_denoise(y, data, t, **kw) - np.asarray(y, dtype=np.float64)) / t


# --------------------------------------------------------------------------- random stream
_M0, _M1 = np.uint64(0xD2511F53), np.uint64(0xCD9E8D57)
_W0, _W1 = np.uint64(0x9E3779B9), np.uint64(0xBB67AE85)
_MASK = np.uint64(0xFFFFFFFF)


def philox4x32_10(counter, key):
    """Philox4x32-10 of counters (..., 4) and key (2,) as uint32 words (..., 4)."""
    c = [np.asarray(counter, dtype=np.uint64)[..., i] for i in range(4)]
    k0, k1 = np.uint64(key[0]), np.uint64(key[1])
    for _ in range(10):
        p0 = _M0 * c[0]
        p1 = _M1 * c[2]
        hi0, lo0 = p0 >> np.uint64(32), p0 & _MASK
        hi1, lo1 = p1 >> np.uint64(32), p1 & _MASK
        c = [hi1 ^ c[1] ^ k0, lo1, hi0 ^ c[3] ^ k1, lo0]
        k0 = (k0 + _W0) & _MASK
        k1 = (k1 + _W1) & _MASK
    return np.stack(c, axis=-1).astype(np.uint32)


def _bits(seed, block, index, step, purpose, draw):
    block, index, step, draw = np.broadcast_arrays(*(np.asarray(a, dtype=np.uint64) for a in (block, index, step, draw)))
    tag = (np.uint64(purpose) << np.uint64(24)) | (draw & np.uint64(0xFFFFFF))
    ctr = np.stack([block, index, step, tag], axis=-1)
    seed = int(seed)
    return philox4x32_10(ctr, (seed & 0xFFFFFFFF, seed >> 32))


def _unit(bits):
    return (bits.astype(np.float64) + 0.5) * 2.0**-32


def stream_normals(seed, index, step, purpose, draw, d):
    """Standard normals (..., d) of the stream: coordinate c from block c // 4 (see philox.h).

    index, step and draw broadcast together; the result has their shape plus (d,).
    """
    nb = (d + 3) // 4
    index, step, draw = np.broadcast_arrays(np.asarray(index), np.asarray(step), np.asarray(draw))
    blocks = np.arange(nb).reshape((1,) * index.ndim + (nb,))
    b = _bits(seed, blocks, index[..., None], step[..., None], purpose, draw[..., None])
    u = _unit(b)
    r0 = np.sqrt(-2.0 * np.log(u[..., 0]))
    r1 = np.sqrt(-2.0 * np.log(u[..., 2]))
    a0 = 2.0 * np.pi * u[..., 1]
    a1 = 2.0 * np.pi * u[..., 3]
    z = np.stack([r0 * np.cos(a0), r0 * np.sin(a0), r1 * np.cos(a1), r1 * np.sin(a1)], axis=-1)
    return z.reshape(index.shape + (4 * nb,))[..., :d]


def kernel_draws(seed, n_queries, eval_index, n_kernel, d, bandwidth, kernel="gaussian", antithetic=False,
                 index0=0, orthogonal=False):
    """Kernel perturbations u, shape (n_queries, n_kernel, d), as the engine draws them.

    iid: draw m from the stream normals g_m (draw number m, or m // 2 with
    antithetic pairs, whose odd member is -u). orthogonal: the base draws come
    in blocks of d; base draw j is g_j minus its projections on the earlier
    base draws of its block (Gram-Schmidt, done twice), rescaled to the length
    of the iid draw (h |g_j|, or h U^(1/d) for the uniform ball).
    """
    m = np.arange(n_kernel)
    base = m // 2 if antithetic else m
    sign = np.where((m % 2 == 1) & antithetic, -1.0, 1.0)
    idx = index0 + np.arange(n_queries)[:, None]
    g = stream_normals(seed, idx, eval_index, PURPOSE_KERNEL, base[None, :], d)
    if kernel == "uniform":
        nb = (d + 3) // 4
        bits = _bits(seed, nb, idx, eval_index, PURPOSE_KERNEL, base[None, :])
        length = bandwidth * _unit(bits[..., 0]) ** (1.0 / d)
    else:
        length = bandwidth * np.linalg.norm(g, axis=-1)
    if orthogonal:
        nbase = n_kernel // 2 if antithetic else n_kernel
        first = np.arange(n_kernel) if not antithetic else 2 * np.arange(nbase)
        v = g[:, first, :].copy()
        for j in range(nbase):
            for _ in range(2):
                for p in range(j - j % d, j):
                    w = v[:, p, :]
                    v[:, j, :] -= (np.einsum("qd,qd->q", v[:, j, :], w) / np.einsum("qd,qd->q", w, w))[:, None] * w
            v[:, j, :] *= (length[:, first[j]] / np.linalg.norm(v[:, j, :], axis=-1))[:, None]
        return v[:, base, :] * sign[None, :, None]
    return g * (length / np.linalg.norm(g, axis=-1))[..., None] * sign[None, :, None]


def init_index(seed, samples, n, log_weights=None):
    """Component drawn for init='empirical' (an exact draw of p_{t_max} picks component j
    with probability a_j). Equal weights: ((word1 << 32) | word0) mod n. Weights: the
    first j whose cumulative weight exceeds u = (((word1 << 32) | word0) >> 11) 2^-53,
    the cumulative weights summed in component order and divided by their total."""
    b = _bits(seed, 0, samples, 0, PURPOSE_INIT_INDEX, 0).astype(np.uint64)
    word = (b[..., 1] << np.uint64(32)) | b[..., 0]
    if log_weights is None:
        return (word % np.uint64(n)).astype(np.int64)
    lw = np.asarray(log_weights, dtype=np.float64)
    cdf = np.cumsum(np.exp(lw - np.logaddexp.reduce(lw)))
    cdf /= cdf[-1]
    u = (word >> np.uint64(11)).astype(np.float64) * 2.0**-53
    return np.minimum(np.searchsorted(cdf, u, side="right"), n - 1)


# --------------------------------------------------------------------------- smoothed scores
def _score_and_inverse_variance(y, data, t, log_weights, variances):
    """The score (Q, d), log-density (Q,) and b(y) = sum_i w_i / v_i (Q,)."""
    w, v, lse = _posterior(y, data, t, log_weights, variances)
    y = np.asarray(y, dtype=np.float64)
    return _weighted_differences(y, np.asarray(data, dtype=np.float64), w / v), lse, (w / v).sum(axis=1)


def _smoothed(y, data, t, bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed, log_weights,
              variances, eval_index, index0):
    """Per-draw estimates of the smoothed score (Q, M, d) and log-density (Q, M)."""
    q, d = y.shape
    u = kernel_draws(seed, q, eval_index, n_kernel, d, bandwidth, kernel, antithetic, index0, orthogonal)
    pts = y[:, None, :] + u
    # The perturbation the points really carry (y + u is rounded at y's scale):
    # the control terms must cancel exactly that one.
    u = pts - y[:, None, :]
    s, ld, _ = _score_and_inverse_variance(pts.reshape(q * n_kernel, d), data, t, log_weights, variances)
    s, ld = s.reshape(q, n_kernel, d), ld.reshape(q, n_kernel)
    if estimator == "control":
        if variances is None:
            s = s + u / t  # the denoiser is averaged: (m_t(y + u) - y) / t
        if not antithetic:
            s0, _, b0 = _score_and_inverse_variance(y, data, t, log_weights, variances)
            if variances is not None:
                s = s + b0[:, None, None] * u
            ld = ld - np.einsum("qd,qmd->qm", s0, u)
    elif estimator != "naive":
        raise ValueError(estimator)
    return s, ld


def _mean_and_error(x, antithetic):
    """Mean over axis 1 and the standard error of that mean (over draws, or antithetic pairs)."""
    if antithetic:
        x = 0.5 * (x[:, 0::2] + x[:, 1::2])
    n = x.shape[1]
    mean = x.mean(axis=1)
    var = x.var(axis=1, ddof=1) / n if n > 1 else np.zeros_like(x[:, 0])
    return mean, var


def smoothed_score(y, data, t, *, bandwidth, n_kernel, kernel="gaussian", estimator="control", antithetic=False,
                   orthogonal=False, seed=0, return_error=False, log_weights=None, variances=None, eval_index=0,
                   index0=0):
    """The smoothed score estimate from the stream's kernel draws, shape (Q, d).

    naive: mean of s_t(y + u_m). control: plus beta u_m, beta = 1/t (equal
    variances) or b(y) = sum_i w_i(y) / v_i (per-component variances; 0 with
    antithetic pairs). return_error: also the standard error (Q,), the root of
    the summed per-coordinate variances of the mean.
    """
    y = np.asarray(y, dtype=np.float64)
    q, d = y.shape
    if bandwidth == 0:
        s = score(y, data, t, log_weights=log_weights, variances=variances)
        return (s, np.zeros(q)) if return_error else s
    s, _ = _smoothed(y, data, t, bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed, log_weights,
                     variances, eval_index, index0)
    mean, var = _mean_and_error(s, antithetic)
    return (mean, np.sqrt(var.sum(axis=1))) if return_error else mean


def led_kde_log_density(y, data, t, *, bandwidth, n_kernel, kernel="gaussian", estimator="control",
                        antithetic=False, orthogonal=False, seed=0, return_error=False, log_weights=None,
                        variances=None):
    """The LED-KDE log-density estimate (K_h * log p_t)(y), shape (Q,).

    naive: mean of log p_t(y + u_m). control: minus s_t(y) . u_m (not needed
    with antithetic pairs, where it cancels). return_error: also the standard error (Q,).
    """
    y = np.asarray(y, dtype=np.float64)
    q, d = y.shape
    if bandwidth == 0:
        ld = log_density(y, data, t, log_weights=log_weights, variances=variances)
        return (ld, np.zeros(q)) if return_error else ld
    _, ld = _smoothed(y, data, t, bandwidth, n_kernel, kernel, estimator, antithetic, orthogonal, seed, log_weights,
                      variances, 0, 0)
    mean, var = _mean_and_error(ld, antithetic)
    return (mean, np.sqrt(var)) if return_error else mean


# --------------------------------------------------------------------------- samplers
def sample(data, n_samples, times, bandwidths, *, method="euler_maruyama", n_kernel=1, kernel="gaussian",
           estimator="control", antithetic=False, orthogonal=False, init="gaussian", denoise_last=True, seed=0,
           log_weights=None, variances=None, keep=()):
    """The reverse-time sampler of SPEC section 1, one step at a time, in float64.

    times : (K+1,) decreasing grid; bandwidths : (K+1,) bandwidth at each grid time.
    Consumes the same random stream as the engine: kernel draws of step k use
    evaluation number 2k (Heun's corrector 2k+1, the final denoising 2K), the
    Euler-Maruyama noise of step k uses purpose NOISE with step k.
    Returns (samples (n, d), trajectory (len(keep), n, d)).
    """
    data = np.asarray(data, dtype=np.float64)
    n, d = data.shape
    times = np.asarray(times, dtype=np.float64)
    K = len(times) - 1
    idx = np.arange(n_samples)
    z = stream_normals(seed, idx, 0, PURPOSE_INIT_NOISE, 0, d)
    if init == "empirical":  # component j, then N(0, (s2_j + t_max) I)
        j = init_index(seed, idx, n, log_weights)
        s2 = np.zeros(n) if variances is None else np.asarray(variances, dtype=np.float64)
        y = data[j] + np.sqrt(s2[j] + times[0])[:, None] * z
    else:
        y = np.sqrt(times[0]) * z
    kw = dict(n_kernel=n_kernel, kernel=kernel, estimator=estimator, antithetic=antithetic,
              orthogonal=orthogonal, seed=seed, log_weights=log_weights, variances=variances)

    def s(at, grid, ev):
        return smoothed_score(at, data, times[grid], bandwidth=bandwidths[grid], eval_index=ev, **kw)

    kept = {0: y.copy()}
    for k in range(K):
        D = times[k] - times[k + 1]
        sk = s(y, k, 2 * k)
        if method == "euler_maruyama":
            z = stream_normals(seed, idx, k, PURPOSE_NOISE, 0, d)
            y = y + D * sk + np.sqrt(D) * z
        elif method == "ode_euler":
            y = y + 0.5 * D * sk
        elif method == "ode_heun":
            y2 = y + 0.5 * D * sk
            y = y + 0.25 * D * (sk + s(y2, k + 1, 2 * k + 1))
        else:
            raise ValueError(method)
        kept[k + 1] = y.copy()
    if denoise_last:
        y = y + times[K] * s(y, K, 2 * K)
    traj = np.stack([kept[k] for k in keep]) if len(keep) else np.zeros((0, n_samples, d))
    return y, traj


# --------------------------------------------------------------------------- time grids
def time_grid(t_max, t_min, steps, schedule="geometric", rho=7.0):
    """Decreasing grid t_0 = t_max > ... > t_steps = t_min (SPEC section 1)."""
    k = np.arange(steps + 1) / steps
    if schedule == "uniform":
        return t_max + k * (t_min - t_max)
    if schedule == "geometric":
        # In logs: (t_min / t_max) ** k underflows for end points far apart (1e300 to 1e-280).
        return np.exp(np.log(t_max) + k * (np.log(t_min) - np.log(t_max)))
    if schedule == "edm":
        s_max, s_min = np.sqrt(t_max), np.sqrt(t_min)
        sig = (s_max ** (1 / rho) + k * (s_min ** (1 / rho) - s_max ** (1 / rho))) ** rho
        return sig**2
    raise ValueError(schedule)
