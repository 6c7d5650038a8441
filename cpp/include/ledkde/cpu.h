// C++ interface of the CPU engine. No Python here: the bindings
// (bindings/cpu_module.cpp) check nothing mathematical and call these
// functions with arrays that the Python layer has already validated.
#pragma once

#include "ledkde/engine.h"

namespace ledkde {

// With fewer query tiles than this, a pass also splits the components into
// shards (a split fixed by the sizes alone, merged in a fixed order) so that
// there are about this many tasks: a few queries still keep the cores busy.
// Costs one float64 state (tile_q x d) per task.
constexpr int64_t kTargetTasks = 4;

// pack: lay the components out for the built-in tile products (when they
// apply); a one-shot call with few queries skips it (BLAS is then cheaper
// than packing). stop: polled between chunks of rows (Ctrl-C); a stopped
// preparation throws Cancelled.
template <class T>
Mixture<T> prepare_mixture(const T* data, int64_t n, int64_t d, const double* log_weights,
                           const double* variances, int threads = 1, bool pack = true, StopFlag* stop = nullptr);

// Projects the components onto the k orthonormal rows of basis (k x d; the
// Python layer passes leading principal directions) for the certified
// pruning of the CPU pass (engine.h Projection); k = 0 removes the projection.
template <class T>
void set_projection(Mixture<T>& mix, const double* basis, int64_t k, int threads = 1, StopFlag* stop = nullptr);

// (component, query) pairs that CPU passes looked at, and those whose distance
// they computed, since the last reset (all passes, all threads): the pruned
// fraction is 1 - computed / considered.
void prune_counts(int64_t* considered, int64_t* computed, bool reset);

template <class T>
void evaluate_cpu(const Mixture<T>& mix, const T* y, int64_t q, double t, PassOutputs<T> out,
                  const PassOptions& opt);

template <class T>
void partial_cpu(const Mixture<T>& mix, const T* y, int64_t q, double t, PartialState out,
                 const PassOptions& opt);

// Exact k nearest components (k <= n) of q queries: indices (q, k) and
// Euclidean distances (q, k), nearest first; ties broken by the lower index.
template <class T>
void knn_cpu(const Mixture<T>& mix, const T* y, int64_t q, int64_t k, int64_t* index, T* dist,
             const PassOptions& opt);

// The exact vector-Jacobian products of the empirical denoiser D(y; sigma)
// (t = sigma^2, equal variances) at q rows y with the vectors v (both q x d,
// float64): jv = J v with J = Cov_w(x) / t (symmetric), and ds = (dD/dsigma).v
// = Cov_w(x.v, |y - x|^2) / sigma^3, w the posterior weights at y. One pass
// in float64 over the points as given (vjp_cpu.cpp: not a prepared Mixture,
// whose float32 components are rounded after centring), moved by centre
// (their mean, for the accuracy of the expanded distances); logw: their
// log-weights (null: equal). Threads over blocks of rows.
template <class T>
struct VjpPoints {
  const T* x;             // (n, d)
  int64_t n, d;
  const double* logw;     // (n,) or null
  const double* centre;   // (d,)
};
template <class T>
void denoise_vjp_cpu(const VjpPoints<T>& pts, const double* y, const double* v, int64_t q, double t, double* jv,
                     double* ds, const PassOptions& opt);

// Merge state b into a (q queries, d wide), and finalize a state into
// log-density (before normalization by the log-mass), score, entropy, max weight.
void merge_states_cpu(int64_t q, int64_t d, PartialState a, PartialState b);
void finalize_states_cpu(int64_t q, int64_t d, PartialState s, double* log_density, double* score,
                         double* entropy, double* max_weight);

// The rows' states of a smoothed evaluation (m, S, A as in PartialState; B =
// S sum_i w_i / v_i, read only for the control estimator's pilot with
// per-component variances).
struct RowStateInputs {
  const double* m;
  const double* S;
  const double* A;
  const double* B;
};

// The estimates of smooth_estimator.h for qb queries y (float64, qb x d) from
// the states of their rows (per query: the draws, then the pilot row when
// has_pilot): rows (the draws' rows, shifted by centre as the pass saw
// them), log_offset added to each log-density.
template <class T>
void estimate_from_states(const SmoothOptions& sm, bool per_var, double t, double log_offset, int64_t qb, int64_t d,
                          const RowStateInputs& st, const T* rows, const double* y, const double* centre,
                          SmoothRowOutputs out);

template <class T>
void smoothed_cpu(const Mixture<T>& mix, const T* y, int64_t q, double t, const SmoothOptions& sm,
                  SmoothOutputs<T> out, const PassOptions& opt);

// Returns false when the poll function cancelled the run. mc_error (null:
// not wanted): (K + denoise_last,) the mean over samples of the relative
// standard error |se| / |s| of the scores each step used (Heun: mean of its
// two evaluations; the last entry the final denoising when there is one).
template <class T>
bool sample_cpu(const Mixture<T>& mix, int64_t n_samples, const SamplerConfig& cfg, T* out,
                T* trajectory, const PassOptions& opt, const PollFn& poll, double* mc_error = nullptr);

}  // namespace ledkde
