// Definitions of the row kernels: one inline template per operation and an
// entry point per precision, in namespace ledkde::rows::LEDKDE_ROWS_ISA. Each
// of row_kernels_{avx512,avx2,base}.cpp defines that name and includes this
// file, compiled with its own instruction-set flags; row_kernels.cpp picks
// one at load time.
#ifndef LEDKDE_ROWS_ISA
#error "define LEDKDE_ROWS_ISA before including row_kernels_impl.h"
#endif

#include <cstdint>

#include <cmath>
#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif
#include <limits>

#include "ledkde/tile_math.h"
#include "tile_gemm.h"

// The templates below are inlined into each entry point.
#if defined(__GNUC__)
#define LEDKDE_INLINE inline __attribute__((always_inline))
#else
#define LEDKDE_INLINE inline
#endif

namespace ledkde::rows::LEDKDE_ROWS_ISA {
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

// Blocks of kSkipBlock weights whose shifted logits all lie below `skip`
// are written as zeros without evaluating the exponential (see
// expansion_weights in row_kernels_decl.h); the tile products skip them.
constexpr int64_t kSkipBlock = tile_gemm::kLiveBlock;

// expansion_weights keeps its sums, counts and maxima in kLanes partial
// values across the blocks and adds them up once at the end. (An `omp simd`
// reduction per block of 64 ended each block with a chain of dependent scalar
// additions, 16 long for AVX-512's vectors: alone, bench/weights_kernel.cpp,
// 0.71 ns per pair with the AVX-512 build and 0.50 with AVX2 on a Zen 4 core;
// 0.41 and 0.40 with the lanes, which also keep GCC's vectors at 8 floats.)
constexpr int kLanes = 8;
static_assert(kSkipBlock % kLanes == 0, "a skip block must hold whole lane groups");

// The largest of the lanes, by pairwise halving (a maximum's order does not matter).
template <class T>
LEDKDE_INLINE T lanes_max(T (&m)[kLanes]) {
#pragma GCC unroll 4
  for (int w = kLanes / 2; w > 0; w /= 2)
#pragma omp simd
    for (int l = 0; l < w; ++l) m[l] = m[l + w] > m[l] ? m[l + w] : m[l];
  return m[0];
}

template <class T, bool PerComp, bool Entropy>
LEDKDE_INLINE void expansion_weights_t(const T* norm2, const T* g, T ny, const T* cprime,
                                       const T* k, T k0, int64_t nb, T shift, T cut, T skip, T* p,
                                       double* sums, uint8_t* live) {
  constexpr T kNegInf = -std::numeric_limits<T>::infinity();
  const auto logit = [&](int64_t j) {
    if constexpr (PerComp) return cprime[j] - (ny + norm2[j] - T(2) * g[j]) * k[j] - shift;
    else return -(ny + norm2[j] - T(2) * g[j]) * k0 - shift;
  };
  // Lane l takes the components j0 + l + kLanes i of each whole block; the
  // last block, when nb cuts it short, goes to lane 0 one by one.
  T s[kLanes] = {}, e[kLanes] = {}, c[kLanes] = {}, zm[kLanes];
  for (int l = 0; l < kLanes; ++l) zm[l] = kNegInf;
  for (int64_t j0 = 0; j0 < nb; j0 += kSkipBlock) {
    const bool whole = j0 + kSkipBlock <= nb;
    const int64_t j1 = whole ? j0 + kSkipBlock : nb;
    T bm[kLanes];
    for (int l = 0; l < kLanes; ++l) bm[l] = kNegInf;
    if (whole) {
      for (int64_t b = j0; b < j1; b += kLanes) {
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) {
          const T z = logit(b + l);
          p[b + l] = z;
          bm[l] = z > bm[l] ? z : bm[l];
          c[l] += z >= cut ? T(1) : T(0);
        }
      }
    } else {
      for (int64_t j = j0; j < j1; ++j) {
        const T z = logit(j);
        p[j] = z;
        bm[0] = z > bm[0] ? z : bm[0];
        c[0] += z >= cut ? T(1) : T(0);
      }
    }
#pragma omp simd
    for (int l = 0; l < kLanes; ++l) zm[l] = bm[l] > zm[l] ? bm[l] : zm[l];
    const bool dead = lanes_max(bm) < skip;
    live[j0 / kSkipBlock] = !dead;
    if (dead) {
      for (int64_t j = j0; j < j1; ++j) p[j] = T(0);
      continue;
    }
    const auto weigh = [&](int64_t j, int l) {
      const T z = p[j];
      const T w = exp_nonpositive(z);
      s[l] += w;
      if constexpr (Entropy) e[l] += entropy_term(w, z);
      p[j] = w;
    };
    if (whole) {
      for (int64_t b = j0; b < j1; b += kLanes) {
#pragma omp simd
        for (int l = 0; l < kLanes; ++l) weigh(b + l, l);
      }
    } else {
      for (int64_t j = j0; j < j1; ++j) weigh(j, 0);
    }
  }
  double ss = 0.0, es = 0.0, cs = 0.0;
  for (int l = 0; l < kLanes; ++l) {
    ss += static_cast<double>(s[l]);
    es += static_cast<double>(e[l]);
    cs += static_cast<double>(c[l]);
  }
  sums[0] = ss;
  sums[1] = es;
  sums[2] = static_cast<double>(lanes_max(zm));
  sums[3] = cs;
}

