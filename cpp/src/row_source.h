// What the drivers of many passes (the smoothed scores, the sampler) read of
// the data: the states of blocks of query rows. A Mixture in this process is
// one source (MixtureSource: the tiled pass, pruned where it pays); a data set
// sharded over machines is another (RemoteSource: the bindings hand it a
// function that runs the pass on every shard and merges their states), so the
// smoothed estimators and the sampler's steps exist once for both.
//
// A source S offers: n(), d(), per_var(), centre() (rows are centred by it
// before a pass); S::Params params(t), made once per time; reduce(params, q,
// ws, opt), after which ws.state() holds the states of the q centred rows
// ws.rows with m relative to log_offset(params); points(index, count, out),
// components by index in float64 (init="empirical"); log_weights()
// (normalized, empty when equal) and variances() (null when all zero).
// kSpreadTiles: whether the sampler cuts the samples into tiles for the
// threads (a remote source's shards do the parallel work: one tile, one round
// trip per evaluation).
#pragma once

#include <functional>
#include <vector>

#include "ledkde/logit_params.h"
#include "pass_cpu.h"

namespace ledkde {

template <class T>
struct MixtureSource {
  using Scalar = T;
  using Params = LogitParams<T>;
  static constexpr bool kSpreadTiles = true;
  const Mixture<T>& mix;

  int64_t n() const { return mix.n; }
  int64_t d() const { return mix.d; }
  bool per_var() const { return !mix.var.empty(); }
  const double* centre() const { return mix.centre.data(); }
  Params params(double t) const { return make_logit_params(mix, t); }
  static double time(const Params& p) { return p.t; }
  static double log_offset(const Params& p) { return p.c0; }
  void reduce(const Params& p, int64_t q, Workspace<T>& ws, const PassOptions& opt) const {
    pass_rows(mix, p, q, ws, opt);
  }
  void points(const int64_t* index, int64_t count, double* out) const {
    const int64_t d = mix.d;
    for (int64_t r = 0; r < count; ++r)
      for (int64_t k = 0; k < d; ++k) out[r * d + k] = static_cast<double>(mix.mu[index[r] * d + k]) + mix.centre[k];
  }
  const std::vector<double>& log_weights() const { return mix.logw; }
  const double* variances() const { return mix.var.empty() ? nullptr : mix.var.data(); }
};

// The merged states of q rows (not centred: each shard centres them itself)
// over every shard, in PartialState's convention (log-weights as given, not
// normalized, as partial_cpu writes them), B included (the rounding of the
// rows is put back with it, and the control estimator needs it with variances).
template <class T>
using RemotePass = std::function<void(const T* rows, int64_t q, double t, PartialState out)>;
// Rows of components by index (float64, count x d), for init="empirical".
using RemotePoints = std::function<void(const int64_t* index, int64_t count, double* out)>;

template <class T>
struct RemoteSource {
  using Scalar = T;
  struct Params {
    double t, c0;
  };
  static constexpr bool kSpreadTiles = false;
  int64_t n_, d_;
  double log_mass;                // log sum_j a_j of the weights as given
  std::vector<double> logw, var;  // normalized log-weights and variances (empty: equal, all zero)
  std::vector<double> zero;       // (d,) the driver does not centre
  RemotePass<T> pass;
  RemotePoints fetch;

  int64_t n() const { return n_; }
  int64_t d() const { return d_; }
  bool per_var() const { return !var.empty(); }
  const double* centre() const { return zero.data(); }
  Params params(double t) const { return Params{t, -log_mass}; }
  static double time(const Params& p) { return p.t; }
  static double log_offset(const Params& p) { return p.c0; }
  void reduce(const Params& p, int64_t q, Workspace<T>& ws, const PassOptions&) const {
    ws.start_states(q, d_);
    pass(ws.rows.data(), q, p.t, ws.state());
  }
  void points(const int64_t* index, int64_t count, double* out) const { fetch(index, count, out); }
  const std::vector<double>& log_weights() const { return logw; }
  const double* variances() const { return var.empty() ? nullptr : var.data(); }
};

// The (smoothed) score of qb points y (float64, qb x d) whose stream indices
// are index0, index0 + 1, ...: the estimate (smooth_estimator.h) from the
// kernel draws at y + u; with h = 0 the plain score (smoothed_cpu.cpp).
template <class Source>
void smoothed_rows(const Source& src, const typename Source::Params& p, const double* y, int64_t qb,
                   uint32_t index0, const SmoothOptions& sm, Workspace<typename Source::Scalar>& ws,
                   const PassOptions& opt, SmoothRowOutputs out);

// The smoothed scores / log-densities of q queries y over a remote source,
// a tile of queries after the other (smoothed_cpu.cpp; see smoothed_cpu).
template <class T>
void smoothed_remote(const RemoteSource<T>& src, const T* y, int64_t q, double t, const SmoothOptions& sm,
                     SmoothOutputs<T> out, const PassOptions& opt);

// A whole run of the sampler over src (sampler_cpu.cpp; see sample_cpu in
// ledkde/cpu.h for the arguments).
template <class Source>
bool sample_source(const Source& src, int64_t n_samples, const SamplerConfig& cfg, typename Source::Scalar* out,
                   typename Source::Scalar* trajectory, const PassOptions& opt, const PollFn& poll,
                   double* mc_error);

}  // namespace ledkde
