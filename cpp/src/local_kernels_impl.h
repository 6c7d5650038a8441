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
// as float data are read.
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
}  // namespace local_lanes::LEDKDE_ROWS_ISA
template <>
struct ExpLanes<local_lanes::LEDKDE_ROWS_ISA::V> {
  using Scalar = double;
  using Bits = local_lanes::LEDKDE_ROWS_ISA::VBits;
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

// Every lane a (a broadcast, not 0 + a: that addition is not exact for a = -0).
LEDKDE_LANES Lanes splat(double a) {
#if defined(__AVX512F__)
  const V v = reinterpret_cast<V>(_mm512_set1_pd(a));
#elif defined(__AVX2__)
  const V v = reinterpret_cast<V>(_mm256_set1_pd(a));
#else
  const V v = {a, a};
#endif
  Lanes out;
  for (int64_t k = 0; k < kSub; ++k) out.s[k] = v;
  return out;
}

LEDKDE_LANES Lanes load(const double* p) {
  Lanes v;
  for (int64_t k = 0; k < kSub; ++k) std::memcpy(&v.s[k], p + k * kW, sizeof(V));
  return v;
}
LEDKDE_LANES void store(double* p, Lanes v) {
  for (int64_t k = 0; k < kSub; ++k) std::memcpy(p + k * kW, &v.s[k], sizeof(V));
}

// float to double, kW at a time (GCC's __builtin_convertvector
// splits the AVX-512 conversion in two halves).
LEDKDE_LANES V widen(VF v) {
#if defined(__AVX512F__)
  return reinterpret_cast<V>(_mm512_cvtps_pd(reinterpret_cast<__m256>(v)));
#else
  return __builtin_convertvector(v, V);
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
// type T: float data take the float exponential's polynomial on the double
// lanes (its 2 ulp are far below float32's own rounding of the result, and
// no lane is converted to float and back), float64 data the double one.
// (-inf - -inf is NaN, and exp_nonpositive gives 0 for it: a pixel that has
// seen only images of weight 0, such as the padding lanes of the last group,
// stays empty.)
LEDKDE_LANES Lanes weights(Lanes z, const double*) {
  for (int64_t k = 0; k < kSub; ++k) z.s[k] = exp_nonpositive(z.s[k]);
  return z;
}
LEDKDE_LANES Lanes weights(Lanes z, const float*) {
  for (int64_t k = 0; k < kSub; ++k) z.s[k] = exp_nonpositive<V, ExpConstsFloatInDouble>(z.s[k]);
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
// enters the window and another leaves (rows of the image extended by r rows
// on each side, zero outside the image or wrapped). The row leaving is read
// back from a ring of the window's rows (row k in slot k mod (2r + 1), where
// the row entering replaces it) while the ring fits in a third of L1
// (kKeepBytes), and recomputed from x beyond, where reading it back from L2
// would cost more. CC: the channels, or 0 for c.
constexpr int64_t kKeepBytes = 16 << 10;

template <int CC>
struct ColumnWindow {
  int64_t h, w, cdyn, r;
  bool circular;
  double* ring;  // (2r + 1, w, kL) when the rows are kept
  double* ext;   // (w + 2r, kL)

  static bool keeps(int64_t w, int64_t r) { return (2 * r + 1) * w * kL * int64_t(sizeof(double)) <= kKeepBytes; }
  int64_t channels() const { return CC > 0 ? CC : cdyn; }
  double* slot(int64_t k) const { return ring + (k % (2 * r + 1)) * w * kL; }

  // e of image row i (>= 0) at pixel j.
  template <class T>
  LEDKDE_LANES Lanes sq(int64_t i, int64_t j, const double* y, const T* xg) const {
    const int64_t c = channels();
    Lanes s{};
    for (int64_t ch = 0; ch < c; ++ch) {
      const Lanes dl = y[(i * w + j) * c + ch] - load_values(xg + ((i * w + j) * c + ch) * kL);
      s += dl * dl;
    }
    return s;
  }

  // u (the column sums) += e of extended row k - e of extended row k - 2r - 1
  // (when `leaving`).
  template <bool Keep, class T>
  LEDKDE_LANES void enter(int64_t k, const double* y, const T* xg, bool leaving) const {
    double* u = ext + r * kL;
    double* e = Keep ? slot(k) : nullptr;
    const int64_t i = source(k, r, h, circular);
    const int64_t o = leaving && !Keep ? source(k - 2 * r - 1, r, h, circular) : -1;
    if (!Keep && i < 0 && o < 0) return;
    for (int64_t j = 0; j < w; ++j) {
      const Lanes in = i >= 0 ? sq(i, j, y, xg) : Lanes{};
      Lanes d = in;
      if (Keep) {
        if (leaving) d = d - load(e + j * kL);
        store(e + j * kL, in);
      } else if (o >= 0) {
        d = d - sq(o, j, y, xg);
      }
      store(u + j * kL, load(u + j * kL) + d);
    }
  }

  // Starts the column sums with the extended rows 0 .. 2r - 1.
  template <bool Keep, class T>
  void start(const double* y, const T* xg) const {
    std::fill(ext, ext + (w + 2 * r) * kL, 0.0);
    for (int64_t k = 0; k < 2 * r; ++k) enter<Keep>(k, y, xg, false);
  }

  // The column sums of output row i: extended row i + 2r enters, i - 1
  // leaves; then the pad columns (zero, or wrapped from the row itself).
  template <bool Keep, class T>
  void advance(int64_t i, const double* y, const T* xg) const {
    enter<Keep>(i + 2 * r, y, xg, i > 0);
    if (!circular) return;
    const double* u = ext + r * kL;
    for (int64_t k = 0; k < r; ++k) {
      store(ext + k * kL, load(u + source(k, r, w, true) * kL));
      store(ext + (w + r + k) * kL, load(u + source(w + r + k, r, w, true) * kL));
    }
  }
};

// A pixel's state (the maximum *m, shared by the lanes; S: kL, A: c x kL)
// moved onto the largest of its lanes' logits L where one exceeds *m.
LEDKDE_LANES void raise_max(Lanes L, int64_t c, double* __restrict m, double* __restrict S, double* __restrict A) {
  if (!any_greater(L, splat(*m))) return;
  double top = *m;
  for (int64_t k = 0; k < kSub; ++k)
    for (int64_t l = 0; l < kW; ++l) top = std::max(top, static_cast<double>(L.s[k][l]));
  const double f = *m == neg_inf() ? 0.0 : std::exp(*m - top);
  *m = top;
  store(S, load(S) * f);
  for (int64_t ch = 0; ch < c; ++ch) store(A + ch * kL, load(A + ch * kL) * f);
}

// One row of pixels' online log-sum-exp update from their lanes' logits L
// (w x kL): first every state whose maximum a logit exceeds moves onto it
// (rare after the first groups), then the weights exp(L - m) are added to S,
// and times the pixels' training values x (w x c x kL) to A.
template <int CC, class T>
LEDKDE_LANES void accumulate_row(const double* L, const T* x, int64_t w, int64_t cdyn, bool rise, double* __restrict m,
                                 double* __restrict S, double* __restrict A) {
  const int64_t c = CC > 0 ? CC : cdyn;
  if (rise)
    for (int64_t j = 0; j < w; ++j) raise_max(load(L + j * kL), c, m + j, S + j * kL, A + j * c * kL);
  for (int64_t j = 0; j < w; ++j) {
    const Lanes wt = weights(load(L + j * kL) - splat(m[j]), x);
    store(S + j * kL, load(S + j * kL) + wt);
    for (int64_t ch = 0; ch < c; ++ch) {
      const int64_t q = (j * c + ch) * kL;
      store(A + q, load(A + q) + wt * load_values(x + q));
    }
  }
}

// Scratch: the column sums ext (w + 2r, kL), the row's logits L (w, kL),
// then the ring (2r + 1, w, kL) where the rows are kept.
template <int CC, bool Keep, class T>
void ls_group_t(const double* y, const T* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
                bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  double* L = scratch + (w + 2 * r) * kL;
  const ColumnWindow<CC> cw{h, w, c, r, circular, L + w * kL, scratch};
  cw.template start<Keep>(y, xg);
  const Lanes lwv = load(lw);
  for (int64_t i = 0; i < h; ++i) {
    cw.template advance<Keep>(i, y, xg);
    // Along the row: a sliding sum over the column sums of the 2r + 1 columns.
    // (The column entering minus the one leaving is added to the sum as one
    // difference, so that the sum's chain of dependent additions is one
    // addition per pixel long.)
    Lanes acc{};
    for (int64_t k = 0; k <= 2 * r; ++k) acc += load(cw.ext + k * kL);
    bool rise = false;
    double* mi = m + i * w;
    for (int64_t j = 0; j < w; ++j) {
      const Lanes Lj = lwv - acc * inv2t;
      store(L + j * kL, Lj);
      rise |= any_greater(Lj, splat(mi[j]));
      if (j + 1 < w) acc += load(cw.ext + (j + 2 * r + 1) * kL) - load(cw.ext + j * kL);
    }
    const int64_t p = i * w;
    accumulate_row<CC>(L, xg + p * c * kL, w, c, rise, mi, S + p * kL, A + p * c * kL);
  }
}

// ls_group_t for c (1 and 3 by name) and for whether the rows are kept.
template <int CC, class T>
void ls_group_c(const double* y, const T* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
                bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  if (ColumnWindow<CC>::keeps(w, r))
    ls_group_t<CC, true>(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
  else
    ls_group_t<CC, false>(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
}
template <class T>
void ls_group_any(const double* y, const T* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
                  bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  if (c == 1) return ls_group_c<1>(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
  if (c == 3) return ls_group_c<3>(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
  ls_group_c<0>(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
}

}  // namespace

int64_t ls_scratch(int64_t, int64_t w, int64_t r) { return ((2 * r + 1) * w + (w + 2 * r) + w) * kL; }

void ls_group(const double* y, const float* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
              bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  ls_group_any(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
}
void ls_group(const double* y, const double* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
              bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  ls_group_any(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A);
}

#undef LEDKDE_LANES

}  // namespace ledkde::local_kernels::LEDKDE_ROWS_ISA
