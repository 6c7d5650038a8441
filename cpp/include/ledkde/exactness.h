// The exactness rules of every pass, in one place (CPU and CUDA): how large
// the error of an approximate logit may be before a weight is recomputed
// exactly, the bound of that error for the matrix-product path, which
// components are then recomputed, and how far a fused sweep may overshoot.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "ledkde/host_device.h"

namespace ledkde {

// Error allowed in a logit before its weight is recomputed exactly: 64 eps of
// the working precision (host code).
template <class T>
constexpr double logit_tolerance() {
  return 64.0 * std::numeric_limits<T>::epsilon();
}

// The same for a mixture with its own (Mixture::logit_tol > 0: each weight
// then within a factor e^(2 tol) of exact; 0: the strict rule above). The
// Python layer sets 3e-3 for float32 mixtures unless asked otherwise.
template <class T>
double logit_tolerance(double requested) {
  return requested > 0.0 ? requested : logit_tolerance<T>();
}

// sqrt(d)-scaled factor of the expansion's rounding bound (expansion_error;
// knn uses it for distances; host code).
inline double expansion_kappa(int64_t d) { return 2.0 * std::sqrt(static_cast<double>(d)) + 4.0; }

// The exactness rule of the matrix-product path. A row's approximate logits
// c' - (|y|^2 + |mu|^2 - 2 y.mu) inv2v carry at most this error: rounding in
// the product and the expansion, kappa_eps = a few sqrt(d) units of the
// accumulation's epsilon (expansion_kappa) of the largest term.
LEDKDE_HD double expansion_error(double kappa_eps, double ny, double norm2_max, double inv2v_max,
                                 double cprime_abs_max) {
  return kappa_eps * ((ny + norm2_max) * inv2v_max + cprime_abs_max);
}

// The same for logits computed without the row's |y|^2 (equal variances: it
// is the same for every component, and the pass keeps it in float64): the
// largest term is then 2 |y| |mu|_max + |mu|^2_max, far below |y|^2 when the
// row lies far from the data (large t).
LEDKDE_HD double expansion_error_lifted(double kappa_eps, double ny, double norm2_max, double inv2v_max,
                                        double cprime_abs_max) {
  return kappa_eps * ((2.0 * sqrt(ny * norm2_max) + norm2_max) * inv2v_max + cprime_abs_max);
}

// Logits within this margin of the maximum can carry weight above tol once
// exact, for an error bound dlt > tol (2 dlt covers the error on both sides):
// they are recomputed by coordinate differences.
LEDKDE_HD double candidate_margin(double dlt, double tol) { return std::log(dlt / tol) + 3.0 + 2.0 * dlt; }

// A fused sweep shifted by the running maximum accepts a tile whose own
// maximum lies up to this far above the shift (weights up to e^16, far from
// overflow in float); beyond it the tile is swept again from its maximum (CPU).
constexpr double kMaxOvershoot = 16.0;

}  // namespace ledkde
