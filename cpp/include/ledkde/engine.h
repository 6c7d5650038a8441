// The engine's backend-neutral types, shared by the CPU and the CUDA
// backends: the prepared mixture, the options and outputs of a pass, the
// smoothing and sampler settings. The CPU entry points are in cpu.h, the
// CUDA ones in cuda/cuda_api.h. No Python here.
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <vector>

#include "ledkde/big_buffer.h"

#include "smooth_estimator.h"
#include "tile_math.h"

namespace ledkde {

// Which per-query outputs a fused pass writes.
enum Output : unsigned {
  kOutLogDensity = 1u,
  kOutScore = 2u,
  kOutDenoise = 4u,
  kOutEntropy = 8u,
  kOutMaxWeight = 16u,
};

// The components laid out for the built-in tile products (cpp/src/tile_gemm.h;
// float, kDirectMaxDim < d <= tile_gemm::kMaxDim, AVX2 or AVX-512): row panels
// of 32 components for the first product (and the exact logits of a whole
// tile); the second product reads the rows of Mixture::mu itself. Empty: the
// pass uses BLAS.
template <class T>
struct TilePack {
  BigVector<T> packed;
  std::vector<double> norm2;  // (n,) |mu_j|^2 in float64 (exact logits from float64 products)
  bool empty() const { return packed.empty(); }
};

class StopFlag;  // cpp/src/parallel.h (CPU only)

// Thrown by a CPU call that its caller asked to stop (PassOptions::interrupted).
struct Cancelled : std::exception {
  const char* what() const noexcept override { return "cancelled"; }
};

struct PassOptions {
  int threads = 1;        // worker threads (>= 1)
  int64_t tile_q = 128;   // query rows per tile
  int64_t tile_n = 512;   // mixture components per tile
  bool entropy = true;    // false: the pass may leave E (the entropy sum) at 0
  // The columns of A a CPU pass must compute: [value_begin, value_begin +
  // value_count); the others it may leave without the weighted sums of the
  // components. value_count < 0: all d. (The equivariant local denoiser reads
  // only the centre pixel of each patch's posterior mean.)
  int64_t value_begin = 0, value_count = -1;
  // A tile pack to use instead of the mixture's own (float passes only): the
  // sampler and the smoothed score build one for any d, since their many
  // passes repay the packing where a single pass would not.
  const TilePack<float>* tiles = nullptr;
  // Stopping (CPU passes): `interrupted` says whether the caller wants the
  // call to stop (the bindings: was Ctrl-C pressed?). The CPU entry points
  // turn it into a StopFlag (parallel.h) that the passes poll between tiles
  // of components; a stopped call throws Cancelled.
  std::function<bool()> interrupted;
  StopFlag* stop = nullptr;
  // Certified pruning (Projection) where the mixture has a projection; false: dense.
  bool prune = true;
  // The first probe of pruning (cpp/src/prune_cpu.h) already found, for the
  // whole call, that it pays: the passes skip their own.
  bool probed = false;
};

// The components projected onto k leading principal directions, for the
// certified pruning of the CPU pass at small t (cpp/src/prune_cpu.cpp): for
// any orthonormal P (k x d) and residual norms r(x) = |x - P^T P x|,
//   |y - mu|^2 >= |P y - P mu|^2 + (r(y) - r(mu))^2,
// a lower bound on every distance from k-dimensional products. Empty: no pruning.
struct Projection {
  int64_t k = 0;
  std::vector<double> basis;  // (k, d) orthonormal rows, float64
  BigVector<float> z;         // (n, k) P mu_j, rounded to float (the bound's products)
  std::vector<double> zn2;    // (n,) |z_j|^2 of the rounded rows, in float64
  std::vector<double> resid;  // (n,) r(mu_j), from float64 products
  // The same in float for the bound's float arithmetic, and |z_j|^2 over the
  // first k/2 coordinates (the choice of references).
  std::vector<float> zn2f, residf, zn2_prefix;
  double resid_max = 0.0;
  bool empty() const { return k == 0; }
};

// Up to this dimension the pass computes distances by coordinate differences
// instead of matrix products (thin products run far below the BLAS rate).
constexpr int64_t kDirectMaxDim = 8;

// A mixture prepared once for any number of passes (SPEC section 1):
// components centred on their mean (so that the expanded distances
// |y|^2 + |mu|^2 - 2 y.mu stay accurate far from the origin; not for
// d <= kDirectMaxDim, whose coordinate differences are exact as given),
// squared norms, normalized log-weights, variances.
template <class T>
struct Mixture {
  int64_t n = 0, d = 0;
  std::vector<double> centre;  // (d,)  mean of evenly spaced components (0 when d <= kDirectMaxDim)
  BigVector<T> mu;             // (n, d) components minus centre
  std::vector<T> norm2;        // (n,)  |mu_j - centre|^2
  BigVector<T> muT;            // (d, n) coordinate-major copy, only when d <= kDirectMaxDim
  TilePack<T> tiles;           // for the built-in tile products (see TilePack)
  Projection proj;             // for the certified pruning (see Projection)
  std::vector<double> logw;    // (n,)  log a_j, normalized; empty: uniform
  std::vector<double> var;     // (n,)  s2_j; empty: all zero (empirical)
  double norm2_max = 0.0;
  // How finely a pass in T resolves the data, per coordinate: the largest
  // rounding of a centred coordinate, |(x - centre) - mu|, and (matrix-product
  // path) half a unit in the last place of the largest centred coordinate,
  // which the weighted sums sum p mu round as much.
  double resolution = 0.0;
  double log_mass = 0.0;       // log sum_j a_j of the weights as given (log n when uniform)
  double logit_tol = 0.0;      // error allowed in a logit (exactness.h); 0: the strict rule, 64 eps
};

// Per-query outputs of a fused pass; a null pointer means "not requested".
template <class T>
struct PassOutputs {
  T* log_density = nullptr;  // (q,)
  T* score = nullptr;        // (q, d)
  T* denoise = nullptr;      // (q, d)
  T* entropy = nullptr;      // (q,)
  T* max_weight = nullptr;   // (q,)
};

// The partial state of a pass (tile_math.h), in float64 whatever T is:
// m (q,), S (q,), E (q,), A (q, d) with A = sum_j exp(l_j - m)(mu_j - y)/v_j.
// The logits use the weights as given, not normalized, so that states of
// shards merge; the shard's log_mass (Mixture) normalizes at the end.
struct PartialState {
  double* m;
  double* S;
  double* E;
  double* A;
  // (q,) B = sum_j exp(l_j - m) / v_j, scaled as A (the control estimator's
  // pilot with per-component variances needs it); null: not kept.
  double* B = nullptr;
};

// Kernel-smoothed score (K_h * s_t)(y) and the LED-KDE log-density
// (K_h * log p_t)(y), each estimated from n_kernel draws of the kernel taken
// from the random stream with step = `eval` (philox.h), by the estimator of
// smooth_estimator.h.
struct SmoothOptions {
  double bandwidth = 0.0;
  int64_t n_kernel = 1;
  int kernel = 0;  // KernelKind
  bool antithetic = false;
  bool orthogonal = false;  // orthogonal draws (smooth_estimator.h kernel_draws)
  int estimator = 1;        // Estimator: 0 naive, 1 control (linear term removed)
  uint64_t seed = 0;
  uint32_t eval = 0;
};

// Outputs of a smoothed evaluation; a null pointer means "not requested".
// The standard errors are those of smooth_estimator.h (score: the expected
// length of the error vector).
template <class T>
struct SmoothOutputs {
  T* score = nullptr;           // (q, d)
  T* log_density = nullptr;     // (q,)
  T* score_se = nullptr;        // (q,)
  T* log_density_se = nullptr;  // (q,)
};

// What one smoothed evaluation of float64 points writes (host memory for the
// CPU, device memory for CUDA; float64; null: not wanted): score (q x d), its
// standard error (q,) and relative standard error |se| / |score| (q,),
// log-density (q,) and its standard error (q,).
struct SmoothRowOutputs {
  double* score = nullptr;
  double* score_se = nullptr;
  double* relative_se = nullptr;
  double* log_density = nullptr;
  double* log_density_se = nullptr;
};

// Number of kernel draws a smoothed evaluation really needs: one when the
// bandwidth is zero (all draws would be the plain score).
inline int64_t effective_draws(const SmoothOptions& sm) { return sm.bandwidth > 0.0 ? sm.n_kernel : 1; }

// Whether a smoothed evaluation adds the pilot row per point (smooth_estimator.h).
inline bool has_pilot(const SmoothOptions& sm, bool per_variance, bool want_log_density) {
  return smooth_needs_pilot(sm.bandwidth, sm.estimator, sm.antithetic, per_variance, want_log_density);
}

// Rows per point of a smoothed evaluation: the draws and the pilot row.
inline int64_t rows_per_point(const SmoothOptions& sm, bool per_variance, bool want_log_density) {
  return effective_draws(sm) + (has_pilot(sm, per_variance, want_log_density) ? 1 : 0);
}

// A whole reverse-diffusion run (SPEC section 1): see sampler_cpu.cpp.
enum Method : int { kEulerMaruyama = 0, kOdeEuler = 1, kOdeHeun = 2 };
enum Init : int { kInitGaussian = 0, kInitEmpirical = 1 };

struct SamplerConfig {
  int method = kEulerMaruyama;
  std::vector<double> times;      // (K+1,) decreasing, t_K = t_min > 0
  std::vector<double> bandwidth;  // (K+1,) bandwidth used at each grid time
  // The kernel part of every step's smoothed evaluation (each step sets its
  // bandwidth and eval) and the run's seed (smooth.seed: noise, start, draws).
  SmoothOptions smooth;
  int init = kInitGaussian;
  bool denoise_last = true;
  std::vector<int64_t> keep;  // grid indices whose states are stored

