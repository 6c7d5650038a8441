// The local denoisers as a row source (row_source.h), so that the compiled
// sampler and smoothed estimators run on them: a pass over a block of rows
// is the local denoiser D of each row, given as the state of a score with S
// = 1 and A = (D - y) / t (B = 1 / t, as for the empirical score, so that
// the rows' rounding is put back and the control estimator's linear term is
// that of the empirical score). The patch size may change with the grid time
// (one per time of the run's grid).
#pragma once

#include <algorithm>
#include <vector>

#include "local_cpu.h"

namespace ledkde {

template <class T>
struct LocalSource {
  using Scalar = T;
  struct Params {
    double t;
    int64_t patch;
  };
  static constexpr bool kSpreadTiles = true;
  const LocalImages<T>& img;
  LocalSpec spec;                // spec.patch: the patch where no grid time says otherwise
  std::vector<double> times;     // grid times, and the patch at each
  std::vector<int64_t> patches;
  std::vector<double> zero, logw;  // (d,) no centring; log-weights less their maximum (empty: equal)

  LocalSource(const LocalImages<T>& images, const LocalSpec& s, std::vector<double> grid, std::vector<int64_t> per_time)
      : img(images), spec(s), times(std::move(grid)), patches(std::move(per_time)),
        zero(static_cast<size_t>(images.d()), 0.0) {
    if (!img.logw.empty()) {
      const double top = *std::max_element(img.logw.begin(), img.logw.end());
      for (double v : img.logw) logw.push_back(v - top);
    }
  }
  int64_t n() const { return img.n; }
  int64_t d() const { return img.d(); }
  bool per_var() const { return false; }
  const double* centre() const { return zero.data(); }
  Params params(double t) const {
    for (size_t k = 0; k < times.size(); ++k)
      if (times[k] == t) return Params{t, patches[k]};
    return Params{t, spec.patch};
  }
  static double time(const Params& p) { return p.t; }
  static double log_offset(const Params&) { return 0.0; }
  void reduce(const Params& p, int64_t q, Workspace<T>& ws, const PassOptions& opt) const {
    LocalSpec s = spec;
    s.patch = p.patch;
    const int64_t dd = d();
    std::vector<double> D(static_cast<size_t>(q * dd));
    PassOptions o = opt;
    o.threads = 1;  // the sampler's tiles are the parallel work
    local_denoise_cpu(img, s, ws.rows.data(), q, p.t, D.data(), o);
    ws.start_states(q, dd);
    for (int64_t i = 0; i < q; ++i) {
      ws.m[i] = 0.0;
      ws.S[i] = 1.0;
      ws.B[i] = 1.0 / p.t;
      for (int64_t k = 0; k < dd; ++k)
        ws.A[i * dd + k] = (D[i * dd + k] - static_cast<double>(ws.rows[i * dd + k])) / p.t;
    }
  }
  void points(const int64_t* index, int64_t count, double* out) const {
    const int64_t dd = d();
    for (int64_t r = 0; r < count; ++r)
      for (int64_t k = 0; k < dd; ++k) out[r * dd + k] = static_cast<double>(img.value(index[r], k));
  }
  const std::vector<double>& log_weights() const { return logw; }
  const double* variances() const { return nullptr; }
};

}  // namespace ledkde
