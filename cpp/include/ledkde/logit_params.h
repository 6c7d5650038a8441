// Per-pass constants of the logits, shared by the CPU pass and the CUDA pass
// (host code), so that both evaluate the same expression with the same
// rounding of the per-component constants.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ledkde/engine.h"
#include "ledkde/exactness.h"

namespace ledkde {

// Per-pass constants of the logits
//   l_j(y) = c0 + c'_j - |y - mu_j|^2 * inv2v_j,  c_j = log a_j - (d/2) log(2 pi v_j),
// with c0 = max_j c_j taken out so that the tile arithmetic works on small numbers.
template <class T>
struct LogitParams {
  double t = 0.0;  // the time they were made for
  double c0 = 0.0;
  bool per_component = false;  // false: all c'_j = 0 and inv2v_j = inv2v (uniform, empirical)
  T inv2v = T(0);
  std::vector<T> cprime, inv2v_j;  // (n,) when per_component
  double inv2v_max = 0.0, cprime_abs_max = 0.0;
};

template <class T>
inline LogitParams<T> make_logit_params(const Mixture<T>& mix, double t) {
  LogitParams<T> lp;
  lp.t = t;
  const double half_d = 0.5 * static_cast<double>(mix.d);
  const double log2pi = std::log(2.0 * 3.14159265358979323846);
  if (mix.var.empty()) {
    // Empirical variances: v_j = t for all j; c'_j = log a_j - max log a.
    lp.inv2v = static_cast<T>(0.5 / t);
    lp.inv2v_max = 0.5 / t;
    double lw_max = 0.0;
    if (!mix.logw.empty()) lw_max = *std::max_element(mix.logw.begin(), mix.logw.end());
    else lw_max = -std::log(static_cast<double>(mix.n));
    lp.c0 = lw_max - half_d * (log2pi + std::log(t));
    if (mix.logw.empty()) return lp;
    lp.per_component = true;
    lp.cprime.resize(mix.n);
    lp.inv2v_j.assign(mix.n, lp.inv2v);
    for (int64_t j = 0; j < mix.n; ++j) lp.cprime[j] = static_cast<T>(mix.logw[j] - lw_max);
  } else {
    lp.per_component = true;
    lp.cprime.resize(mix.n);
    lp.inv2v_j.resize(mix.n);
    std::vector<double> c(mix.n);
    lp.c0 = neg_inf();
    for (int64_t j = 0; j < mix.n; ++j) {
      const double v = mix.var[j] + t;
      const double lw = mix.logw.empty() ? -std::log(static_cast<double>(mix.n)) : mix.logw[j];
      c[j] = lw - half_d * (log2pi + std::log(v));
      lp.c0 = std::max(lp.c0, c[j]);
      lp.inv2v_j[j] = static_cast<T>(0.5 / v);
      lp.inv2v_max = std::max(lp.inv2v_max, 0.5 / v);
    }
    for (int64_t j = 0; j < mix.n; ++j) lp.cprime[j] = static_cast<T>(c[j] - lp.c0);
  }
  for (const T c : lp.cprime)
    if (std::isfinite(static_cast<double>(c)))
      lp.cprime_abs_max = std::max(lp.cprime_abs_max, std::fabs(static_cast<double>(c)));
  return lp;
}

}  // namespace ledkde
