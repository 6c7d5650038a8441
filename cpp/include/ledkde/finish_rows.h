// What happens to row states after a pass, shared by the CPU and CUDA paths.
// Every pass (CPU Workspace, CUDA RowStates) returns its rows' states in one
// convention, a PartialState (engine.h): arrays m, S, E (rows,) and A (rows, d)
// with A = sum p (mu - y)/v. Here, once for both backends: merging two states
// of a row, and finishing a state into outputs (log-density, score,
// denoiser, entropy, max weight). The CPU loops over the per-element
// functions in finish_rows; the CUDA kernel runs one thread per element.
#pragma once

#include "engine.h"

namespace ledkde {

LEDKDE_HD LseScalars scalars_of(const PartialState& s, int64_t i) { return LseScalars{s.m[i], s.S[i], s.E[i]}; }

// Merges row j of state b into row i of state a.
LEDKDE_HD void merge_row(const PartialState& a, int64_t i, const PartialState& b, int64_t j, int64_t d) {
  LseScalars sa = scalars_of(a, i);
  const MergeScales f = lse_merge(sa, scalars_of(b, j));
  for (int64_t k = 0; k < d; ++k) {
    // An empty side has scale 0 and may hold no meaningful A.
    a.A[i * d + k] = (f.fa == 0.0 ? 0.0 : f.fa * a.A[i * d + k]) + (f.fb == 0.0 ? 0.0 : f.fb * b.A[j * d + k]);
  }
  if (a.B && b.B) a.B[i] = (f.fa == 0.0 ? 0.0 : f.fa * a.B[i]) + (f.fb == 0.0 ? 0.0 : f.fb * b.B[j]);
  a.m[i] = sa.m;
  a.S[i] = sa.S;
  a.E[i] = sa.E;
}

// Element e (row e / d, coordinate e % d) of the outputs of state st for the
// rows y (read only for the denoiser); the scalar outputs with the row's
// first coordinate. log_offset is added to the log-density.
template <class T>
LEDKDE_HD void finish_element(const PartialState& st, const T* y, int64_t d, double t, double log_offset, int64_t e,
                              const PassOutputs<T>& out) {
  const int64_t i = e / d;
  if (e % d == 0) {
    const LseScalars s = scalars_of(st, i);
    if (out.log_density) out.log_density[i] = static_cast<T>(log_offset + lse_log_density(s));
    if (out.entropy) out.entropy[i] = static_cast<T>(lse_entropy(s));
    if (out.max_weight) out.max_weight[i] = static_cast<T>(lse_max_weight(s));
  }
  const double score = st.A[e] / st.S[i];
  if (out.score) out.score[e] = static_cast<T>(score);
  if (out.denoise) out.denoise[e] = static_cast<T>(static_cast<double>(y[e]) + t * score);
}

// The outputs of q rows (CPU).
template <class T>
inline void finish_rows(const PartialState& st, const T* y, int64_t q, int64_t d, double t, double log_offset,
                        const PassOutputs<T>& out) {
  for (int64_t e = 0; e < q * d; ++e) finish_element(st, y, d, t, log_offset, e, out);
}

}  // namespace ledkde
