"""ledkde.torch: the Denoiser module against ledkde.denoise and against the formulas of its
Jacobian, the custom operator under torch.compile and opcheck, and the samplers of
k-diffusion and torchdiffeq driving it against the same update rules written here."""

import importlib.util
import sys
import types
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="PyTorch is not installed (pip install torch; CI installs it)")
import ledkde  # noqa: E402
from ledkde.torch import Denoiser, vjp, vp_prediction  # noqa: E402


def images(n=120, c=2, h=4, w=3, seed=0):
    return np.random.default_rng(seed).random((n, c, h, w))


def rows(a):
    return np.asarray(a).reshape(len(a), -1)


# --------------------------------------------------------------------------- forward
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_forward_is_the_engines_denoiser_row_by_row_with_per_row_sigmas(dtype):
    data = images()
    den = Denoiser(data.astype(np.float32) if dtype == torch.float32 else data)
    x = torch.from_numpy(images(6, seed=1)).to(dtype)
    sigma = torch.tensor([0.3, 1.0, 0.3, 2.0, 1.0, 0.05], dtype=dtype)
    out = den(x, sigma)
    assert out.shape == x.shape and out.dtype == dtype
    d = data.astype(np.float32) if dtype == torch.float32 else data
    # float64: the same numbers; float32: a prepared Mixture sums in another order than a
    # one-shot call on an array, so to a few float32 roundings of values about 1.
    tol = 8 * np.finfo(np.float32).eps if dtype == torch.float32 else 1e-15
    for i in range(6):
        want = ledkde.denoise(rows(x[i:i + 1].numpy()), rows(d), float(sigma[i]) ** 2)
        np.testing.assert_allclose(out[i:i + 1].numpy().reshape(1, -1), want, rtol=0, atol=tol)


def test_one_engine_pass_per_distinct_sigma(monkeypatch):
    den = Denoiser(images())
    calls = []
    real = type(den._engine).denoise
    monkeypatch.setattr(type(den._engine), "denoise", lambda self, y, t: calls.append(len(y)) or real(self, y, t))
    den(torch.from_numpy(images(8, seed=2)), torch.tensor([0.5, 1.0] * 4, dtype=torch.float64))
    assert sorted(calls) == [4, 4]
    calls.clear()
    den(torch.from_numpy(images(8, seed=2)), 0.7)
    assert calls == [8]


def test_rows_and_a_mixture_give_the_same_denoiser():
    data = rows(images())
    x = torch.from_numpy(rows(images(3, seed=4)))
    a = Denoiser(data)(x, 0.4)
    b = Denoiser(ledkde.Mixture(data))(x, 0.4)
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    # (a one-shot call on an array sums in another order than a prepared Mixture)
    np.testing.assert_allclose(a.numpy(), ledkde.denoise(x.numpy(), data, 0.16), rtol=0, atol=1e-15)


def test_the_local_denoisers_take_channels_first_images():
    data = images()
    x = torch.from_numpy(images(3, seed=5))
    for equivariant in (False, True):
        den = Denoiser.local(data, patch=3, equivariant=equivariant)
        local = ledkde.Local(data.transpose(0, 2, 3, 1).copy(), patch=3, equivariant=equivariant)
        want = ledkde.denoise(x.numpy().transpose(0, 2, 3, 1).reshape(3, -1), local, 0.25)
        got = den(x, 0.5).numpy().transpose(0, 2, 3, 1).reshape(3, -1)
        np.testing.assert_array_equal(got, want)


def test_the_smoothed_denoiser_is_x_plus_t_times_the_smoothed_score():
    data = rows(images())
    x = torch.from_numpy(rows(images(3, seed=6)))
    got = Denoiser(data, bandwidth=0.05, n_kernel=4, seed=3)(x, 0.5)
    want = x.numpy() + 0.25 * ledkde.smoothed_score(x.numpy(), data, 0.25, bandwidth=0.05, n_kernel=4, seed=3)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-15)


