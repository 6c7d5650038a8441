// The reverse-diffusion step (SPEC section 1, "Reverse-time sampler"),
// written once for every driver: the CPU sampler (cpp/src/sampler_cpu.cpp,
// which also drives data sharded over machines through its row source), the
// CUDA kernels (cuda/sampler_cuda.cu) and the bindings. Step k goes from t_k
// to t_{k+1}, D = t_k - t_{k+1}, with the score at grid time k:
//   euler_maruyama: y += D s + sqrt(D) z_k      (z_k: stream purpose kNoise, step k)
//   ode_euler:      y += (D / 2) s
//   ode_heun:       y~ = y + (D / 2) s;  y += (D / 4) (s + s(y~, t_{k+1}))
// and the run ends with y_K + t_min s(y_K) when denoise_last is set.
// Kernel draws of the score at step k use stream evaluation 2k, Heun's
// corrector 2k + 1, the final denoising 2K.
#pragma once

#include <cmath>
#include <cstdint>

#include "ledkde/host_device.h"
#include "ledkde/philox.h"

namespace ledkde {

// The stream evaluation numbers of a run's score evaluations.
LEDKDE_HD uint32_t eval_of_step(int64_t k) { return static_cast<uint32_t>(2 * k); }
LEDKDE_HD uint32_t eval_of_corrector(int64_t k) { return static_cast<uint32_t>(2 * k + 1); }
LEDKDE_HD uint32_t eval_of_final(int64_t K) { return static_cast<uint32_t>(2 * K); }

// One coordinate of the updates (associated as written: the CPU, the GPU and
// the bindings give the same bits).
LEDKDE_HD double em_update(double y, double s, double D, double sqrt_D, double z) { return y + (D * s + sqrt_D * z); }
LEDKDE_HD double half_step(double y, double s, double D) { return y + 0.5 * D * s; }  // ode_euler, Heun's predictor
LEDKDE_HD double heun_update(double y, double s, double s2, double D) { return y + 0.25 * D * (s + s2); }
LEDKDE_HD double tweedie(double y, double s, double t_min) { return y + t_min * s; }

// The cumulative weights that start_component searches: cdf[j] = c_j / c_{n-1}
// with c the running sum of a_j = exp(logw_j) in component order, so that
// cdf[n-1] = 1 exactly and a component of weight 0 repeats its predecessor's
// value. (Host code: made once per run.)
inline void weights_cdf(const double* logw, int64_t n, double* cdf) {
  double c = 0.0;
  for (int64_t j = 0; j < n; ++j) cdf[j] = (c += std::exp(logw[j]));
  for (int64_t j = 0; j < n; ++j) cdf[j] /= c;
}

// The component an init="empirical" run starts sample `sample` at: with equal
// weights (cdf null) the stream's index mod n; with weights, the first j whose
// cdf[j] (weights_cdf) exceeds the stream's uniform u in [0, 1) (the top 53
// bits of the same counter), so that component j is chosen with probability
// a_j and a component of weight 0 never is.
LEDKDE_HD int64_t start_component(uint64_t seed, uint32_t sample, int64_t n, const double* cdf) {
  if (!cdf) return static_cast<int64_t>(stream_index(seed, sample, static_cast<uint64_t>(n)));
  const Philox4 b = stream_bits(seed, 0, sample, 0, kInitIndex, 0);
  const uint64_t bits = (static_cast<uint64_t>(b.v[1]) << 32) | b.v[0];
  const double u = static_cast<double>(bits >> 11) * 1.1102230246251565e-16;  // 2^-53
  int64_t lo = 0, hi = n - 1;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo) / 2;
    if (cdf[mid] > u) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

// The starting standard deviation of a sample: sqrt(t_0) for init="gaussian"
// (N(0, t_0 I)); for init="empirical", component j's sqrt(s2_j + t_0) (an
// exact draw of p_{t_0}; var null: s2_j = 0).
LEDKDE_HD double start_sd(double t0, int64_t j, const double* var) {
  return std::sqrt((j >= 0 && var ? var[j] : 0.0) + t0);
}

}  // namespace ledkde
