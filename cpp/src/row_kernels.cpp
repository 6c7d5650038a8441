// Definitions of row_kernels.h: one inline template per operation, and a
// target-cloned entry point per precision.
#include "row_kernels.h"

#include <cmath>
#include <limits>

#include "ledkde/tile_math.h"

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define LEDKDE_CLONES __attribute__((target_clones("avx512f", "arch=haswell", "default")))
#else
#define LEDKDE_CLONES
#endif

namespace ledkde::rows {
namespace {

template <class T>
inline T max_of(const T* x, int64_t nb) {
  T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
  for (int64_t j = 0; j < nb; ++j) m = x[j] > m ? x[j] : m;
  return m;
}

template <class T>
inline T logits_expansion_t(const T* norm2, const T* g, T ny, const T* cprime, const T* k, T k0,
                            int64_t nb, T* x) {
  if (cprime == nullptr) {
    for (int64_t j = 0; j < nb; ++j) x[j] = -(ny + norm2[j] - T(2) * g[j]) * k0;
  } else {
    for (int64_t j = 0; j < nb; ++j) x[j] = cprime[j] - (ny + norm2[j] - T(2) * g[j]) * k[j];
  }
  return max_of(x, nb);
}

template <class T>
inline T logits_direct_t(const T* row, const T* muT, int64_t ld, int64_t d, const T* cprime,
                         const T* k, T k0, int64_t nb, T* d2, T* x) {
  for (int64_t j = 0; j < nb; ++j) d2[j] = T(0);
  for (int64_t c = 0; c < d; ++c) {
    const T yc = row[c];
    const T* m = muT + c * ld;
    for (int64_t j = 0; j < nb; ++j) {
      const T diff = yc - m[j];
      d2[j] += diff * diff;
    }
  }
  if (cprime == nullptr) {
    for (int64_t j = 0; j < nb; ++j) x[j] = -d2[j] * k0;
  } else {
    for (int64_t j = 0; j < nb; ++j) x[j] = cprime[j] - d2[j] * k[j];
  }
  return max_of(x, nb);
}

template <class T>
inline int64_t count_at_least_t(const T* x, int64_t nb, T cut) {
  int64_t n = 0;
#pragma omp simd reduction(+ : n)
  for (int64_t j = 0; j < nb; ++j) n += x[j] >= cut ? 1 : 0;
  return n;
}

template <class T>
inline void weights_t(T* x, int64_t nb, T shift, double* s_out, double* e_out) {
  T s = T(0), e = T(0);
#pragma omp simd reduction(+ : s, e)
  for (int64_t j = 0; j < nb; ++j) {
    const T z = x[j] - shift;
    const T p = exp_nonpositive(z);
    s += p;
    // p == 0 for -inf logits: keep 0 * -inf out of the entropy sum.
    e += p > T(0) ? p * z : T(0);
    x[j] = p;
  }
  *s_out = static_cast<double>(s);
  *e_out = static_cast<double>(e);
}

template <class T>
inline double scale_t(T* x, const T* k, int64_t nb) {
  T s = T(0);
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < nb; ++j) {
    x[j] *= T(2) * k[j];
    s += x[j];
  }
  return static_cast<double>(s);
}

template <class T>
inline void weighted_sum_direct_t(const T* p, const T* muT, int64_t ld, int64_t d, int64_t nb,
                                  double scale, double* acc) {
  for (int64_t c = 0; c < d; ++c) {
    const T* m = muT + c * ld;
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < nb; ++j) s += p[j] * m[j];
    acc[c] += scale * static_cast<double>(s);
  }
}

}  // namespace

#define LEDKDE_ROW_KERNELS(T)                                                                     \
  LEDKDE_CLONES T logits_expansion(const T* norm2, const T* g, T ny, const T* cprime, const T* k, \
                                   T k0, int64_t nb, T* x) {                                      \
    return logits_expansion_t(norm2, g, ny, cprime, k, k0, nb, x);                                \
  }                                                                                               \
  LEDKDE_CLONES T logits_direct(const T* row, const T* muT, int64_t ld, int64_t d,                \
                                const T* cprime, const T* k, T k0, int64_t nb, T* d2, T* x) {     \
    return logits_direct_t(row, muT, ld, d, cprime, k, k0, nb, d2, x);                            \
  }                                                                                               \
  LEDKDE_CLONES int64_t count_at_least(const T* x, int64_t nb, T cut) {                           \
    return count_at_least_t(x, nb, cut);                                                          \
  }                                                                                               \
  LEDKDE_CLONES void weights(T* x, int64_t nb, T shift, double* s, double* e) {                   \
    weights_t(x, nb, shift, s, e);                                                                \
  }                                                                                               \
  LEDKDE_CLONES double scale_by_inverse_variance(T* x, const T* k, int64_t nb) {                  \
    return scale_t(x, k, nb);                                                                     \
  }                                                                                               \
  LEDKDE_CLONES void weighted_sum_direct(const T* p, const T* muT, int64_t ld, int64_t d,         \
                                         int64_t nb, double scale, double* acc) {                 \
    weighted_sum_direct_t(p, muT, ld, d, nb, scale, acc);                                         \
  }

LEDKDE_ROW_KERNELS(float)
LEDKDE_ROW_KERNELS(double)
#undef LEDKDE_ROW_KERNELS

}  // namespace ledkde::rows
