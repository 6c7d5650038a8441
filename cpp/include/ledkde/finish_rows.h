// Finishing of row states into outputs, shared by the CPU and CUDA paths:
// q states (scalars st, vectors A = sum p (mu - y)/v) for rows y; log_offset is
// added to the log-density
// (host code): log-density, score, denoiser, entropy, max weight.
#pragma once

#include "cpu.h"

namespace ledkde {

template <class T>
inline void finish_rows(const LseScalars* st, const double* A, const T* y, int64_t q, int64_t d, double t,
                 double log_offset, PassOutputs<T> out) {
  for (int64_t i = 0; i < q; ++i) {
    const double* Ai = A + i * d;
    if (out.log_density) out.log_density[i] = static_cast<T>(log_offset + lse_log_density(st[i]));
    if (out.entropy) out.entropy[i] = static_cast<T>(lse_entropy(st[i]));
    if (out.max_weight) out.max_weight[i] = static_cast<T>(lse_max_weight(st[i]));
    for (int64_t k = 0; k < d; ++k) {
      const double s = Ai[k] / st[i].S;
      if (out.score) out.score[i * d + k] = static_cast<T>(s);
      if (out.denoise)
        out.denoise[i * d + k] = static_cast<T>(static_cast<double>(y[i * d + k]) + t * s);
    }
  }
}

}  // namespace ledkde