  // Most rows one evaluation takes per sample: n_kernel (plus the pilot row,
  // smooth_estimator.h) if any step smooths, else 1.
  int64_t max_draws(bool per_variance) const {
    SmoothOptions sm = smooth;
    for (double h : bandwidth)
      if (h > 0.0) {
        sm.bandwidth = h;
        return rows_per_point(sm, per_variance, false);
      }
    return 1;
  }
  // Entries of a run's mc_error: one per step and one for the final denoising.
  int64_t error_slots() const { return static_cast<int64_t>(times.size()) - 1 + (denoise_last ? 1 : 0); }
  // Score evaluations that error slot `slot` averages over (per sample).
  int evaluations_in_slot(int64_t slot) const {
    return (method == kOdeHeun && slot < static_cast<int64_t>(times.size()) - 1) ? 2 : 1;
  }
  // mc_error[slot] from the sums over all samples of the relative errors of each slot.
  void finish_errors(const double* sums, int64_t n_samples, double* mc_error) const {
    for (int64_t slot = 0; slot < error_slots(); ++slot)
      mc_error[slot] = sums[slot] / static_cast<double>(n_samples * evaluations_in_slot(slot));
  }
};

// Called on the calling thread every few tens of milliseconds with
// (done, total) work units; returning false cancels the run.
using PollFn = std::function<bool(int64_t, int64_t)>;



}  // namespace ledkde