def test_bad_input_names_the_argument():
    den = Denoiser(images())
    with pytest.raises(ValueError, match=r"^x: expected \(B, 2, 4, 3\)"):
        den(torch.zeros(2, 3, 4, 3, dtype=torch.float64), 1.0)
    with pytest.raises(TypeError, match="^x: expected float32 or float64"):
        den(torch.zeros(2, 2, 4, 3, dtype=torch.int64), 1.0)
    with pytest.raises(ValueError, match=r"^sigma: expected a number or a \(2,\) tensor"):
        den(torch.zeros(2, 2, 4, 3, dtype=torch.float64), torch.ones(3))
    with pytest.raises(ValueError, match="^x: a tensor on 'meta'; the engine runs on the CPU"):
        den(torch.zeros(2, 2, 4, 3, dtype=torch.float64, device="meta"), 1.0)
    with pytest.raises(TypeError, match="^estimator: a smoothing option needs bandwidth > 0"):
        Denoiser(images(), estimator="plain")


def test_edm_attributes():
    data = rows(images())
    den = Denoiser(data)
    t_max = float(((data - data.mean(0)) ** 2).sum(1).max())
    assert den.sigma_max == pytest.approx(np.sqrt(max(1.0, 10 * data.var(0).max(), t_max)))
    assert den.sigma_min == pytest.approx(1e-2 * ledkde.median_nn_distance(data))
    assert float(den.round_sigma(0.123)) == 0.123


# --------------------------------------------------------------------------- gradients
def jacobian_formula(y, data, sigma, logw=None):
    """J = Cov_w(x_n) / sigma^2 and dD/dsigma, from the posterior weights written out."""
    t = sigma**2
    logits = -((y[None, :] - data) ** 2).sum(1) / (2 * t) + (0 if logw is None else logw)
    w = np.exp(logits - logits.max())
    w /= w.sum()
    m = w @ data
    cov = (data * w[:, None]).T @ data - np.outer(m, m)
    d2 = ((y[None, :] - data) ** 2).sum(1)
    dsig = ((data - m) * (w * (d2 - w @ d2))[:, None]).sum(0) / sigma**3
    return cov / t, dsig


@pytest.mark.parametrize("weighted", [False, True])
def test_the_gradients_are_the_jacobian_formula_in_float64(weighted):
    r = np.random.default_rng(7)
    data = rows(images(80, seed=8))
    logw = r.normal(size=80) if weighted else None
    den = Denoiser(ledkde.Mixture(data, log_weights=logw))
    y = rows(images(4, seed=9)) * 1.2
    sig = np.array([0.2, 0.35, 0.2, 0.5])
    x = torch.from_numpy(y).requires_grad_(True)
    sigma = torch.from_numpy(sig).requires_grad_(True)
    g = torch.from_numpy(r.normal(size=y.shape))
    (den(x, sigma) * g).sum().backward()
    for i in range(4):
        jac, dsig = jacobian_formula(y[i], data, sig[i], logw)
        scale = np.abs(jac).max() * np.abs(g[i].numpy()).max()
        np.testing.assert_allclose(x.grad[i].numpy(), jac @ g[i].numpy(), rtol=0, atol=1e-10 * scale)
        assert sigma.grad[i].item() == pytest.approx(dsig @ g[i].numpy(), rel=1e-10, abs=1e-12)


def test_gradcheck_against_finite_differences():
    den = Denoiser(images(60))
    x = torch.from_numpy(images(2, seed=11)).requires_grad_(True)
    sigma = torch.tensor([0.4, 0.9], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b: den(a, b), (x, sigma), eps=1e-6, atol=1e-6)
    s = torch.tensor(0.6, dtype=torch.float64, requires_grad=True)  # one sigma for the batch: summed
    assert torch.autograd.gradcheck(lambda a, b: den(a, b), (x, s), eps=1e-6, atol=1e-6)


def test_float32_gradients_agree_with_float64_to_float32_rounding():
    data = rows(images(80, seed=12))
    y = rows(images(3, seed=13))
    g = np.random.default_rng(1).normal(size=y.shape)
    out = []
    for dt in (torch.float32, torch.float64):
        x = torch.from_numpy(y).to(dt).requires_grad_(True)
        (Denoiser(data.astype(np.float32) if dt == torch.float32 else data)(x, 0.3) * torch.from_numpy(g).to(dt)).sum().backward()
        out.append(x.grad.double().numpy())
    # float32 inputs are rounded at 6e-8 of their size and the logits |x - x_n|^2 / 2t (t = 0.09,
    # |x - x_n|^2 up to ~8) magnify that by ~50 in the weights: 1e-5 of the largest entry.
    np.testing.assert_allclose(out[0], out[1], rtol=0, atol=1e-5 * np.abs(out[1]).max())