// Float64 logits of squared distances D_j: l_j = c'_j - D_j k_j (cprime
// given) or -D_j k0, with D_j = ny + n2_j - 2 g_j when n2 is given, else
// D_j = l_j on entry (in place). Returns max_j l_j.
template <class T>
inline double logits_f64_t(const double* n2, const double* g, double ny, const T* cprime, const T* k, double k0,
                           int64_t nb, double* l) {
  double mx = -std::numeric_limits<double>::infinity();
  if (cprime) {
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < nb; ++j) {
      const double d2 = n2 ? ny + n2[j] - 2.0 * g[j] : l[j];
      l[j] = static_cast<double>(cprime[j]) - d2 * static_cast<double>(k[j]);
      mx = l[j] > mx ? l[j] : mx;
    }
  } else {
#pragma omp simd reduction(max : mx)
    for (int64_t j = 0; j < nb; ++j) {
      const double d2 = n2 ? ny + n2[j] - 2.0 * g[j] : l[j];
      l[j] = -d2 * k0;
      mx = l[j] > mx ? l[j] : mx;
    }
  }
  return mx;
}

inline int64_t count_at_least_t(const double* x, int64_t nb, double cut) {
  int64_t n = 0;
#pragma omp simd reduction(+ : n)
  for (int64_t j = 0; j < nb; ++j) n += x[j] >= cut ? 1 : 0;
  return n;
}

template <class T>
inline void shifted_t(const double* l, int64_t nb, double m, T* x) {
#pragma omp simd
  for (int64_t j = 0; j < nb; ++j) x[j] = static_cast<T>(l[j] - m);
}

// Bit b of the result: x[b] >= cut, for the kSkipBlock (64) values of a whole
// block (vector compares where the instruction set has them).
inline uint64_t at_least_mask(const float* x, float cut) {
  uint64_t m = 0;
#if defined(__AVX512F__)
  const __m512 c = _mm512_set1_ps(cut);
  for (int v = 0; v < 4; ++v)
    m |= static_cast<uint64_t>(_mm512_cmp_ps_mask(_mm512_loadu_ps(x + 16 * v), c, _CMP_GE_OQ)) << (16 * v);
#elif defined(__AVX2__)
  const __m256 c = _mm256_set1_ps(cut);
  for (int v = 0; v < 8; ++v)
    m |= static_cast<uint64_t>(_mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 8 * v), c, _CMP_GE_OQ)))
         << (8 * v);
