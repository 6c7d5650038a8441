// The local denoisers' driver (local_cpu.h): preparation, threads over query
// images and shards of the training images (LS), and the row source that
// lets the compiled sampler run on them (local_source.h).
#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

#include "ledkde/tile_math.h"
#include "local_cpu.h"
#include "parallel.h"

namespace ledkde {

template <class T>
LocalImages<T> prepare_local(const T* data, int64_t n, int64_t h, int64_t w, int64_t c, const double* log_weights,
                             bool interleave) {
  LocalImages<T> img;
  img.n = n;
  img.h = h;
  img.w = w;
  img.c = c;
  img.interleaved = interleave;
  const int64_t d = img.d();
  if (!interleave) {
    img.x.assign(data, data + n * d);
  } else {
    img.x.assign(static_cast<size_t>(img.groups() * d * kLsLanes), T(0));
    for (int64_t i = 0; i < n; ++i) {
      T* dst = img.x.data() + (i / kLsLanes) * d * kLsLanes + i % kLsLanes;
      for (int64_t k = 0; k < d; ++k) dst[k * kLsLanes] = data[i * d + k];
    }
  }
  if (log_weights) img.logw.assign(log_weights, log_weights + n);
  return img;
}

namespace {

// Shards of the groups of training images for q queries: about kTargetTasks
// tasks in all, each shard at least kMinShard groups. Fixed by the sizes alone.
int64_t ls_shards(int64_t q, int64_t groups) {
  constexpr int64_t kMinShard = 8;
  if (q <= 0) return 1;
  return std::max<int64_t>(1, std::min((kTargetTasks + q - 1) / q, groups / kMinShard));
}

// The LS denoiser of q queries: the states of every (query, shard), merged
// in shard order, then D = A / S per pixel.
template <class T>
void ls_denoise(const LocalImages<T>& img, const LocalSpec& spec, const T* y, int64_t q, double t, double* out,
                const PassOptions& opt) {
  const int64_t hw = img.h * img.w, c = img.c, d = img.d();
  const int64_t ns = ls_shards(q, img.groups());
  auto begin = [&](int64_t s) { return s * img.groups() / ns; };
  const int64_t cell = hw * (2 + c);  // m, S, A of one task
  std::vector<double> st(static_cast<size_t>(q * ns * cell));
  StopFlag stop(opt.interrupted);
  parallel_for(q * ns, opt.threads, [&](int64_t task, int) {
    if (opt.stop && opt.stop->poll()) throw Cancelled();
    double* b = st.data() + task * cell;
    const int64_t i = task / ns, s = task % ns;
    ls_state(img, spec, y + i * d, t, begin(s), begin(s + 1), b, b + hw, b + 2 * hw);
  }, &stop);
  for (int64_t i = 0; i < q; ++i) {
    double* a = st.data() + i * ns * cell;
    for (int64_t s = 1; s < ns; ++s) {
      const double* b = a + s * cell;
      for (int64_t p = 0; p < hw; ++p) {
        LseScalars x{a[p], a[hw + p], 0.0};
        const MergeScales f = lse_merge(x, LseScalars{b[p], b[hw + p], 0.0});
        a[p] = x.m;
        a[hw + p] = x.S;
        for (int64_t ch = 0; ch < c; ++ch) {
          double& v = a[2 * hw + p * c + ch];
          v = (f.fa == 0.0 ? 0.0 : f.fa * v) + (f.fb == 0.0 ? 0.0 : f.fb * b[2 * hw + p * c + ch]);
        }
      }
    }
    for (int64_t p = 0; p < hw; ++p)
      for (int64_t ch = 0; ch < c; ++ch) out[i * d + p * c + ch] = a[2 * hw + p * c + ch] / a[hw + p];
  }
}

}  // namespace

template <class T>
void local_denoise_cpu(const LocalImages<T>& img, const LocalSpec& spec, const T* y, int64_t q, double t,
                       double* out, const PassOptions& opt) {
  if (spec.equivariant == img.interleaved)
    throw std::invalid_argument(spec.equivariant ? "the images were prepared for LS, not ELS"
                                                 : "the images were prepared for ELS, not LS");
  if (spec.equivariant)
    els_denoise(img, spec, y, q, t, out, opt);
  else
    ls_denoise(img, spec, y, q, t, out, opt);
}

#define LEDKDE_INSTANTIATE(T)                                                                                       \
  template LocalImages<T> prepare_local(const T*, int64_t, int64_t, int64_t, int64_t, const double*, bool);        \
  template void local_denoise_cpu(const LocalImages<T>&, const LocalSpec&, const T*, int64_t, double, double*,     \
                                  const PassOptions&);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
