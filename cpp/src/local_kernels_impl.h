// Definitions of the LS kernels (local_kernels_decl.h) in namespace
// ledkde::local_kernels::LEDKDE_ROWS_ISA: each of local_kernels_{avx512,avx2,
// base}.cpp defines that name and includes this file, compiled with its own
// instruction-set flags; local_kernels.cpp picks one at load time (the row
// kernels' choice, cpu_isa.h). Every step runs across the kLsLanes training
// images of a group at once (Lanes, below), so that the image's edges and the
// window's rows cost nothing per lane.
#ifndef LEDKDE_ROWS_ISA
#error "define LEDKDE_ROWS_ISA before including local_kernels_impl.h"
#endif

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

#include "ledkde/tile_math.h"
#include "local_lanes.h"

// The vectors of the instruction set's own width kW (GCC's vector
// extension): 8 doubles for AVX-512, 4 for AVX2, 2 for SSE2; VF: kW floats,
// for the float exponential.
namespace ledkde {
namespace local_lanes::LEDKDE_ROWS_ISA {
#if defined(__AVX512F__)
constexpr int64_t kW = 8;
#elif defined(__AVX2__)
constexpr int64_t kW = 4;
#else
constexpr int64_t kW = 2;
#endif
using V = double __attribute__((vector_size(kW * sizeof(double))));
using VF = float __attribute__((vector_size(kW * sizeof(float))));
using VBits = uint64_t __attribute__((vector_size(kW * sizeof(uint64_t))));
using VFBits = uint32_t __attribute__((vector_size(kW * sizeof(uint32_t))));
}  // namespace local_lanes::LEDKDE_ROWS_ISA
template <>
struct ExpLanes<local_lanes::LEDKDE_ROWS_ISA::V> {
  using Scalar = double;
  using Bits = local_lanes::LEDKDE_ROWS_ISA::VBits;
};
template <>
struct ExpLanes<local_lanes::LEDKDE_ROWS_ISA::VF> {
  using Scalar = float;
  using Bits = local_lanes::LEDKDE_ROWS_ISA::VFBits;
};
}  // namespace ledkde

