// Whole reverse-diffusion runs on the CPU (SPEC section 1, "Reverse-time
// sampler"), over any row source (row_source.h): a Mixture in this process,
// or a data set sharded over machines. Samples are independent, so the work
// is split into tiles of samples and each worker runs every step of its tile:
// no barrier per step, no Python per step. The tiles run on parallel_for's
// workers (the calling thread among them, which also reports progress and
// looks for Ctrl-C). The update rules and the stream's evaluation numbers
// are those of ledkde/sampler_step.h, shared with the CUDA sampler.
#include <atomic>
#include <cmath>

#include "ledkde/philox.h"
#include "ledkde/sampler_step.h"
#include "parallel.h"
#include "pass_cpu.h"
#include "local_source.h"
#include "row_source.h"

namespace ledkde {

namespace {

// What one tile of samples (i0 .. i0 + qb) needs of the run.
struct SamplerRun {
  const SamplerConfig& cfg;
  int64_t n_samples, d;
  const double* cdf;  // init="empirical" with weights (weights_cdf), else null
  const double* var;  // the components' variances, else null
};

// The tile's starting points (float64, qb x d): N(0, t_0 I), or an exact
// draw of p_{t_0} (component j, then N(0, (s2_j + t_0) I)) for init="empirical".
template <class Source>
void start_tile(const Source& src, const SamplerRun& run, uint32_t index0, int64_t qb, std::vector<double>& y) {
  const SamplerConfig& cfg = run.cfg;
  const int64_t d = run.d;
  std::vector<int64_t> comp(static_cast<size_t>(qb), -1);
  std::vector<double> z(static_cast<size_t>(d));
  y.assign(static_cast<size_t>(qb * d), 0.0);
  if (cfg.init == kInitEmpirical) {
    for (int64_t i = 0; i < qb; ++i)
      comp[i] = start_component(cfg.smooth.seed, index0 + static_cast<uint32_t>(i), src.n(), run.cdf);
    src.points(comp.data(), qb, y.data());
  }
  for (int64_t i = 0; i < qb; ++i) {
    stream_normal_vector(cfg.smooth.seed, index0 + static_cast<uint32_t>(i), 0, kInitNoise, 0, d, z.data());
    const double sd = start_sd(cfg.times[0], comp[i], run.var);
    for (int64_t k = 0; k < d; ++k) y[i * d + k] += sd * z[k];
  }
}

// Samples per tile: at most tile_q rows, and at most half the samples, so
// that a run of few samples still makes two tiles (64 samples kept one core
// idle), but not below kMinSamplerRows (thinner tiles read the components
// from memory more often than they compute; 64-row tiles for 256 samples
// measured 12% slower than 128-row ones). Fixed by the sizes alone: the same
// tiles, so the same results, for any number of threads. A remote source
// takes all the samples in one tile (one round trip to its shards per
// evaluation; smoothed_rows cuts the rows into passes).
template <class Source>
int64_t tile_samples(const Source& src, const SamplerConfig& cfg, int64_t n_samples, const PassOptions& opt) {
  constexpr int64_t kMinSamplerRows = 32;
  if (!Source::kSpreadTiles) return std::max<int64_t>(1, n_samples);
  const int64_t spread = std::max(kMinSamplerRows, (n_samples + 1) / 2);
  return std::max<int64_t>(1, std::min(opt.tile_q, spread) / cfg.max_draws(src.per_var()));
}

// One tile of samples (i0 .. i0 + qb) run through every step.
template <class Source>
struct TileRun {
  using T = typename Source::Scalar;
  const Source& src;
  const SamplerRun& run;
  const PassOptions& opt;   // with the run's stop flag
  int64_t i0, qb;
  double* err_sums;         // (slots) this tile's sums of relative errors, or null
  std::atomic<int64_t>& done;
  Workspace<T> ws;
  std::vector<double> y, s, s2, y2, z, rel;
  // The logits' constants of the grid time last asked for (made once per
  // time and tile: memory independent of the number of steps).
  int64_t params_grid = -1;
  typename Source::Params params{};

  uint32_t index0() const { return static_cast<uint32_t>(i0); }

  // The score at `at` for grid time `grid`, stream evaluation evaln, into
  // res; its relative errors go to error slot `slot`.
  void eval(const std::vector<double>& at, int64_t grid, uint32_t evaln, int64_t slot, std::vector<double>& res) {
    const SamplerConfig& cfg = run.cfg;
    if (grid != params_grid) {
      params = src.params(cfg.times[grid]);
      params_grid = grid;
    }
    SmoothOptions sm = cfg.smooth;
    sm.bandwidth = cfg.bandwidth[grid];
    sm.eval = evaln;
    res.resize(static_cast<size_t>(qb * run.d));
    SmoothRowOutputs ro;
    ro.score = res.data();
    if (err_sums) ro.relative_se = rel.data();
    smoothed_rows(src, params, at.data(), qb, index0(), sm, ws, opt, ro);
    if (err_sums)
      for (int64_t i = 0; i < qb; ++i) err_sums[slot] += rel[i];
    done.fetch_add(1);
  }