#else
  for (int j = 0; j < 64; ++j) m |= static_cast<uint64_t>(x[j] >= cut) << j;
#endif
  return m;
}

inline uint64_t at_least_mask(const double* x, double cut) {
  uint64_t m = 0;
#if defined(__AVX512F__)
  const __m512d c = _mm512_set1_pd(cut);
  for (int v = 0; v < 8; ++v)
    m |= static_cast<uint64_t>(_mm512_cmp_pd_mask(_mm512_loadu_pd(x + 8 * v), c, _CMP_GE_OQ)) << (8 * v);
#elif defined(__AVX2__)
  const __m256d c = _mm256_set1_pd(cut);
  for (int v = 0; v < 16; ++v)
    m |= static_cast<uint64_t>(_mm256_movemask_pd(_mm256_cmp_pd(_mm256_loadu_pd(x + 4 * v), c, _CMP_GE_OQ)))
         << (4 * v);
#else
  for (int j = 0; j < 64; ++j) m |= static_cast<uint64_t>(x[j] >= cut) << j;
#endif
  return m;
}

template <class T>
inline int64_t indices_at_least_t(const T* x, int64_t nb, T cut, int64_t* idx) {
  static_assert(kSkipBlock == 64, "at_least_mask covers blocks of 64");
  int64_t n = 0;
  int64_t j0 = 0;
  for (; j0 + kSkipBlock <= nb; j0 += kSkipBlock) {
    // One bit per value: the cost is the compares and one step per index found.
    for (uint64_t m = at_least_mask(x + j0, cut); m != 0; m &= m - 1) idx[n++] = j0 + __builtin_ctzll(m);
  }
  for (int64_t j = j0; j < nb; ++j) {  // a partial last block
    idx[n] = j;
    n += x[j] >= cut ? 1 : 0;
  }
  return n;
}

template <class T>
inline double sum_t(const T* x, int64_t nb) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < nb; ++j) s += x[j];
  return static_cast<double>(s);
}

template <class T>
inline double dot_t(const T* a, const T* b, int64_t nb) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < nb; ++j) s += a[j] * b[j];
  return static_cast<double>(s);
}

// |row - mu_j|^2 for the count rows j = idx[c] of mu, by coordinate
// differences accumulated in float64, four at a time: four independent
// accumulators, so the sums are not bound by the latency of one chain. Every
// exact distance of the engine comes from here (a single one too, as a group
// whose last index repeats), so a distance does not depend on its group.
template <class T>
inline void exact_dist2s_t(const T* row, const T* mu, int64_t d, const int64_t* idx, int64_t count, double* out) {
  for (int64_t c = 0; c < count; c += 4) {
    const int64_t last = count - 1;
    const T* a0 = mu + idx[c] * d;
    const T* a1 = mu + idx[c + 1 < count ? c + 1 : last] * d;
    const T* a2 = mu + idx[c + 2 < count ? c + 2 : last] * d;
    const T* a3 = mu + idx[c + 3 < count ? c + 3 : last] * d;
    double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t k = 0; k < d; ++k) {
      const double r = static_cast<double>(row[k]);
      const double e0 = r - static_cast<double>(a0[k]), e1 = r - static_cast<double>(a1[k]);
      const double e2 = r - static_cast<double>(a2[k]), e3 = r - static_cast<double>(a3[k]);
      s0 += e0 * e0;
      s1 += e1 * e1;
      s2 += e2 * e2;
      s3 += e3 * e3;
    }
    out[c] = s0;
    if (c + 1 < count) out[c + 1] = s1;
    if (c + 2 < count) out[c + 2] = s2;
    if (c + 3 < count) out[c + 3] = s3;
  }
}

