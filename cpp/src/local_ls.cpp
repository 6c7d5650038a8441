// The local (LS) denoiser's state of one query over a range of training
// images (local_cpu.h): per image the logits of every pixel from the window
// sums of its squared differences (local_kernels.h: prefix sums in float64,
// cost independent of the patch size, exact to float64 rounding), then the
// online log-sum-exp of tile_math.h per pixel, a tile of images at a time
// (one rescale of each pixel's state per tile).
#include <algorithm>
#include <vector>

#include "ledkde/tile_math.h"
#include "local_cpu.h"
#include "local_kernels.h"

namespace ledkde {

namespace {
constexpr int64_t kImageTile = 16;  // images whose logits are held at once
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
  std::vector<double> L(static_cast<size_t>(kImageTile * hw)), yd(y, y + d), top(static_cast<size_t>(hw));
  std::vector<double> scratch(static_cast<size_t>(local_kernels::ls_scratch(h, w, r)));
  for (int64_t nb = n0; nb < n1; nb += kImageTile) {
    const int64_t nt = std::min(kImageTile, n1 - nb);
    for (int64_t k = 0; k < nt; ++k)
      local_kernels::ls_logits(yd.data(), img.x.data() + (nb + k) * d, h, w, c, r, circular,
                               img.logw.empty() ? 0.0 : img.logw[nb + k], inv2t, scratch.data(), L.data() + k * hw);
    local_kernels::ls_rescale(L.data(), nt, hw, c, m, S, A, top.data());
    for (int64_t k = 0; k < nt; ++k)
      local_kernels::ls_accumulate(L.data() + k * hw, img.x.data() + (nb + k) * d, hw, c, m, S, A);
  }
}

template void ls_state(const LocalImages<float>&, const LocalSpec&, const float*, double, int64_t, int64_t, double*,
                       double*, double*);
template void ls_state(const LocalImages<double>&, const LocalSpec&, const double*, double, int64_t, int64_t,
                       double*, double*, double*);

}  // namespace ledkde
