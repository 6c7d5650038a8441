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

// Whether any lane of a exceeds b's.
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

// The weights exp(z) lane-wise (z <= 0) in the working precision of data of
// type T: float data take the float exponential (its 2 ulp are far below
// float32's own rounding of the result), float64 data the double one.
// (-inf - -inf is NaN, and exp_nonpositive gives 0 for it: a pixel that has
// seen only images of weight 0, such as the padding lanes of the last group,
// stays empty.)
LEDKDE_LANES Lanes weights(Lanes z, const double*) {
  for (int64_t k = 0; k < kSub; ++k) z.s[k] = exp_nonpositive(z.s[k]);
  return z;
}
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

// The window sums along columns, a row at a time: ext holds the sums over
// the column window of the current row (w pixels between r pad columns on
// each side), updated as a row of squared differences e = sum_c (y - x)^2
// enters the window and another leaves; ring holds the rows of e in the
// window (row k of the image extended by r rows on each side in slot k mod
// (2r + 2); the extended rows are zero outside the image, or wrapped).
struct ColumnWindow {
  int64_t h, w, c, r, slots;
  bool circular;
  double* ring;  // (2r + 2, w, kL)
  double* ext;   // (w + 2r, kL)

  double* slot(int64_t k) const { return ring + (k % slots) * w * kL; }

  // Writes row k of the extended image's e into its slot and returns it.
  template <class T>
  LEDKDE_LANES double* enter(int64_t k, const double* y, const T* xg) const {
    double* e = slot(k);
    const int64_t i = source(k, r, h, circular);
    if (i < 0) {
      std::fill(e, e + w * kL, 0.0);
      return e;
    }
    const double* yi = y + i * w * c;
    const T* xi = xg + i * w * c * kL;
    for (int64_t j = 0; j < w; ++j) {
      Lanes s{};
      for (int64_t ch = 0; ch < c; ++ch) {
        const Lanes dl = yi[j * c + ch] - load_values(xi + (j * c + ch) * kL);
        s += dl * dl;
      }
      store(e + j * kL, s);
    }
    return e;
  }

  // Starts the column sums with the extended rows 0 .. 2r - 1.
  template <class T>
  void start(const double* y, const T* xg) const {
    std::fill(ext, ext + (w + 2 * r) * kL, 0.0);
    double* u = ext + r * kL;
    for (int64_t k = 0; k < 2 * r; ++k) {
      const double* e = enter(k, y, xg);
      for (int64_t q = 0; q < w * kL; ++q) u[q] += e[q];
    }
  }

  // The column sums of output row i: extended row i + 2r enters, i - 1
  // leaves; then the pad columns (zero, or wrapped from the row itself).
  template <class T>
  void advance(int64_t i, const double* y, const T* xg) const {
    double* u = ext + r * kL;
    const double* in = enter(i + 2 * r, y, xg);
    if (i == 0) {
      for (int64_t q = 0; q < w * kL; ++q) u[q] += in[q];
    } else {
      const double* out = slot(i - 1);
      for (int64_t q = 0; q < w * kL; ++q) u[q] += in[q] - out[q];
    }
    if (!circular) return;
    for (int64_t k = 0; k < r; ++k) {
      store(ext + k * kL, load(u + source(k, r, w, true) * kL));
      store(ext + (w + r + k) * kL, load(u + source(w + r + k, r, w, true) * kL));
    }
  }
};

// One pixel's online log-sum-exp update from its lanes' logits L: its state
// (the maximum *m, shared by the lanes; S: kL, A: c x kL) moves onto a new
// maximum when a logit exceeds the pixel's maximum so far (rare after the
// first groups), then the weights exp(L - m) are added to S, and times the
// pixel's training values x (c x kL) to A.
template <class T>
LEDKDE_LANES void accumulate(Lanes L, const T* x, int64_t c, double* __restrict m, double* __restrict S,
                             double* __restrict A) {
  if (any_greater(L, Lanes{} + *m)) {
    double top = *m;
    for (int64_t k = 0; k < kSub; ++k)
      for (int64_t l = 0; l < kW; ++l) top = std::max(top, static_cast<double>(L.s[k][l]));
    const double f = *m == neg_inf() ? 0.0 : std::exp(*m - top);
    *m = top;
    store(S, load(S) * f);
    for (int64_t ch = 0; ch < c; ++ch) store(A + ch * kL, load(A + ch * kL) * f);
  }
  const Lanes mv = Lanes{} + *m;
  const Lanes wt = weights(L - mv, x);
  store(S, load(S) + wt);
  for (int64_t ch = 0; ch < c; ++ch) store(A + ch * kL, load(A + ch * kL) + wt * load_values(x + ch * kL));
}

template <class T>
void ls_group_t(const double* y, const T* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
                bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  const ColumnWindow cw{h, w, c, r, 2 * r + 2, circular, scratch, scratch + (2 * r + 2) * w * kL};
  cw.start(y, xg);
  const Lanes lwv = load(lw);
  for (int64_t i = 0; i < h; ++i) {
    cw.advance(i, y, xg);
    // Along the row: a sliding sum over the column sums of the 2r + 1 columns.
    Lanes acc{};
    for (int64_t k = 0; k < 2 * r; ++k) acc += load(cw.ext + k * kL);
    for (int64_t j = 0; j < w; ++j) {
      acc += load(cw.ext + (j + 2 * r) * kL);
      const int64_t p = i * w + j;
      accumulate(lwv - acc * inv2t, xg + p * c * kL, c, m + p, S + p * kL, A + p * c * kL);
      acc = acc - load(cw.ext + j * kL);
    }
  }
}

}  // namespace

int64_t ls_scratch(int64_t, int64_t w, int64_t r) { return ((2 * r + 2) * w + w + 2 * r) * kL; }

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
