// Whole reverse-diffusion runs on the CPU (SPEC section 1, "Reverse-time
// sampler"). Samples are independent, so the work is split into tiles of
// samples and each worker runs every step of its tile: no barrier per step,
// no Python per step. The tiles run on parallel_for's workers (the calling
// thread among them, which also reports progress and looks for Ctrl-C).
//
// Step k goes from t_k to t_{k+1}, D = t_k - t_{k+1}, score s at t_k with the
// bandwidth of grid point k; kernel draws use stream step ("evaluation") 2k,
// the Heun corrector 2k + 1, the final denoising 2K.
//   euler_maruyama: y += D s + sqrt(D) z_k       (z_k: purpose kNoise, step k)
//   ode_euler:      y += (D / 2) s
//   ode_heun:       y~ = y + (D / 2) s;  y += (D / 4) (s + s(y~, t_{k+1}))
#include <atomic>
#include <cmath>

#include "ledkde/philox.h"
#include "parallel.h"
#include "pass_cpu.h"

namespace ledkde {

template <class T>
bool sample_cpu(const Mixture<T>& mix, int64_t n_samples, const SamplerConfig& cfg, T* out,
                T* trajectory, const PassOptions& opt_in, const PollFn& poll, double* mc_error) {
  const int64_t d = mix.d;
  // Hundreds of passes over the same mixture: pack it for the tile products.
  TilePack<T> pack;
  const PassOptions opt = with_tile_pack(mix, opt_in, pack);
  const int64_t K = static_cast<int64_t>(cfg.times.size()) - 1;
  // One LogitParams per grid time (they depend on t only).
  std::vector<LogitParams<T>> lps;
  lps.reserve(K + 1);
  for (int64_t k = 0; k <= K; ++k) lps.push_back(make_logit_params(mix, cfg.times[k]));

  const SmoothOptions sm0 = cfg.smooth;
  // Tiles of samples: at most tile_q rows, and at most half the samples, so
  // that a run of few samples still makes two tiles (64 samples kept one core
  // idle), but not below kMinSamplerRows (thinner tiles read the components
  // from memory more often than they compute; 64-row tiles for 256 samples
  // measured 12% slower than 128-row ones). Fixed by the sizes alone: the
  // same tiles, so the same results, for any number of threads.
  constexpr int64_t kMinSamplerRows = 32;
  const int64_t spread = std::max(kMinSamplerRows, (n_samples + 1) / 2);
  const int64_t tq = std::max<int64_t>(1, std::min(opt.tile_q, spread) / cfg.max_draws(!mix.var.empty()));
  const int64_t ntiles = (n_samples + tq - 1) / tq;
  // Per tile and error slot: the sum over the tile's samples of the relative
  // standard errors (summed over tiles in tile order at the end: the result
  // does not depend on the thread count).
  const int64_t slots = cfg.error_slots();
  std::vector<double> err_sums(mc_error ? static_cast<size_t>(ntiles * slots) : 0, 0.0);
  const int64_t evals_per_step = cfg.method == kOdeHeun ? 2 : 1;
  const int64_t total = ntiles * (K * evals_per_step + (cfg.denoise_last ? 1 : 0));

  // Progress and Ctrl-C: `poll` is asked by the calling thread (worker 0 of
  // parallel_for) at most every 20 ms, between tiles of components of its
  // passes; returning false stops every worker within one such tile.
  std::atomic<int64_t> done{0};
  StopFlag stop([&] { return poll && !poll(done.load(), total); });
  PassOptions opt_stop = opt;
  opt_stop.stop = &stop;

  auto run_tile = [&](int64_t tile) {
    const int64_t i0 = tile * tq, qb = std::min(tq, n_samples - i0);
    const uint32_t index0 = static_cast<uint32_t>(i0);
    Workspace<T> ws;
    std::vector<double> y(qb * d), s(qb * d), s2, y2, z(d), rel(mc_error ? qb : 0);
    // Start: N(0, t_0 I), or an exact draw of p_{t_0} in the empirical case.
    const double sd0 = std::sqrt(cfg.times[0]);
    for (int64_t i = 0; i < qb; ++i) {
      const uint32_t idx = index0 + static_cast<uint32_t>(i);
      stream_normal_vector(cfg.smooth.seed, idx, 0, kInitNoise, 0, d, z.data());
      double* yi = y.data() + i * d;
      for (int64_t k = 0; k < d; ++k) yi[k] = sd0 * z[k];
      if (cfg.init == kInitEmpirical) {
        const int64_t j = static_cast<int64_t>(stream_index(cfg.smooth.seed, idx, mix.n));
        for (int64_t k = 0; k < d; ++k)
          yi[k] += static_cast<double>(mix.mu[j * d + k]) + mix.centre[k];
      }
    }
    auto keep = [&](int64_t k) {
      if (!trajectory) return;
      for (size_t slot = 0; slot < cfg.keep.size(); ++slot)
        if (cfg.keep[slot] == k)
          for (int64_t e = 0; e < qb * d; ++e)
            trajectory[(static_cast<int64_t>(slot) * n_samples + i0) * d + e] = static_cast<T>(y[e]);
    };
    // The score at `at` for grid time `grid`, stream evaluation evaln; its
    // relative errors go to error slot `slot`.
    auto eval = [&](const std::vector<double>& at, int64_t grid, uint32_t evaln, int64_t slot,
                    std::vector<double>& res) {
      SmoothOptions sm = sm0;
      sm.bandwidth = cfg.bandwidth[grid];
      sm.eval = evaln;
      res.resize(qb * d);
      SmoothRowOutputs ro;
      ro.score = res.data();
      if (mc_error) ro.relative_se = rel.data();
      smoothed_rows(mix, lps[grid], at.data(), qb, index0, sm, ws, opt_stop, ro);
      if (mc_error)
        for (int64_t i = 0; i < qb; ++i) err_sums[tile * slots + slot] += rel[i];
      done.fetch_add(1);
    };
    keep(0);
    for (int64_t k = 0; k < K; ++k) {
      if (stop.poll()) return;
      const double D = cfg.times[k] - cfg.times[k + 1];
      eval(y, k, static_cast<uint32_t>(2 * k), k, s);
      if (cfg.method == kEulerMaruyama) {
        const double sq = std::sqrt(D);
        for (int64_t i = 0; i < qb; ++i) {
          stream_normal_vector(cfg.smooth.seed, index0 + static_cast<uint32_t>(i), static_cast<uint32_t>(k),
                               kNoise, 0, d, z.data());
          for (int64_t c = 0; c < d; ++c) y[i * d + c] += D * s[i * d + c] + sq * z[c];
        }
      } else if (cfg.method == kOdeEuler) {
        for (int64_t e = 0; e < qb * d; ++e) y[e] += 0.5 * D * s[e];
      } else {
        y2.resize(qb * d);
        for (int64_t e = 0; e < qb * d; ++e) y2[e] = y[e] + 0.5 * D * s[e];
        eval(y2, k + 1, static_cast<uint32_t>(2 * k + 1), k, s2);
        for (int64_t e = 0; e < qb * d; ++e) y[e] += 0.25 * D * (s[e] + s2[e]);
      }
      keep(k + 1);
    }
    if (cfg.denoise_last) {
      // Tweedie with the score the run used: y_K + t_min s(y_K).
      eval(y, K, static_cast<uint32_t>(2 * K), K, s);
      for (int64_t e = 0; e < qb * d; ++e) y[e] += cfg.times[K] * s[e];
    }
    for (int64_t e = 0; e < qb * d; ++e) out[i0 * d + e] = static_cast<T>(y[e]);
  };

  try {
    parallel_for(ntiles, opt.threads, [&](int64_t tile, int) { run_tile(tile); }, &stop);
  } catch (const Cancelled&) {
    return false;
  }
  if (mc_error) {
    std::vector<double> sums(static_cast<size_t>(slots), 0.0);
    for (int64_t tile = 0; tile < ntiles; ++tile)
      for (int64_t slot = 0; slot < slots; ++slot) sums[slot] += err_sums[tile * slots + slot];
    cfg.finish_errors(sums.data(), n_samples, mc_error);
  }
  if (poll) poll(done.load(), total);
  return true;
}

template bool sample_cpu(const Mixture<float>&, int64_t, const SamplerConfig&, float*, float*,
                         const PassOptions&, const PollFn&, double*);
template bool sample_cpu(const Mixture<double>&, int64_t, const SamplerConfig&, double*, double*,
                         const PassOptions&, const PollFn&, double*);

}  // namespace ledkde
