// The local (LS) denoiser's state of one query over a range of training
// images (local_cpu.h): per image the squared differences summed over
// channels, their sums over every pixel's window by prefix sums in float64
// (so the cost does not depend on the patch size, and the logits are exact
// to float64 rounding), then the online log-sum-exp of tile_math.h per
// pixel, a tile of images at a time.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "ledkde/tile_math.h"
#include "local_cpu.h"

namespace ledkde {

namespace {

constexpr int64_t kImageTile = 16;  // images whose logits are held at once (per pixel: one rescale per tile)

// Sum of the periodic extension of a row of length len over [a, b], from its
// prefix sums cs (len + 1): full turns times the total plus the partial ones.
inline double range_sum(const double* cs, int64_t len, int64_t a, int64_t b, bool circular) {
  if (!circular) {
    const int64_t lo = std::max<int64_t>(a, 0), hi = std::min<int64_t>(b + 1, len);
    return hi > lo ? cs[hi] - cs[lo] : 0.0;
  }
  auto F = [&](int64_t k) {  // sum of the first k entries of the periodic row (k may be negative)
    const int64_t turns = k >= 0 ? k / len : -((-k + len - 1) / len);
    return static_cast<double>(turns) * cs[len] + cs[k - turns * len];
  };
  return F(b + 1) - F(a);
}

// out[i, j] = sum of e over the (2r+1) x (2r+1) window centred on (i, j):
// outside pixels left out, or the window wrapped (circular). Rows first (a
// prefix sum per row), then columns (prefix sums of whole rows, so that the
// inner loops run along rows).
struct WindowSums {
  std::vector<double> cs, rows, pre;
  void operator()(const double* e, double* out, int64_t h, int64_t w, int64_t r, bool circular) {
    cs.resize(static_cast<size_t>(w + 1));
    rows.resize(static_cast<size_t>(h * w));
    for (int64_t i = 0; i < h; ++i) {
      cs[0] = 0.0;
      for (int64_t j = 0; j < w; ++j) cs[j + 1] = cs[j] + e[i * w + j];
      for (int64_t j = 0; j < w; ++j) rows[i * w + j] = range_sum(cs.data(), w, j - r, j + r, circular);
    }
    pre.assign(static_cast<size_t>((h + 1) * w), 0.0);  // pre[k] = sum of the first k rows
    for (int64_t i = 0; i < h; ++i)
      for (int64_t j = 0; j < w; ++j) pre[(i + 1) * w + j] = pre[i * w + j] + rows[i * w + j];
    for (int64_t i = 0; i < h; ++i) {
      int64_t lo = i - r, hi = i + r + 1;  // rows [lo, hi) of the periodic or clipped column
      if (!circular) {
        lo = std::max<int64_t>(lo, 0);
        hi = std::min<int64_t>(hi, h);
        for (int64_t j = 0; j < w; ++j) out[i * w + j] = pre[hi * w + j] - pre[lo * w + j];
        continue;
      }
      auto turns = [&](int64_t k) { return k >= 0 ? k / h : -((-k + h - 1) / h); };
      const int64_t th = turns(hi), tl = turns(lo);
      const double* ph = pre.data() + (hi - th * h) * w;
      const double* pl = pre.data() + (lo - tl * h) * w;
      const double* total = pre.data() + h * w;
      for (int64_t j = 0; j < w; ++j)
        out[i * w + j] = (static_cast<double>(th - tl) * total[j] + ph[j]) - pl[j];
    }
  }
};

}  // namespace

template <class T>
void ls_state(const LocalImages<T>& img, const LocalSpec& spec, const T* y, double t, int64_t n0, int64_t n1,
              double* m, double* S, double* A) {
  const int64_t h = img.h, w = img.w, c = img.c, hw = h * w, d = img.d(), r = (spec.patch - 1) / 2;
  const bool circular = spec.padding == kPadCircular;
  const double inv2t = 0.5 / t;
  std::fill(m, m + hw, neg_inf());
  std::fill(S, S + hw, 0.0);
  std::fill(A, A + hw * c, 0.0);
  std::vector<double> e(static_cast<size_t>(hw)), L(static_cast<size_t>(kImageTile * hw)), yd(y, y + d);
  WindowSums window;
  for (int64_t nb = n0; nb < n1; nb += kImageTile) {
    const int64_t nt = std::min(kImageTile, n1 - nb);
    for (int64_t k = 0; k < nt; ++k) {
      const T* x = img.x.data() + (nb + k) * d;
      for (int64_t p = 0; p < hw; ++p) {
        double s = 0.0;
        for (int64_t ch = 0; ch < c; ++ch) {
          const double diff = yd[p * c + ch] - static_cast<double>(x[p * c + ch]);
          s += diff * diff;
        }
        e[p] = s;
      }
      double* Lk = L.data() + k * hw;
      window(e.data(), Lk, h, w, r, circular);
      const double lw = img.logw.empty() ? 0.0 : img.logw[nb + k];
      for (int64_t p = 0; p < hw; ++p) Lk[p] = lw - Lk[p] * inv2t;
    }
    // Each pixel's state moves onto the tile's maximum, if higher.
    for (int64_t p = 0; p < hw; ++p) {
      double top = m[p];
      for (int64_t k = 0; k < nt; ++k) top = std::max(top, L[k * hw + p]);
      if (top > m[p]) {
        const double f = lse_rescale_factor(m[p], top);
        S[p] *= f;
        for (int64_t ch = 0; ch < c; ++ch) A[p * c + ch] *= f;
        m[p] = top;
      }
    }
    for (int64_t k = 0; k < nt; ++k) {
      const double* Lk = L.data() + k * hw;
      const T* x = img.x.data() + (nb + k) * d;
      for (int64_t p = 0; p < hw; ++p) {
        // (-inf - -inf is NaN, and exp_nonpositive gives 0 for it: a pixel
        // that has seen only images of weight 0 stays empty.)
        const double wt = exp_nonpositive(Lk[p] - m[p]);
        S[p] += wt;
        for (int64_t ch = 0; ch < c; ++ch) A[p * c + ch] += wt * static_cast<double>(x[p * c + ch]);
      }
    }
  }
}

template void ls_state(const LocalImages<float>&, const LocalSpec&, const float*, double, int64_t, int64_t, double*,
                       double*, double*);
template void ls_state(const LocalImages<double>&, const LocalSpec&, const double*, double, int64_t, int64_t,
                       double*, double*, double*);

}  // namespace ledkde
