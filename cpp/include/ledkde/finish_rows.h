// Finishing of row states into outputs, shared by the CPU and CUDA paths
// (the per-query and per-coordinate steps are host/device functions; the CPU
// loops over them in finish_rows, the CUDA kernel runs one thread per
// coordinate): log-density, score, denoiser, entropy, max weight from the
// scalars st and the vector A = sum p (mu - y)/v of each row y.
#pragma once

#include "engine.h"

namespace ledkde {

// Query i's scalar outputs; log_offset is added to the log-density.
template <class T>
LEDKDE_HD void finish_scalars(const LseScalars& st, double log_offset, int64_t i, const PassOutputs<T>& out) {
  if (out.log_density) out.log_density[i] = static_cast<T>(log_offset + lse_log_density(st));
  if (out.entropy) out.entropy[i] = static_cast<T>(lse_entropy(st));
  if (out.max_weight) out.max_weight[i] = static_cast<T>(lse_max_weight(st));
}

// Coordinate e of the score A / S and of the denoiser y + t * score.
template <class T>
LEDKDE_HD void finish_coordinate(double A, double S, T y, double t, int64_t e, const PassOutputs<T>& out) {
  const double s = A / S;
  if (out.score) out.score[e] = static_cast<T>(s);
  if (out.denoise) out.denoise[e] = static_cast<T>(static_cast<double>(y) + t * s);
}

template <class T>
inline void finish_rows(const LseScalars* st, const double* A, const T* y, int64_t q, int64_t d, double t,
                        double log_offset, PassOutputs<T> out) {
  for (int64_t i = 0; i < q; ++i) {
    finish_scalars(st[i], log_offset, i, out);
    for (int64_t k = 0; k < d; ++k) finish_coordinate(A[i * d + k], st[i].S, y[i * d + k], t, i * d + k, out);
  }
}

}  // namespace ledkde