class _Streamed:
    """Points that only give their rows by index (what a ShardedMixture offers): vjp takes
    its NumPy pass over them, in blocks."""

    def __init__(self, data, logw=None):
        self.data, self.n, self._log_weights = data, len(data), logw
        self.has_weights = logw is not None

    def _rows(self, idx):
        return self.data[idx]


@pytest.mark.parametrize("weighted", [False, True])
def test_the_compiled_vjp_is_the_blocked_numpy_pass(monkeypatch, weighted):
    import ledkde.torch as lt

    # 70 rows (two of the compiled pass's blocks of 64) against 2,600 points (11 tiles of
    # 256, two shards per block), against the NumPy pass in blocks of 7 rows; threads give
    # identical bits; a float32 Mixture gives the float64 products of its values.
    r = np.random.default_rng(14)
    data = rows(images(2600, seed=14))
    logw = r.normal(size=2600) if weighted else None
    y, v = rows(images(70, seed=15)) * 1.1, r.normal(size=(70, 24))
    mix = ledkde.Mixture(data, log_weights=logw)
    whole = vjp(y, mix, 0.3, v)
    monkeypatch.setattr(lt, "_BLOCK", 70 * 7)
    parts = vjp(y, _Streamed(data, None if logw is None else logw - np.logaddexp.reduce(logw)), 0.3, v)
    for a, b in zip(whole, parts):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * np.abs(b).max())
    call = lambda th: lt._core.denoise_vjp(data, logw, mix._centre, y, v, 0.09,  # noqa: E731
                                           lt._checks.pass_options(lt._core, th, None))
    for a, b in zip(call(1), call(2)):
        np.testing.assert_array_equal(a, b)
    d32 = data.astype(np.float32)
    got = vjp(y, ledkde.Mixture(d32, log_weights=logw), 0.3, v)
    want = vjp(y, d32.astype(np.float64), 0.3, v) if logw is None else \
        vjp(y, ledkde.Mixture(d32.astype(np.float64), log_weights=logw), 0.3, v)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-11 * np.abs(b).max())


def test_backward_of_a_smoothed_or_local_denoiser_is_refused_clearly():
    x = torch.from_numpy(images(2, seed=3)).requires_grad_(True)
    for den in (Denoiser(images(), bandwidth=0.05), Denoiser.local(images(), patch=3)):
        with pytest.raises(RuntimeError, match="^backward: the exact Jacobian is implemented for the empirical"):
            den(x, 0.5).sum().backward()


# --------------------------------------------------------------------------- the operator
def test_the_operator_passes_opcheck():
    den = Denoiser(images())
    x = torch.from_numpy(images(3, seed=16))
    torch.library.opcheck(torch.ops.ledkde.denoise.default, (x, torch.tensor([0.5, 0.5, 1.0], dtype=torch.float64),
                                                             den._handle))


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # raised inside PyTorch's compiler
def test_torch_compile_captures_a_function_calling_the_denoiser_whole():
    den = Denoiser(images())
    x = torch.from_numpy(images(3, seed=17))

    def euler_step(x):
        d = (x - den(x, 0.8)) / 0.8
        return x + d * (0.5 - 0.8)

    compiled = torch.compile(euler_step, fullgraph=True)
    np.testing.assert_array_equal(compiled(x).numpy(), euler_step(x).numpy())


# --------------------------------------------------------------------------- VP parametrization
def test_vp_predictions_are_consistent_with_the_ve_denoiser():
    den = Denoiser(images())
    xt = torch.from_numpy(images(3, seed=18))
    abar = torch.tensor([0.9, 0.5, 0.1], dtype=torch.float64)
    x0 = vp_prediction(den, xt, abar, "sample")
    a, b = abar.sqrt()[:, None, None, None], (1 - abar).sqrt()[:, None, None, None]
    np.testing.assert_array_equal(x0.numpy(), den(xt / a, (b / a).flatten()).numpy())
    eps = vp_prediction(den, xt, abar, "epsilon")
    np.testing.assert_allclose((a * x0 + b * eps).numpy(), xt.numpy(), rtol=0, atol=1e-14)
    v = vp_prediction(den, xt, abar, "v_prediction")
    np.testing.assert_allclose(v.numpy(), (a * eps - b * x0).numpy(), rtol=0, atol=1e-14)
    with pytest.raises(ValueError, match="^alpha_bar: must lie in"):
        vp_prediction(den, xt, 1.0)