  // Step k of the method (sampler_step.h).
  void step(int64_t k) {
    const SamplerConfig& cfg = run.cfg;
    const int64_t d = run.d;
    const double D = cfg.times[k] - cfg.times[k + 1];
    eval(y, k, eval_of_step(k), k, s);
    if (cfg.method == kEulerMaruyama) {
      const double sq = std::sqrt(D);
      for (int64_t i = 0; i < qb; ++i) {
        stream_normal_vector(cfg.smooth.seed, index0() + static_cast<uint32_t>(i), static_cast<uint32_t>(k), kNoise,
                             0, d, z.data());
        for (int64_t c = 0; c < d; ++c) y[i * d + c] = em_update(y[i * d + c], s[i * d + c], D, sq, z[c]);
      }
    } else if (cfg.method == kOdeEuler) {
      for (int64_t e = 0; e < qb * d; ++e) y[e] = half_step(y[e], s[e], D);
    } else {
      y2.resize(static_cast<size_t>(qb * d));
      for (int64_t e = 0; e < qb * d; ++e) y2[e] = half_step(y[e], s[e], D);
      eval(y2, k + 1, eval_of_corrector(k), k, s2);
      for (int64_t e = 0; e < qb * d; ++e) y[e] = heun_update(y[e], s[e], s2[e], D);
    }
  }

  // The tile's states at grid index k into the trajectory, where kept.
  void keep(int64_t k, T* trajectory) const {
    if (!trajectory) return;
    const SamplerConfig& cfg = run.cfg;
    for (size_t slot = 0; slot < cfg.keep.size(); ++slot)
      if (cfg.keep[slot] == k)
        for (int64_t e = 0; e < qb * run.d; ++e)
          trajectory[(static_cast<int64_t>(slot) * run.n_samples + i0) * run.d + e] = static_cast<T>(y[e]);
  }

  // The whole run of the tile; false when stopped.
  bool operator()(T* out, T* trajectory, StopFlag& stop) {
    const SamplerConfig& cfg = run.cfg;
    const int64_t d = run.d, K = static_cast<int64_t>(cfg.times.size()) - 1;
    s.resize(static_cast<size_t>(qb * d));
    z.resize(static_cast<size_t>(d));
    rel.resize(err_sums ? static_cast<size_t>(qb) : 0);
    start_tile(src, run, index0(), qb, y);
    keep(0, trajectory);
    for (int64_t k = 0; k < K; ++k) {
      if (stop.poll()) return false;
      step(k);
      keep(k + 1, trajectory);
    }
    if (cfg.denoise_last) {
      // Tweedie with the score the run used: y_K + t_min s(y_K).
      eval(y, K, eval_of_final(K), K, s);
      for (int64_t e = 0; e < qb * d; ++e) y[e] = tweedie(y[e], s[e], cfg.times[K]);
    }
    for (int64_t e = 0; e < qb * d; ++e) out[i0 * d + e] = static_cast<T>(y[e]);
    return true;
  }
};

}  // namespace

template <class Source>
bool sample_source(const Source& src, int64_t n_samples, const SamplerConfig& cfg, typename Source::Scalar* out,
                   typename Source::Scalar* trajectory, const PassOptions& opt, const PollFn& poll,
                   double* mc_error) {
  const int64_t K = static_cast<int64_t>(cfg.times.size()) - 1;
  std::vector<double> cdf;
  if (cfg.init == kInitEmpirical && !src.log_weights().empty()) {
    cdf.resize(static_cast<size_t>(src.n()));
    weights_cdf(src.log_weights().data(), src.n(), cdf.data());
  }
  const SamplerRun run{cfg, n_samples, src.d(), cdf.empty() ? nullptr : cdf.data(), src.variances()};
  const int64_t tq = tile_samples(src, cfg, n_samples, opt);
  const int64_t ntiles = (n_samples + tq - 1) / tq;
  // Per tile and error slot: the sum over the tile's samples of the relative
  // standard errors (summed over tiles in tile order at the end: the result
  // does not depend on the thread count).
  const int64_t slots = cfg.error_slots();
  std::vector<double> err_sums(mc_error ? static_cast<size_t>(ntiles * slots) : 0, 0.0);
  const int64_t total = ntiles * (K * (cfg.method == kOdeHeun ? 2 : 1) + (cfg.denoise_last ? 1 : 0));
  // Progress and Ctrl-C: `poll` is asked by the calling thread (worker 0 of
  // parallel_for) at most every 20 ms, between tiles of components of its
  // passes; returning false stops every worker within one such tile.
  std::atomic<int64_t> done{0};
  StopFlag stop([&] { return poll && !poll(done.load(), total); });
  PassOptions opt_stop = opt;
  opt_stop.stop = &stop;
  try {
    parallel_for(ntiles, opt.threads, [&](int64_t tile, int) {
      const int64_t i0 = tile * tq;
      TileRun<Source> t{src, run, opt_stop, i0, std::min(tq, n_samples - i0),
                        mc_error ? err_sums.data() + tile * slots : nullptr, done};
      t(out, trajectory, stop);
    }, &stop);
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

template <class T>
bool sample_cpu(const Mixture<T>& mix, int64_t n_samples, const SamplerConfig& cfg, T* out, T* trajectory,
                const PassOptions& opt, const PollFn& poll, double* mc_error) {
  // Hundreds of passes over the same mixture: pack it for the tile products.
  TilePack<T> pack;
  return sample_source(MixtureSource<T>{mix}, n_samples, cfg, out, trajectory, with_tile_pack(mix, opt, pack), poll,
                       mc_error);
}

#define LEDKDE_INSTANTIATE(T)                                                                                     \
  template bool sample_cpu(const Mixture<T>&, int64_t, const SamplerConfig&, T*, T*, const PassOptions&,           \
                           const PollFn&, double*);                                                               \
  template bool sample_source(const RemoteSource<T>&, int64_t, const SamplerConfig&, T*, T*, const PassOptions&, \
                              const PollFn&, double*);                                                            \
  template bool sample_source(const LocalSource<T>&, int64_t, const SamplerConfig&, T*, T*, const PassOptions&,  \
                              const PollFn&, double*);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
