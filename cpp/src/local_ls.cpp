// The local (LS) denoiser's state of one query over a range of groups of
// training images (local_cpu.h): each group's kLsLanes images at once, one
// per lane, into per-lane online log-sum-exp states of every pixel
// (local_kernels.h), which are then merged lane by lane in a fixed order.
#include <algorithm>
#include <limits>
#include <vector>

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

// The per-pixel state (m, S, A) of the lanes' states (ml, Sl: hw x kL; Al:
// hw x c x kL), merged lane 0 first.
void fold_lanes(const double* ml, const double* Sl, const double* Al, int64_t hw, int64_t c, double* m, double* S,
                double* A) {
  constexpr int64_t kL = kLsLanes;
  for (int64_t p = 0; p < hw; ++p) {
    double top = neg_inf();
    for (int64_t l = 0; l < kL; ++l) top = std::max(top, ml[p * kL + l]);
    m[p] = top;
    double s = 0.0;
    for (int64_t ch = 0; ch < c; ++ch) A[p * c + ch] = 0.0;
    if (top == neg_inf()) {
      S[p] = 0.0;
      continue;
    }
    for (int64_t l = 0; l < kL; ++l) {
      const double f = exp_nonpositive(ml[p * kL + l] - top);
      if (f == 0.0) continue;
      s += f * Sl[p * kL + l];
      for (int64_t ch = 0; ch < c; ++ch) A[p * c + ch] += f * Al[(p * c + ch) * kL + l];
    }
    S[p] = s;
  }
}

}  // namespace

template <class T>
void ls_state(const LocalImages<T>& img, const LocalSpec& spec, const T* y, double t, int64_t g0, int64_t g1,
              double* m, double* S, double* A) {
  const int64_t h = img.h, w = img.w, c = img.c, hw = h * w, d = img.d(), r = (spec.patch - 1) / 2;
  constexpr int64_t kL = kLsLanes;
  const bool circular = spec.padding == kPadCircular;
  std::vector<double> ml(static_cast<size_t>(hw * kL), neg_inf()), Sl(static_cast<size_t>(hw * kL), 0.0),
      Al(static_cast<size_t>(hw * c * kL), 0.0), yd(y, y + d),
      scratch(static_cast<size_t>(local_kernels::ls_scratch(h, w, r)));
  double lw[kL];
  for (int64_t g = g0; g < g1; ++g) {
    lane_weights(img, g, lw);
    local_kernels::ls_group(yd.data(), img.x.data() + g * d * kL, lw, h, w, c, r, circular, 0.5 / t,
                            scratch.data(), ml.data(), Sl.data(), Al.data());
  }
  fold_lanes(ml.data(), Sl.data(), Al.data(), hw, c, m, S, A);
}

template void ls_state(const LocalImages<float>&, const LocalSpec&, const float*, double, int64_t, int64_t, double*,
                       double*, double*);
template void ls_state(const LocalImages<double>&, const LocalSpec&, const double*, double, int64_t, int64_t,
                       double*, double*, double*);

}  // namespace ledkde