# --------------------------------------------------------------------------- the field's samplers
def k_sampling(monkeypatch):
    """k_diffusion.sampling from the installed k-diffusion wheel. Its package __init__ imports
    every part of k-diffusion (CLIP, kornia, torchvision, ...); the sampling module itself
    needs only scipy, torchdiffeq, torchsde, tqdm and utils.append_dims, so it is loaded on
    its own, with a stand-in for k_diffusion.utils that holds that one function."""
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None:
        pytest.skip("k-diffusion is not installed (CI installs it: .ci/run)")
    root = Path(spec.submodule_search_locations[0])
    pkg = types.ModuleType("k_diffusion")
    pkg.__path__ = [str(root)]
    utils = types.ModuleType("k_diffusion.utils")
    utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
    monkeypatch.setitem(sys.modules, "k_diffusion", pkg)
    monkeypatch.setitem(sys.modules, "k_diffusion.utils", utils)
    mod_spec = importlib.util.spec_from_file_location("k_diffusion.sampling", root / "sampling.py")
    mod = importlib.util.module_from_spec(mod_spec)
    monkeypatch.setitem(sys.modules, "k_diffusion.sampling", mod)
    mod_spec.loader.exec_module(mod)
    return mod


def own_loop(name, x, sigmas, data):
    """The published update rules of k-diffusion's samplers, with ledkde.denoise on rows."""
    D = lambda x, s: ledkde.denoise(x, data, s * s)  # noqa: E731
    old = None
    for i in range(len(sigmas) - 1):
        s, s_next = sigmas[i], sigmas[i + 1]
        den = D(x, s)
        if name == "euler" or (name == "heun" and s_next == 0):
            x = x + (x - den) / s * (s_next - s)
        elif name == "heun":
            x2 = x + (x - den) / s * (s_next - s)
            x = x + ((x - den) / s + (x2 - D(x2, s_next)) / s_next) / 2 * (s_next - s)
        else:  # dpmpp_2m
            h = np.log(s) - np.log(s_next) if s_next > 0 else np.inf
            if old is None or s_next == 0:
                use = den
            else:
                r = (np.log(sigmas[i - 1]) - np.log(s)) / h
                use = (1 + 1 / (2 * r)) * den - 1 / (2 * r) * old
            x = (s_next / s) * x - np.expm1(-h) * use
            old = den
    return x


@pytest.mark.parametrize("name", ["euler", "heun", "dpmpp_2m"])
def test_k_diffusion_samplers_drive_the_denoiser(monkeypatch, name):
    ks = k_sampling(monkeypatch)
    data = rows(images())
    den = Denoiser(data)
    sigmas = ks.get_sigmas_karras(12, den.sigma_min, den.sigma_max, rho=7.0, device="cpu").double()
    x0 = torch.from_numpy(np.random.default_rng(19).normal(size=(5, data.shape[1]))) * sigmas[0]
    got = getattr(ks, f"sample_{name}")(den, x0, sigmas, disable=True)
    want = own_loop(name, x0.numpy(), sigmas.numpy(), data)
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=1e-10)


