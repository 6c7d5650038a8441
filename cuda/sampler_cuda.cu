// Whole reverse-diffusion runs on the GPU, with the update rules, the start
// and the random-stream counters of ledkde/sampler_step.h (shared with
// sampler_cpu.cpp): the samples stay on the device
// for the whole run; the host launches the kernels of each step and polls
// between steps (progress, Ctrl-C). Samples are processed in chunks so that
// the (samples x draws) rows of one evaluation stay bounded.
#include "ledkde/sampler_step.h"
#include "pass_cuda.cuh"

namespace ledkde::cuda {

namespace {

constexpr int64_t kMaxRows = 1 << 16;  // rows of one evaluation (samples x draws)

// comp (qb,): each sample's starting component (-1: init="gaussian"); sd
// (qb,): its starting standard deviation (start_component, start_sd, made on
// the host).
template <class T>
__global__ void init_kernel(double* y, int64_t qb, int64_t d, uint32_t index0, uint64_t seed,
                            const int64_t* __restrict__ comp, const double* __restrict__ sd,
                            const T* __restrict__ mu, const double* __restrict__ centre) {
  const int64_t nb = (d + 3) / 4;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= qb * nb) return;
  const int64_t i = e / nb, b = e % nb;
  const uint32_t idx = index0 + static_cast<uint32_t>(i);
  double z[4];
  stream_normals4(seed, static_cast<uint32_t>(b), idx, 0, kInitNoise, 0, z);
  const int64_t j = comp[i];
  for (int k = 0; k < 4 && 4 * b + k < d; ++k) {
    const int64_t c = 4 * b + k;
    const double v = j >= 0 ? static_cast<double>(mu[j * d + c]) + centre[c] : 0.0;
    y[i * d + c] = v + sd[i] * z[k];
  }
}

// Euler-Maruyama: y += D s + sqrt(D) z_k.
__global__ void em_kernel(double* y, const double* __restrict__ s, int64_t qb, int64_t d, double D,
                          uint32_t index0, uint64_t seed, uint32_t step) {
  const int64_t nb = (d + 3) / 4;
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= qb * nb) return;
  const int64_t i = e / nb, b = e % nb;
  double z[4];
  stream_normals4(seed, static_cast<uint32_t>(b), index0 + static_cast<uint32_t>(i), step, kNoise, 0, z);
  const double sq = sqrt(D);
  for (int k = 0; k < 4 && 4 * b + k < d; ++k) {
    const int64_t c = i * d + 4 * b + k;
    y[c] = em_update(y[c], s[c], D, sq, z[k]);
  }
}

// The deterministic updates of sampler_step.h, one coordinate per thread:
// out = in + (D / 2) s (ode_euler, Heun's predictor), out = in + (D / 4) (s +
// s2) (Heun), out = in + t_min s (the final denoising: s2 null, D = t_min).
enum Update : int { kHalfStep = 0, kHeun = 1, kTweedie = 2 };
__global__ void update_kernel(double* out, const double* __restrict__ in, const double* __restrict__ s,
                              const double* __restrict__ s2, double D, int update, int64_t count) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= count) return;
  if (update == kHalfStep) out[e] = half_step(in[e], s[e], D);
  else if (update == kHeun) out[e] = heun_update(in[e], s[e], s2[e], D);
  else out[e] = tweedie(in[e], s[e], D);
}


}  // namespace

// out[e] = y[e] in the output precision (device to device).
template <class T>
__global__ void store_kernel(const double* __restrict__ y, int64_t count, T* out) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < count) out[e] = static_cast<T>(y[e]);
}