// Four dot products at a time (four independent accumulators, so the sums
// are not bound by the latency of one chain), in the working precision.
template <class T>
inline void dots_t(const T* row, const T* mu, int64_t d, const uint32_t* idx, int64_t count, double* out) {
  int64_t c = 0;
  for (; c + 4 <= count; c += 4) {
    const T* a0 = mu + static_cast<int64_t>(idx[c]) * d;
    const T* a1 = mu + static_cast<int64_t>(idx[c + 1]) * d;
    const T* a2 = mu + static_cast<int64_t>(idx[c + 2]) * d;
    const T* a3 = mu + static_cast<int64_t>(idx[c + 3]) * d;
    T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
    for (int64_t k = 0; k < d; ++k) {
      const T r = row[k];
      s0 += r * a0[k];
      s1 += r * a1[k];
      s2 += r * a2[k];
      s3 += r * a3[k];
    }
    out[c] = s0;
    out[c + 1] = s1;
    out[c + 2] = s2;
    out[c + 3] = s3;
  }
  for (; c < count; ++c) {
    const T* a = mu + static_cast<int64_t>(idx[c]) * d;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (int64_t k = 0; k < d; ++k) s += row[k] * a[k];
    out[c] = s;
  }
}

template <class T>
inline void add_scaled_t(const T* x, int64_t n, double scale, double* acc) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) acc[j] += scale * static_cast<double>(x[j]);
}