namespace ledkde::local_kernels::LEDKDE_ROWS_ISA {
namespace {

// Every helper that takes or returns vectors is inlined.
#define LEDKDE_LANES inline __attribute__((always_inline))

using local_lanes::LEDKDE_ROWS_ISA::kW;
using local_lanes::LEDKDE_ROWS_ISA::V;
using local_lanes::LEDKDE_ROWS_ISA::VF;
constexpr int64_t kL = kLsLanes, kSub = kLsLanes / kW;
static_assert(kLsLanes % kW == 0, "the lanes must fill whole vectors");

// The kL lanes of a group as kSub vectors, with lane-wise arithmetic.
struct Lanes {
  V s[kSub];
};
#define LEDKDE_LANEWISE(op)                                  \
  LEDKDE_LANES Lanes operator op(Lanes a, Lanes b) {          \
    for (int64_t k = 0; k < kSub; ++k) a.s[k] = a.s[k] op b.s[k]; \
    return a;                                                \
  }                                                          \
  LEDKDE_LANES Lanes operator op(Lanes a, double b) {         \
    for (int64_t k = 0; k < kSub; ++k) a.s[k] = a.s[k] op b; \
    return a;                                                \
  }                                                          \
  LEDKDE_LANES Lanes operator op(double a, Lanes b) {         \
    for (int64_t k = 0; k < kSub; ++k) b.s[k] = a op b.s[k]; \
    return b;                                                \
  }
LEDKDE_LANEWISE(+)
LEDKDE_LANEWISE(-)
LEDKDE_LANEWISE(*)
#undef LEDKDE_LANEWISE
LEDKDE_LANES void operator+=(Lanes& a, Lanes b) { a = a + b; }

LEDKDE_LANES Lanes load(const double* p) {
  Lanes v;
  for (int64_t k = 0; k < kSub; ++k) std::memcpy(&v.s[k], p + k * kW, sizeof(V));
  return v;
}
LEDKDE_LANES void store(double* p, Lanes v) {
  for (int64_t k = 0; k < kSub; ++k) std::memcpy(p + k * kW, &v.s[k], sizeof(V));
}

// float to double and back, kW at a time (GCC's __builtin_convertvector
// splits the AVX-512 conversion in two halves).
LEDKDE_LANES V widen(VF v) {
#if defined(__AVX512F__)
  return reinterpret_cast<V>(_mm512_cvtps_pd(reinterpret_cast<__m256>(v)));
#else
  return __builtin_convertvector(v, V);
#endif
}
LEDKDE_LANES VF narrow(V v) {
#if defined(__AVX512F__)
  return reinterpret_cast<VF>(_mm512_cvtpd_ps(reinterpret_cast<__m512d>(v)));
#else
  return __builtin_convertvector(v, VF);
#endif
}
LEDKDE_LANES Lanes load_values(const double* p) { return load(p); }
LEDKDE_LANES Lanes load_values(const float* p) {
  Lanes out;
  for (int64_t k = 0; k < kSub; ++k) {
    VF v;
    std::memcpy(&v, p + k * kW, sizeof v);
    out.s[k] = widen(v);
  }
  return out;
}

// Lane-wise max(a, b), and whether any lane of a exceeds b's.
LEDKDE_LANES Lanes max(Lanes a, Lanes b) {
  for (int64_t k = 0; k < kSub; ++k) a.s[k] = a.s[k] > b.s[k] ? a.s[k] : b.s[k];
  return a;
}
LEDKDE_LANES bool any_greater(Lanes a, Lanes b) {
  bool any = false;
  for (int64_t k = 0; k < kSub; ++k) {
#if defined(__AVX512F__)
    any |= _mm512_cmp_pd_mask(reinterpret_cast<__m512d>(a.s[k]), reinterpret_cast<__m512d>(b.s[k]), _CMP_GT_OQ) != 0;
#elif defined(__AVX2__)
    any |= _mm256_movemask_pd(_mm256_cmp_pd(reinterpret_cast<__m256d>(a.s[k]), reinterpret_cast<__m256d>(b.s[k]),
                                            _CMP_GT_OQ)) != 0;
#else
    const auto gt = a.s[k] > b.s[k];
    for (int64_t l = 0; l < kW; ++l) any |= gt[l] != 0;
#endif
  }
  return any;
}

// exp(z) lane-wise for z <= 0 in double; and as weights in the working
// precision of data of type T: float data take the float exponential (its 2
// ulp are far below float32's own rounding of the result), float64 data the
// double one. (-inf - -inf is NaN, and exp_nonpositive gives 0 for it: a lane
// that has seen only images of weight 0, such as the padding lanes of the
// last group, stays empty.)
LEDKDE_LANES Lanes exp_lanes(Lanes z) {
  for (int64_t k = 0; k < kSub; ++k) z.s[k] = exp_nonpositive(z.s[k]);
  return z;
}
LEDKDE_LANES Lanes weights(Lanes z, const double*) { return exp_lanes(z); }
LEDKDE_LANES Lanes weights(Lanes z, const float*) {
  for (int64_t k = 0; k < kSub; ++k) z.s[k] = widen(exp_nonpositive(narrow(z.s[k])));
  return z;
}

// The coordinate of index k of a line of length len extended by r on each
// side: k - r wrapped (circular) or -1 outside (zero).
inline int64_t source(int64_t k, int64_t r, int64_t len, bool circular) {
  const int64_t j = k - r;
  if (circular) return ((j % len) + len) % len;
  return (j < 0 || j >= len) ? -1 : j;
}

// e[j] = sum_c (y[j, c] - x[j, c])^2 per lane for the w pixels of one row.
template <class T>
LEDKDE_LANES void squared_differences(const double* y, const T* x, int64_t w, int64_t c, double* __restrict e) {
  for (int64_t j = 0; j < w; ++j) {
    Lanes s{};
    for (int64_t ch = 0; ch < c; ++ch) {
      const Lanes dl = y[j * c + ch] - load_values(x + (j * c + ch) * kL);
      s += dl * dl;
    }
    store(e + j * kL, s);
  }
}

// hs[i, j] = sum of e over the columns of j's window, for every row i of the
// image: e of the row written into ext (w + 2r) between its r pad columns on
// each side (zero, or wrapped), then a sliding sum along the row.
template <class T>
void row_window_sums(const double* y, const T* xg, int64_t h, int64_t w, int64_t c, int64_t r, bool circular,
                     double* __restrict ext, double* __restrict hs) {
  for (int64_t i = 0; i < h; ++i) {
    squared_differences(y + i * w * c, xg + i * w * c * kL, w, c, ext + r * kL);
    for (int64_t k = 0; k < r; ++k) {
      const int64_t jl = source(k, r, w, circular), jr = source(w + r + k, r, w, circular);
      store(ext + k * kL, jl < 0 ? Lanes{} : load(ext + (jl + r) * kL));
      store(ext + (w + r + k) * kL, jr < 0 ? Lanes{} : load(ext + (jr + r) * kL));
    }
    Lanes acc{};
    for (int64_t k = 0; k <= 2 * r; ++k) acc += load(ext + k * kL);
    double* out = hs + i * w * kL;
    store(out, acc);
    for (int64_t j = 1; j < w; ++j) {
      acc += load(ext + (j + 2 * r) * kL) - load(ext + (j - 1) * kL);
      store(out + j * kL, acc);
    }
  }
}

// v += hs row k (a row of w pixels); k < 0 is a zero row.
inline void add_row(const double* hs, int64_t k, int64_t w, double* __restrict v) {
  if (k < 0) return;
  const double* src = hs + k * w * kL;
  for (int64_t e = 0; e < w * kL; ++e) v[e] += src[e];
}

// The window sums of row i's pixel j from row i - 1's: add the row that
// enters the window (hs row in), take away the one that leaves (out); either
// may be a zero row (null; none enters or leaves for row 0).
struct Slide {
  const double* in;
  const double* out;
  LEDKDE_LANES Lanes next(double* v, int64_t j) const {
    Lanes s = load(v + j * kL);
    if (in) s += load(in + j * kL);
    if (out) s = s - load(out + j * kL);
    store(v + j * kL, s);
    return s;
  }
};

// One pixel's online log-sum-exp update from its lanes' logits L: its state
// (m, S, A: c x kL) moves onto the lanes' new maxima where a logit exceeds
// them (rare after the first groups), then the weights exp(L - m) are added
// to S, and times the pixel's training values x (c x kL) to A.
template <class T>
LEDKDE_LANES void accumulate(Lanes L, const T* x, int64_t c, double* __restrict m, double* __restrict S,
                             double* __restrict A) {
  Lanes mv = load(m);
  if (any_greater(L, mv)) {
    const Lanes top = max(L, mv);
    const Lanes f = exp_lanes(mv - top);
    mv = top;
    store(m, mv);
    store(S, load(S) * f);
    for (int64_t ch = 0; ch < c; ++ch) store(A + ch * kL, load(A + ch * kL) * f);
  }
  const Lanes wt = weights(L - mv, x);
  store(S, load(S) + wt);
  for (int64_t ch = 0; ch < c; ++ch) store(A + ch * kL, load(A + ch * kL) + wt * load_values(x + ch * kL));
}

template <class T>
void ls_group_t(const double* y, const T* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
                bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  double* hs = scratch;         // (h, w, kL)
  double* v = hs + h * w * kL;  // (w, kL): the window sums of the current row
  double* ext = v + w * kL;     // (w + 2r, kL)
  row_window_sums(y, xg, h, w, c, r, circular, ext, hs);
  std::fill(v, v + w * kL, 0.0);
  for (int64_t k = 0; k < 2 * r; ++k) add_row(hs, source(k, r, h, circular), w, v);
  const Lanes lwv = load(lw);
  auto row = [&](int64_t k) { return k < 0 ? nullptr : hs + k * w * kL; };
  for (int64_t i = 0; i < h; ++i) {
    const Slide sl{row(source(i + 2 * r, r, h, circular)), i > 0 ? row(source(i - 1, r, h, circular)) : nullptr};
    for (int64_t j = 0; j < w; ++j) {
      const int64_t p = i * w + j;
      accumulate(lwv - sl.next(v, j) * inv2t, xg + p * c * kL, c, m + p * kL, S + p * kL, A + p * c * kL);
    }
  }
}

}  // namespace

int64_t ls_scratch(int64_t h, int64_t w, int64_t r) { return (h * w + 2 * w + 2 * r) * kL; }

void ls_group(const double* y, const float* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
              bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  ls_group_t(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
}
void ls_group(const double* y, const double* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
              bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  ls_group_t(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
}

#undef LEDKDE_LANES

}  // namespace ledkde::local_kernels::LEDKDE_ROWS_ISA
