// The local (LS) denoiser's state of one query over a range of groups of
// training images (local_cpu.h): each group's kLsLanes images at once, one
// per lane, into every pixel's online log-sum-exp state (local_kernels.h: a
// maximum shared by the lanes, sums per lane), the lanes' sums then added in
// a fixed order.
#include <algorithm>
#include <limits>
#include <vector>

#include "ledkde/big_buffer.h"
#include "ledkde/tile_math.h"
#include "local_cpu.h"
#include "local_kernels.h"

namespace ledkde {

namespace {

// The lanes' log-weights of group g: the images' own (0 if equal), -inf for
// the padding lanes past the last image.
template <class T>
void lane_weights(const LocalImages<T>& img, int64_t g, double* lw) {
  for (int64_t l = 0; l < kLsLanes; ++l) {
    const int64_t i = g * kLsLanes + l;
    lw[l] = i >= img.n ? -std::numeric_limits<double>::infinity() : img.logw.empty() ? 0.0 : img.logw[i];
  }
}

// The per-pixel sums S, A of the lanes' sums (Sl: hw x kL; Al: hw x c x kL,
// all under the pixel's maximum), added lane 0 first.
void fold_lanes(const double* Sl, const double* Al, int64_t hw, int64_t c, double* S, double* A) {
  constexpr int64_t kL = kLsLanes;
  for (int64_t p = 0; p < hw; ++p) {
    double s = 0.0;
    for (int64_t l = 0; l < kL; ++l) s += Sl[p * kL + l];
    S[p] = s;
    for (int64_t ch = 0; ch < c; ++ch) {
      double a = 0.0;
      for (int64_t l = 0; l < kL; ++l) a += Al[(p * c + ch) * kL + l];
      A[p * c + ch] = a;
    }
  }
}

}  // namespace

template <class T>
void ls_state(const LocalImages<T>& img, const LocalSpec& spec, const T* y, double t, int64_t g0, int64_t g1,
              double* m, double* S, double* A) {
  const int64_t h = img.h, w = img.w, c = img.c, hw = h * w, d = img.d(), r = (spec.patch - 1) / 2;
  constexpr int64_t kL = kLsLanes;
  const bool circular = spec.padding == kPadCircular;
  std::fill(m, m + hw, neg_inf());
  // (Cache-line aligned: the kernels walk these in whole vectors.)
  BigVector<double> Sl(static_cast<size_t>(hw * kL), 0.0), Al(static_cast<size_t>(hw * c * kL), 0.0),
      scratch(static_cast<size_t>(local_kernels::ls_scratch(h, w, r)));
  std::vector<double> yd(y, y + d);
  double lw[kL];
  for (int64_t g = g0; g < g1; ++g) {
    lane_weights(img, g, lw);
    local_kernels::ls_group(yd.data(), img.x.data() + g * d * kL, lw, h, w, c, r, circular, 0.5 / t,
                            scratch.data(), m, Sl.data(), Al.data());
  }
  fold_lanes(Sl.data(), Al.data(), hw, c, S, A);
}

template void ls_state(const LocalImages<float>&, const LocalSpec&, const float*, double, int64_t, int64_t, double*,
                       double*, double*);
template void ls_state(const LocalImages<double>&, const LocalSpec&, const double*, double, int64_t, int64_t,
                       double*, double*, double*);

}  // namespace ledkde