template <class T>
inline void weights_t(T* x, int64_t nb, T shift, double* s_out, double* e_out) {
  T s = T(0), e = T(0);
#pragma omp simd reduction(+ : s, e)
  for (int64_t j = 0; j < nb; ++j) {
    const T z = x[j] - shift;
    const T p = exp_nonpositive(z);
    s += p;
    e += entropy_term(p, z);
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
inline void weighted_sum_direct_t(const T* p, const T* row, const T* muT, int64_t ld, int64_t d,
                                  int64_t nb, double scale, double* acc) {
  for (int64_t c = 0; c < d; ++c) {
    const T* m = muT + c * ld;
    const T yc = row[c];
    T s = T(0);
    // mu - y, not mu: exact for the nearby components that carry the weight,
    // where a sum of p mu far from the origin would cancel against y sum p.
#pragma omp simd reduction(+ : s)
    for (int64_t j = 0; j < nb; ++j) s += p[j] * (m[j] - yc);
    acc[c] += scale * static_cast<double>(s);
  }
}

// ---- Fused direct path (d <= kDirectMaxDim), the dimension a template
// argument so that the coordinates and the per-coordinate sums live in
// registers. Kind: 0 = equal weights and variances (x = -d2 k0),
// 1 = per-component c'_j and k_j, 2 = as 1 and the sums weighted by 2 k_j.

// Coordinate c's row of the components (a valid pointer for c >= D too; never read then).
template <class T, int D>
LEDKDE_INLINE const T* coord(const T* muT, int64_t ld, int c) {
  return muT + (c < D ? c : 0) * ld;
}

template <class T, int D>
LEDKDE_INLINE T dist2_at(const T* y, const T* muT, int64_t ld, int64_t j) {
  const T d0 = y[0] - muT[j];
  T s = d0 * d0;
#pragma GCC unroll 8
  for (int c = 1; c < D; ++c) {
    const T diff = y[c] - muT[c * ld + j];
    s += diff * diff;
  }
  return s;
}

template <class T, int D, int Kind>
LEDKDE_INLINE T direct_max_t(const T* row, const T* muT, int64_t ld, const T* cprime, const T* k,
                             T k0, int64_t nb) {
  T y[D];
  for (int c = 0; c < D; ++c) y[c] = row[c];
  if constexpr (Kind == 0) {
    // -d2 k0 is monotone in d2 (k0 > 0), rounding included: the largest
    // logit is -(min d2) k0, the very value the accumulate sweep computes.
    T lo = std::numeric_limits<T>::infinity();
#pragma omp simd reduction(min : lo)
    for (int64_t j = 0; j < nb; ++j) {
      const T d2 = dist2_at<T, D>(y, muT, ld, j);
      lo = d2 < lo ? d2 : lo;
    }
    return -(lo * k0);
  } else {
    T m = -std::numeric_limits<T>::infinity();
#pragma omp simd reduction(max : m)
    for (int64_t j = 0; j < nb; ++j) {
      const T x = cprime[j] - dist2_at<T, D>(y, muT, ld, j) * k[j];
      m = x > m ? x : m;
    }
    return m;
  }
}

template <class T, int D, int Kind, bool Entropy>
LEDKDE_INLINE void direct_accumulate_t(const T* row, const T* muT, int64_t ld, const T* cprime,
                                       const T* k, T k0, int64_t nb, T shift, double scale,
                                       double* sums, double* acc) {
  const T neg_k0 = -k0;
  T y[D];
  for (int c = 0; c < D; ++c) y[c] = row[c];
  const T *m0 = coord<T, D>(muT, ld, 0), *m1 = coord<T, D>(muT, ld, 1),
          *m2 = coord<T, D>(muT, ld, 2), *m3 = coord<T, D>(muT, ld, 3),
          *m4 = coord<T, D>(muT, ld, 4), *m5 = coord<T, D>(muT, ld, 5),
          *m6 = coord<T, D>(muT, ld, 6), *m7 = coord<T, D>(muT, ld, 7);
  // Named scalars, not an array: GCC keeps scalar reductions in registers.
  T s = 0, e = 0, b = 0, a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0;
  T zm = -std::numeric_limits<T>::infinity();
  // One term of the sums: component jj's logit, weight and contributions.
#define LEDKDE_TERM(jj)                                       \
  {                                                           \
    const T d2 = dist2_at<T, D>(y, muT, ld, jj);              \
    T z; /* shifted logit, one FMA when Kind == 0 */          \
    if constexpr (Kind == 0) z = d2 * neg_k0 - shift;         \
    else z = cprime[jj] - d2 * k[jj] - shift;                 \
    zm = z > zm ? z : zm;                                     \
    const T p = exp_nonpositive(z);                           \
    s += p;                                                   \
    if constexpr (Entropy) e += entropy_term(p, z);           \
    T w = p;                                                  \
    if constexpr (Kind == 2) {                                \
      w = p * (T(2) * k[jj]);                                 \
      b += w;                                                 \
    }                                                         \
    a0 += w * (m0[jj] - y[0]);                                \
    if constexpr (D > 1) a1 += w * (m1[jj] - y[1]);           \
    if constexpr (D > 2) a2 += w * (m2[jj] - y[2]);           \
    if constexpr (D > 3) a3 += w * (m3[jj] - y[3]);           \
    if constexpr (D > 4) a4 += w * (m4[jj] - y[4]);           \
    if constexpr (D > 5) a5 += w * (m5[jj] - y[5]);           \
    if constexpr (D > 6) a6 += w * (m6[jj] - y[6]);           \
    if constexpr (D > 7) a7 += w * (m7[jj] - y[7]);           \
  }
  // Two independent halves of the tile per vector step: twice the
  // independent work in flight for the long exp dependency chain.
  const int64_t h = nb / 2;
#pragma omp simd reduction(+ : s, e, b, a0, a1, a2, a3, a4, a5, a6, a7) reduction(max : zm)
  for (int64_t j = 0; j < h; ++j) {
    LEDKDE_TERM(j)
    LEDKDE_TERM(j + h)
  }
  if (nb % 2 == 1) LEDKDE_TERM(nb - 1)
#undef LEDKDE_TERM
  sums[0] = static_cast<double>(s);
  sums[1] = static_cast<double>(e);
  sums[2] = static_cast<double>(Kind == 2 ? b : s);
  sums[3] = static_cast<double>(shift) + static_cast<double>(zm);
  const T a[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
  for (int c = 0; c < D; ++c) acc[c] = scale * static_cast<double>(a[c]);
}

// A switch over the run-time dimension d in [1, 8] that runs CALL with D a
// compile-time constant (a macro, not a lambda: everything must be inlined
// into the target clone that calls it).
#define LEDKDE_WITH_DIM(d, CALL)          \
  switch (d) {                            \
    case 1: { constexpr int D = 1; CALL; } break; \
    case 2: { constexpr int D = 2; CALL; } break; \
    case 3: { constexpr int D = 3; CALL; } break; \
    case 4: { constexpr int D = 4; CALL; } break; \
    case 5: { constexpr int D = 5; CALL; } break; \
    case 6: { constexpr int D = 6; CALL; } break; \
    case 7: { constexpr int D = 7; CALL; } break; \
    default: { constexpr int D = 8; CALL; } break; \
  }

}  // namespace

#define LEDKDE_ROW_KERNELS(T)                                                                     \
  T logits_expansion(const T* norm2, const T* g, T ny, const T* cprime, const T* k, \
                                   T k0, int64_t nb, T* x) {                                      \
    return logits_expansion_t(norm2, g, ny, cprime, k, k0, nb, x);                                \
  }                                                                                               \
  T logits_direct(const T* row, const T* muT, int64_t ld, int64_t d,                \
                                const T* cprime, const T* k, T k0, int64_t nb, T* d2, T* x) {     \
    return logits_direct_t(row, muT, ld, d, cprime, k, k0, nb, d2, x);                            \
  }                                                                                               \
  void expansion_weights(const T* norm2, const T* g, T ny, const T* cprime, const T* k, T k0,   \
                         int64_t nb, T shift, T cut, T skip, bool entropy, T* p, double* sums,    \
                         uint8_t* live) {                                                         \
    if (cprime && entropy)                                                                        \
      expansion_weights_t<T, true, true>(norm2, g, ny, cprime, k, k0, nb, shift, cut, skip, p,    \
                                         sums, live);                                             \
    else if (cprime)                                                                              \
      expansion_weights_t<T, true, false>(norm2, g, ny, cprime, k, k0, nb, shift, cut, skip, p,   \
                                          sums, live);                                            \
    else if (entropy)                                                                             \
      expansion_weights_t<T, false, true>(norm2, g, ny, cprime, k, k0, nb, shift, cut, skip, p,   \
                                          sums, live);                                            \
    else                                                                                          \
      expansion_weights_t<T, false, false>(norm2, g, ny, cprime, k, k0, nb, shift, cut, skip, p,  \
                                           sums, live);                                           \
  }                                                                                               \
  int64_t indices_at_least(const T* x, int64_t nb, T cut, int64_t* idx) {                         \
    return indices_at_least_t(x, nb, cut, idx);                                                   \
  }                                                                                               \
  double sum(const T* x, int64_t nb) { return sum_t(x, nb); }                                     \
  double dot(const T* a, const T* b, int64_t nb) { return dot_t(a, b, nb); }                      \
  double logits_f64(const double* n2, const double* g, double ny, const T* cprime, const T* k,    \
                    double k0, int64_t nb, double* l) {                                           \
    return logits_f64_t(n2, g, ny, cprime, k, k0, nb, l);                                         \
  }                                                                                               \
  void shifted(const double* l, int64_t nb, double m, T* x) { shifted_t(l, nb, m, x); }          \
  double exact_dist2(const T* a, const T* b, int64_t d) {                                        \
    const int64_t zero = 0;                                                                       \
    double out;                                                                                   \
    exact_dist2s_t(a, b, d, &zero, 1, &out);                                                      \
    return out;                                                                                   \
  }                                                                                               \
  void exact_dist2s(const T* row, const T* mu, int64_t d, const int64_t* idx, int64_t count,     \
                    double* out) {                                                                \
    exact_dist2s_t(row, mu, d, idx, count, out);                                                  \
  }                                                                                               \
  void add_scaled(const T* x, int64_t n, double scale, double* acc) {               \
    add_scaled_t(x, n, scale, acc);                                                               \
  }                                                                                               \
  void dots(const T* row, const T* mu, int64_t d, const uint32_t* idx, int64_t count, double* out) { \
    dots_t(row, mu, d, idx, count, out);                                                          \
  }                                                                                               \
  void weights(T* x, int64_t nb, T shift, double* s, double* e) {                   \
    weights_t(x, nb, shift, s, e);                                                                \
  }                                                                                               \
  double scale_by_inverse_variance(T* x, const T* k, int64_t nb) {                  \
    return scale_t(x, k, nb);                                                                     \
  }                                                                                               \
  void weighted_sum_direct(const T* p, const T* row, const T* muT, int64_t ld,      \
                                         int64_t d, int64_t nb, double scale, double* acc) {      \
    weighted_sum_direct_t(p, row, muT, ld, d, nb, scale, acc);                                    \
  }                                                                                               \
  T direct_max(const T* row, const T* muT, int64_t ld, int64_t d, const T* cprime,  \
                             const T* k, T k0, int64_t nb) {                                     \
    T r = T(0);                                                                                   \
    if (cprime) {                                                                                 \
      LEDKDE_WITH_DIM(d, (r = direct_max_t<T, D, 1>(row, muT, ld, cprime, k, k0, nb)))            \
    } else {                                                                                      \
      LEDKDE_WITH_DIM(d, (r = direct_max_t<T, D, 0>(row, muT, ld, cprime, k, k0, nb)))            \
    }                                                                                             \
    return r;                                                                                     \
  }                                                                                               \
  void direct_accumulate(const T* row, const T* muT, int64_t ld, int64_t d,         \
                                       const T* cprime, const T* k, T k0, bool per_var,           \
                                       bool entropy, int64_t nb, T shift, double scale,           \
                                       double* sums, double* acc) {                               \
    const int kind = !cprime ? 0 : (per_var ? 2 : 1);                                             \
    if (kind == 0 && !entropy) {                                                                  \
      LEDKDE_WITH_DIM(d, (direct_accumulate_t<T, D, 0, false>(LEDKDE_ACC_ARGS)))                  \
    } else if (kind == 0) {                                                                       \
      LEDKDE_WITH_DIM(d, (direct_accumulate_t<T, D, 0, true>(LEDKDE_ACC_ARGS)))                   \
    } else if (kind == 1 && !entropy) {                                                           \
      LEDKDE_WITH_DIM(d, (direct_accumulate_t<T, D, 1, false>(LEDKDE_ACC_ARGS)))                  \
    } else if (kind == 1) {                                                                       \
      LEDKDE_WITH_DIM(d, (direct_accumulate_t<T, D, 1, true>(LEDKDE_ACC_ARGS)))                   \
    } else if (!entropy) {                                                                        \
      LEDKDE_WITH_DIM(d, (direct_accumulate_t<T, D, 2, false>(LEDKDE_ACC_ARGS)))                  \
    } else {                                                                                      \
      LEDKDE_WITH_DIM(d, (direct_accumulate_t<T, D, 2, true>(LEDKDE_ACC_ARGS)))                   \
    }                                                                                             \
  }

#define LEDKDE_ACC_ARGS row, muT, ld, cprime, k, k0, nb, shift, scale, sums, acc
LEDKDE_ROW_KERNELS(float)
LEDKDE_ROW_KERNELS(double)
int64_t count_at_least(const double* x, int64_t nb, double cut) { return count_at_least_t(x, nb, cut); }
#undef LEDKDE_ROW_KERNELS
#undef LEDKDE_ACC_ARGS
#undef LEDKDE_WITH_DIM
#undef LEDKDE_INLINE

}  // namespace ledkde::rows::LEDKDE_ROWS_ISA