template <class T>
bool sample_cuda(const DeviceMixture<T>& mix, int64_t n_samples, const SamplerConfig& cfg, T* out, T* trajectory,
                 const PollFn& poll, bool on_device, double* mc_error) {
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  const int64_t d = mix.d, K = static_cast<int64_t>(cfg.times.size()) - 1;
  const int64_t max_copies = cfg.max_draws(mix.has_variances);
  const int64_t chunk = std::max<int64_t>(1, kMaxRows / max_copies);
  const int64_t evals = K * (cfg.method == kOdeHeun ? 2 : 1) + (cfg.denoise_last ? 1 : 0);
  const int64_t nchunks = (n_samples + chunk - 1) / chunk;
  const int64_t total = nchunks * evals;
  int64_t done = 0;
  SmoothOptions sm = cfg.smooth;
  const int64_t rows_cap = std::min(chunk, n_samples);
  SmoothScratch<T> scratch(rows_cap, max_copies, cfg.smooth.n_kernel, d, cfg.smooth.orthogonal);
  const size_t cap = static_cast<size_t>(rows_cap * d);
  Buffer<double> y(cap), y2(cap), s(cap), s2(cap), rel(mc_error ? rows_cap : 0), sd_dev(rows_cap);
  Buffer<int64_t> comp_dev(rows_cap);
  std::vector<int64_t> comp(rows_cap);
  std::vector<double> sd(rows_cap);
  // init="empirical" with weights: the cumulative weights start_component searches.
  std::vector<double> cdf;
  if (cfg.init == kInitEmpirical && !mix.params.logw.empty()) {
    cdf.resize(static_cast<size_t>(mix.n));
    weights_cdf(mix.params.logw.data(), mix.n, cdf.data());
  }
  const double* var = mix.params.var.empty() ? nullptr : mix.params.var.data();
  std::vector<double> host(cap), rel_host(mc_error ? rows_cap : 0);
  // Per error slot, the sum over samples of the relative standard errors
  // (summed on the host in sample order: the same whatever the chunking).
  const int64_t slots = cfg.error_slots();
  std::vector<double> err_sums(mc_error ? slots : 0, 0.0);
  auto eval = [&](const double* at, int64_t qb, int64_t grid, uint32_t evaln, int64_t slot, double* res,
                  uint32_t index0) {
    sm.bandwidth = cfg.bandwidth[grid];
    sm.eval = evaln;
    SmoothRowOutputs o;
    o.score = res;
    if (mc_error) o.relative_se = rel.get();
    smoothed_rows_cuda(mix, at, qb, cfg.times[grid], sm, index0, scratch, o);
    if (mc_error) {
      rel.download(rel_host.data(), static_cast<size_t>(qb));
      for (int64_t i = 0; i < qb; ++i) err_sums[slot] += rel_host[i];
    }
    ++done;
  };
  // Writes the chunk's states (qb samples from i0) to dst (rows of n_samples).
  auto store = [&](int64_t i0, int64_t qb, T* dst) {
    const int64_t count = qb * d;
    if (on_device) {
      store_kernel<T><<<grid_of(count, 256), 256>>>(y.get(), count, dst + i0 * d);
      check(cudaGetLastError(), "store_kernel launch");
      return;
    }
    y.download(host.data(), static_cast<size_t>(count));
    for (int64_t e = 0; e < count; ++e) dst[i0 * d + e] = static_cast<T>(host[e]);
  };
  auto keep = [&](int64_t k, int64_t i0, int64_t qb) {
    if (!trajectory) return;
    for (size_t slot = 0; slot < cfg.keep.size(); ++slot)
      if (cfg.keep[slot] == k) store(i0, qb, trajectory + static_cast<int64_t>(slot) * n_samples * d);
  };
  for (int64_t i0 = 0; i0 < n_samples; i0 += chunk) {
    const int64_t qb = std::min(chunk, n_samples - i0);
    const uint32_t index0 = static_cast<uint32_t>(i0);
    const int64_t count = qb * d, nb4 = qb * ((d + 3) / 4);
    for (int64_t i = 0; i < qb; ++i) {
      comp[i] = cfg.init == kInitEmpirical
                    ? start_component(cfg.smooth.seed, index0 + static_cast<uint32_t>(i), mix.n,
                                      cdf.empty() ? nullptr : cdf.data())
                    : -1;
      sd[i] = start_sd(cfg.times[0], comp[i], var);
    }
    comp_dev.upload(comp.data(), static_cast<size_t>(qb));
    sd_dev.upload(sd.data(), static_cast<size_t>(qb));
    init_kernel<T><<<grid_of(nb4, 256), 256>>>(y.get(), qb, d, index0, cfg.smooth.seed, comp_dev.get(), sd_dev.get(),
                                               mix.mu_dev, mix.centre_dev);
    check(cudaGetLastError(), "init_kernel launch");
    keep(0, i0, qb);
    for (int64_t k = 0; k < K; ++k) {
      const double D = cfg.times[k] - cfg.times[k + 1];
      eval(y.get(), qb, k, eval_of_step(k), k, s.get(), index0);
      if (cfg.method == kEulerMaruyama) {
        em_kernel<<<grid_of(nb4, 256), 256>>>(y.get(), s.get(), qb, d, D, index0, cfg.smooth.seed, static_cast<uint32_t>(k));
      } else if (cfg.method == kOdeEuler) {
        update_kernel<<<grid_of(count, 256), 256>>>(y.get(), y.get(), s.get(), nullptr, D, kHalfStep, count);
      } else {
        update_kernel<<<grid_of(count, 256), 256>>>(y2.get(), y.get(), s.get(), nullptr, D, kHalfStep, count);
        eval(y2.get(), qb, k + 1, eval_of_corrector(k), k, s2.get(), index0);
        update_kernel<<<grid_of(count, 256), 256>>>(y.get(), y.get(), s.get(), s2.get(), D, kHeun, count);
      }
      check(cudaGetLastError(), "sampler step launch");
      keep(k + 1, i0, qb);
      check(cudaDeviceSynchronize(), "sampler step");
      if (poll && !poll(done, total)) return false;
    }
    if (cfg.denoise_last) {
      eval(y.get(), qb, K, eval_of_final(K), K, s.get(), index0);
      update_kernel<<<grid_of(count, 256), 256>>>(y.get(), y.get(), s.get(), nullptr, cfg.times[K], kTweedie, count);
      check(cudaGetLastError(), "denoise launch");
    }
    store(i0, qb, out);
  }
  check(cudaDeviceSynchronize(), "sampler run");
  if (mc_error) cfg.finish_errors(err_sums.data(), n_samples, mc_error);
  if (poll) poll(done, total);
  return true;
}

template bool sample_cuda(const DeviceMixture<float>&, int64_t, const SamplerConfig&, float*, float*, const PollFn&,
                          bool, double*);
template bool sample_cuda(const DeviceMixture<double>&, int64_t, const SamplerConfig&, double*, double*,
                          const PollFn&, bool, double*);

}  // namespace ledkde::cuda
