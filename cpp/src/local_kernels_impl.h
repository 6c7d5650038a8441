// Definitions of the LS kernels (local_kernels_decl.h) in namespace
// ledkde::local_kernels::LEDKDE_ROWS_ISA: each of local_kernels_{avx512,avx2,
// base}.cpp defines that name and includes this file, compiled with its own
// instruction-set flags; local_kernels.cpp picks one at load time (the row
// kernels' choice, cpu_isa.h). Plain loops that the compiler vectorizes.
#ifndef LEDKDE_ROWS_ISA
#error "define LEDKDE_ROWS_ISA before including local_kernels_impl.h"
#endif

#include <algorithm>
#include <cstdint>

#include "ledkde/tile_math.h"

namespace ledkde::local_kernels::LEDKDE_ROWS_ISA {
namespace {

// The coordinate of index k of a line of length len extended by r on each
// side: k - r wrapped (circular) or -1 outside (zero).
inline int64_t source(int64_t k, int64_t r, int64_t len, bool circular) {
  const int64_t j = k - r;
  if (circular) return ((j % len) + len) % len;
  return (j < 0 || j >= len) ? -1 : j;
}

// dst[i, j] = sum of src over the rows of i's window (src: nr x nc), the
// window's rows outside left out (zero) or wrapped (circular): prefix sums
// of whole rows over the line of rows extended by r on both sides, so that
// every step runs along a row (vectorized) and the cost does not depend on r.
inline void column_window(const double* src, int64_t nr, int64_t nc, int64_t r, bool circular, double* pre,
                          double* dst) {
  const int64_t H = nr + 2 * r;
  std::fill(pre, pre + nc, 0.0);
  for (int64_t k = 0; k < H; ++k) {
    const int64_t i = source(k, r, nr, circular);
    const double* prev = pre + k * nc;
    double* next = pre + (k + 1) * nc;
    if (i < 0) {
      for (int64_t j = 0; j < nc; ++j) next[j] = prev[j];
    } else {
      const double* si = src + i * nc;
      for (int64_t j = 0; j < nc; ++j) next[j] = prev[j] + si[j];
    }
  }
  for (int64_t i = 0; i < nr; ++i) {
    const double* hi = pre + (i + 2 * r + 1) * nc;
    const double* lo = pre + i * nc;
    double* o = dst + i * nc;
    for (int64_t j = 0; j < nc; ++j) o[j] = hi[j] - lo[j];
  }
}

inline void transpose(const double* a, int64_t nr, int64_t nc, double* out) {
  for (int64_t i = 0; i < nr; ++i)
    for (int64_t j = 0; j < nc; ++j) out[j * nr + i] = a[i * nc + j];
}

// Below this window size the sums along rows add the window's shifted rows
// (2r + 1 vector adds a pixel) rather than transposing twice (measured on
// AVX-512: a transpose of a 28 x 28 image costs what about 5 such adds do).
constexpr int64_t kShiftedMaxPatch = 11;

// dst[i, j] = sum of src over the columns of j's window, by adding the
// window's shifts of the rows extended by r on both sides: all rows laid end
// to end (nr x (nc + 2r)), so that each of the 2r + 1 adds runs along one long
// line (the sums that straddle two rows are computed and left unused).
// Scratch: 2 nr (nc + 2r).
inline void row_window_shifted(const double* src, int64_t nr, int64_t nc, int64_t r, bool circular,
                               double* __restrict ext, double* __restrict sum, double* __restrict dst) {
  const int64_t W = nc + 2 * r, len = nr * W - 2 * r;
  for (int64_t i = 0; i < nr; ++i) {
    const double* si = src + i * nc;
    double* ei = ext + i * W;
    std::copy_n(si, nc, ei + r);
    for (int64_t k = 0; k < r; ++k) {  // the r columns on each side: zero, or wrapped
      const int64_t jl = source(k, r, nc, circular), jr = source(nc + r + k, r, nc, circular);
      ei[k] = jl < 0 ? 0.0 : si[jl];
      ei[nc + r + k] = jr < 0 ? 0.0 : si[jr];
    }
  }
  std::copy_n(ext, len, sum);
  for (int64_t k = 1; k <= 2 * r; ++k) {
    const double* e = ext + k;
    for (int64_t q = 0; q < len; ++q) sum[q] += e[q];
  }
  for (int64_t i = 0; i < nr; ++i) std::copy_n(sum + i * W, nc, dst + i * nc);
}

// The window sums of e (h x w) into out: along columns by column_window
// (prefix sums, any r), then along rows by shifted adds (small windows) or,
// transposed, column_window again. Exact to float64 rounding either way.
inline void window_sums(const double* e, int64_t h, int64_t w, int64_t r, bool circular, double* scratch,
                        double* out) {
  double* a = scratch;        // (h x w)
  double* b = a + h * w;      // (w x h)
  double* pre = b + h * w;    // ((max(h, w) + 2r + 1) x max(h, w)), or 2 h (w + 2r) for the shifted sums
  column_window(e, h, w, r, circular, pre, a);
  if (2 * r + 1 <= kShiftedMaxPatch) {
    row_window_shifted(a, h, w, r, circular, pre, pre + h * (w + 2 * r), out);
    return;
  }
  transpose(a, h, w, b);
  column_window(b, w, h, r, circular, pre, a);
  transpose(a, w, h, out);
}

template <class T>
inline void ls_logits_t(const double* y, const T* x, int64_t h, int64_t w, int64_t c, int64_t r, bool circular,
                        double lw, double inv2t, double* scratch, double* L) {
  const int64_t hw = h * w;
  double* e = scratch;
  if (c == 1) {
    for (int64_t p = 0; p < hw; ++p) {
      const double diff = y[p] - static_cast<double>(x[p]);
      e[p] = diff * diff;
    }
  } else {
    for (int64_t p = 0; p < hw; ++p) {
      double s = 0.0;
      for (int64_t ch = 0; ch < c; ++ch) {
        const double diff = y[p * c + ch] - static_cast<double>(x[p * c + ch]);
        s += diff * diff;
      }
      e[p] = s;
    }
  }
  window_sums(e, h, w, r, circular, scratch + hw, L);
  for (int64_t p = 0; p < hw; ++p) L[p] = lw - L[p] * inv2t;
}

// The weight exp(L - m) in the working precision T: float data take the
// float exponential (its 2 ulp are far below float32's own rounding of the
// result), float64 data the double one. (-inf - -inf is NaN, and
// exp_nonpositive gives 0 for it: a pixel that has seen only images of
// weight 0 stays empty.)
template <class T>
inline double weight(double L, double m) {
  return static_cast<double>(exp_nonpositive(static_cast<T>(L - m)));
}

template <class T>
inline void ls_accumulate_t(const double* L, const T* x, int64_t hw, int64_t c, const double* m, double* S,
                            double* A) {
  if (c == 1) {
    for (int64_t p = 0; p < hw; ++p) {
      const double wt = weight<T>(L[p], m[p]);
      S[p] += wt;
      A[p] += wt * static_cast<double>(x[p]);
    }
    return;
  }
  for (int64_t p = 0; p < hw; ++p) {
    const double wt = weight<T>(L[p], m[p]);
    S[p] += wt;
    for (int64_t ch = 0; ch < c; ++ch) A[p * c + ch] += wt * static_cast<double>(x[p * c + ch]);
  }
}

}  // namespace

int64_t ls_scratch(int64_t h, int64_t w, int64_t r) {
  const int64_t m = std::max(h, w);
  return 3 * h * w + std::max((m + 2 * r + 1) * m, 2 * h * (w + 2 * r));
}

void ls_logits(const double* y, const float* x, int64_t h, int64_t w, int64_t c, int64_t r, bool circular,
               double lw, double inv2t, double* scratch, double* L) {
  ls_logits_t(y, x, h, w, c, r, circular, lw, inv2t, scratch, L);
}
void ls_logits(const double* y, const double* x, int64_t h, int64_t w, int64_t c, int64_t r, bool circular,
               double lw, double inv2t, double* scratch, double* L) {
  ls_logits_t(y, x, h, w, c, r, circular, lw, inv2t, scratch, L);
}

void ls_rescale(const double* L, int64_t nt, int64_t hw, int64_t c, double* m, double* S, double* A, double* top) {
  for (int64_t p = 0; p < hw; ++p) top[p] = m[p];
  for (int64_t k = 0; k < nt; ++k) {
    const double* Lk = L + k * hw;
    for (int64_t p = 0; p < hw; ++p) top[p] = std::max(top[p], Lk[p]);
  }
  // The factors that move each state onto its new maximum (0 for an empty
  // state, m = -inf), kept in top once m holds the maximum.
  for (int64_t p = 0; p < hw; ++p) {
    const double f = exp_nonpositive(m[p] - top[p]);
    m[p] = top[p];
    S[p] *= f;
    top[p] = f;
  }
  for (int64_t p = 0; p < hw; ++p)
    for (int64_t ch = 0; ch < c; ++ch) A[p * c + ch] *= top[p];
}

void ls_accumulate(const double* L, const float* x, int64_t hw, int64_t c, const double* m, double* S, double* A) {
  ls_accumulate_t(L, x, hw, c, m, S, A);
}
void ls_accumulate(const double* L, const double* x, int64_t hw, int64_t c, const double* m, double* S,
                   double* A) {
  ls_accumulate_t(L, x, hw, c, m, S, A);
}

}  // namespace ledkde::local_kernels::LEDKDE_ROWS_ISA