def test_edms_sampler_formula_with_the_denoisers_attributes_is_k_diffusions_heun(monkeypatch):
    # EDM's deterministic sampler (Karras et al., Algorithm 2 with S_churn = 0) reads
    # net.sigma_min, net.sigma_max and net.round_sigma.
    ks = k_sampling(monkeypatch)
    den = Denoiser(rows(images()))
    n, rho = 10, 7.0
    i = torch.arange(n, dtype=torch.float64)
    t = (den.sigma_max ** (1 / rho) + i / (n - 1) * (den.sigma_min ** (1 / rho) - den.sigma_max ** (1 / rho))) ** rho
    t = torch.cat([den.round_sigma(t), torch.zeros(1, dtype=torch.float64)])
    x = torch.from_numpy(np.random.default_rng(20).normal(size=(4, 24))) * t[0]
    start = x.clone()
    for k in range(n):
        d = (x - den(x, t[k])) / t[k]
        x_next = x + (t[k + 1] - t[k]) * d
        if k < n - 1:
            x_next = x + (t[k + 1] - t[k]) * (0.5 * d + 0.5 * (x_next - den(x_next, t[k + 1])) / t[k + 1])
        x = x_next
    want = ks.sample_heun(den, start, ks.get_sigmas_karras(n, den.sigma_min, den.sigma_max, rho), disable=True)
    np.testing.assert_allclose(x.numpy(), want.numpy(), rtol=0, atol=1e-10)


def test_torchdiffeq_integrates_the_probability_flow_ode(monkeypatch):
    odeint = pytest.importorskip("torchdiffeq", reason="torchdiffeq is not installed (CI installs it)").odeint
    data = rows(images())
    den = Denoiser(data)
    sig = np.geomspace(den.sigma_max, den.sigma_min, 15)
    x0 = torch.from_numpy(np.random.default_rng(21).normal(size=(3, 24))) * sig[0]
    path = odeint(lambda s, x: (x - den(x, s)) / s, x0, torch.from_numpy(sig), method="euler")
    np.testing.assert_allclose(path[-1].numpy(), own_loop("euler", x0.numpy(), sig, data), rtol=0, atol=1e-10)


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction", "sample"])
def test_a_diffusers_ddim_loop_runs_with_the_denoiser_as_its_model(prediction_type):
    diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (CI installs it)")
    data = rows(images())
    den = Denoiser(data)
    sched = diffusers.DDIMScheduler(clip_sample=False, prediction_type=prediction_type)
    sched.set_timesteps(20)
    abar = sched.alphas_cumprod.double()
    x = torch.from_numpy(np.random.default_rng(22).normal(size=(4, 24)))
    own = x.numpy().copy()
    for t in sched.timesteps:
        sample = sched.scale_model_input(x, t)  # DDIM leaves it unchanged
        x = sched.step(vp_prediction(den, sample, abar[t], prediction_type), t, x).prev_sample
        # DDIM (eta = 0) written out: x0 from the VE denoiser, then the step to the previous time.
        a = float(abar[t])
        prev = int(t) - sched.config.num_train_timesteps // 20
        a_prev = float(abar[prev]) if prev >= 0 else 1.0
        x0 = ledkde.denoise(own / np.sqrt(a), data, (1 - a) / a)
        eps = (own - np.sqrt(a) * x0) / np.sqrt(1 - a)
        own = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev) * eps
    # The scheduler forms its coefficients (1 - abar, square roots) in float32, its table's type.
    np.testing.assert_allclose(x.numpy(), own, rtol=0, atol=1e-6)


@pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")  # diffusers' own
def test_a_diffusers_euler_loop_with_scale_model_input_is_k_diffusions_euler():
    # EulerDiscreteScheduler keeps the sample in the variance-exploding scale and gives the
    # model x / sqrt(sigma^2 + 1): that is x_t with abar = 1 / (1 + sigma^2).
    diffusers = pytest.importorskip("diffusers", reason="diffusers is not installed (CI installs it)")
    data = rows(images())
    den = Denoiser(data)
    sched = diffusers.EulerDiscreteScheduler()
    sched.set_timesteps(15)
    sigmas = sched.sigmas.double().numpy()
    x = torch.from_numpy(np.random.default_rng(23).normal(size=(4, 24))) * float(sched.init_noise_sigma)
    start = x.numpy().copy()
    for i, t in enumerate(sched.timesteps):
        model_in = sched.scale_model_input(x, t)
        x = sched.step(vp_prediction(den, model_in, 1 / (1 + sigmas[i] ** 2), "epsilon"), t, x).prev_sample
    want = own_loop("euler", start, sigmas, data)
    # The scheduler steps in float32 (it casts the sample), so to float32 rounding of values about 10.
    np.testing.assert_allclose(x.numpy(), want, rtol=0, atol=1e-4 * max(1.0, np.abs(start).max()))
