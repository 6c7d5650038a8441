// Preparing a mixture for the CPU passes (SPEC section 1): the components
// centred, their squared norms, the coordinate-major copy of the direct path,
// the tile pack of the built-in products, normalized log-weights.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "blas.h"
#include "parallel.h"
#include "pass_cpu.h"
#include "tile_gemm.h"

namespace ledkde {

namespace {
constexpr double kNegInf = -std::numeric_limits<double>::infinity();
}  // namespace

template <class T>
TilePack<T> make_tile_pack(const Mixture<T>& mix, int threads, StopFlag* stop) {
  TilePack<T> tp;
  if constexpr (std::is_same_v<T, float>) {
    const int64_t n = mix.n, d = mix.d;
    if (d <= kDirectMaxDim || !tile_gemm::available()) return tp;
    const int64_t panels = (n + tile_gemm::kPanel - 1) / tile_gemm::kPanel;
    tp.packed.resize(static_cast<size_t>(panels * d * tile_gemm::kPanel));
    tp.norm2.resize(static_cast<size_t>(n));
    // Chunks of whole panels, in parallel.
    constexpr int64_t kChunkPanels = 64;
    parallel_for((panels + kChunkPanels - 1) / kChunkPanels, threads, [&](int64_t c, int) {
      const int64_t p0 = c * kChunkPanels, p1 = std::min(panels, p0 + kChunkPanels);
      tile_gemm::pack(mix.mu.data(), n, d, p0, p1, tp.packed.data());
      for (int64_t j = p0 * tile_gemm::kPanel; j < std::min(n, p1 * tile_gemm::kPanel); ++j) {
        double s = 0.0;
        for (int64_t k = 0; k < d; ++k) s += static_cast<double>(mix.mu[j * d + k]) * mix.mu[j * d + k];
        tp.norm2[j] = s;
      }
    }, stop);
  }
  return tp;
}

template <class T>
PassOptions with_tile_pack(const Mixture<T>& mix, const PassOptions& opt, TilePack<T>& hold) {
  PassOptions o = opt;
  if constexpr (std::is_same_v<T, float>) {
    if (mix.tiles.empty() && !opt.tiles) {
      hold = make_tile_pack(mix, opt.threads);
      if (!hold.empty()) o.tiles = &hold;
    }
  }
  return o;
}

template <class T>
Mixture<T> prepare_mixture(const T* data, int64_t n, int64_t d, const double* log_weights,
                           const double* variances, int threads, bool pack, StopFlag* stop) {
  Mixture<T> mix;
  mix.n = n;
  mix.d = d;
  constexpr int64_t kChunk = 2048;  // rows per task (threads only change who does a chunk)
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  // The centre only has to lie near the middle of the data (it keeps the
  // norms small): the mean of every (n / 1024)-th row (1024 to 2047 rows, or
  // all when fewer), which saves a pass over the data.
  mix.centre.assign(d, 0.0);
  std::vector<double> top(static_cast<size_t>(d), 0.0);
  const int64_t stride = std::max<int64_t>(1, n / 1024);
  int64_t used = 0;
  for (int64_t j = 0; j < n; j += stride, ++used)
    for (int64_t k = 0; k < d; ++k) {
      mix.centre[k] += static_cast<double>(data[j * d + k]);
      top[k] = std::max(top[k], std::fabs(static_cast<double>(data[j * d + k])));
    }
  for (auto& c : mix.centre) c /= static_cast<double>(used);
  // float: the centre rounded to a multiple of the spacing of floats at the
  // coordinate's largest magnitude, so that x - c is exact in float for the
  // values of that magnitude (data far from the origin, in one cluster or in
  // clusters on both sides of it, keep every bit when centred).
  if constexpr (std::is_same_v<T, float>)
    for (int64_t k = 0; k < d; ++k)
      if (top[k] > 0.0) {
        const double q = static_cast<double>(std::nextafter(static_cast<float>(top[k]), INFINITY)) -
                         static_cast<double>(static_cast<float>(top[k]));
        mix.centre[k] = std::nearbyint(mix.centre[k] / q) * q;
      }
  // The direct path (coordinate differences) is translation invariant and
  // exact on the values as given (y - mu of two nearby floats has no
  // rounding error), while centring would round y - c and mu - c first:
  // relative errors of eps |y - c| / |y - mu| in the distances of close
  // pairs. So only the matrix-product path centres.
  if (d <= kDirectMaxDim) std::fill(mix.centre.begin(), mix.centre.end(), 0.0);
  // Padded: the second product reads up to kRowTail floats past a row (zeros after the last).
  mix.mu.resize(static_cast<size_t>(n * d + tile_gemm::kRowTail));
  std::fill(mix.mu.end() - tile_gemm::kRowTail, mix.mu.end(), T(0));
  mix.norm2.resize(n);
  std::vector<double> norm_max(nchunks, 0.0), err_max(nchunks, 0.0), coord_max(nchunks, 0.0);
  parallel_for(nchunks, threads, [&](int64_t c, int) {
    const double* centre = mix.centre.data();
    // The chunk's maxima in locals, stored once: neighbouring chunks' entries
    // share a cache line, which threads writing them row by row pass back and forth.
    double chunk_norm = 0.0, chunk_err = 0.0, chunk_coord = 0.0;
    for (int64_t j = c * kChunk; j < std::min(n, (c + 1) * kChunk); ++j) {
      T* row = mix.mu.data() + j * d;
      const T* src = data + j * d;
      double s = 0.0, e = 0.0, a = 0.0;
#pragma omp simd reduction(+ : s) reduction(max : e, a)
      for (int64_t k = 0; k < d; ++k) {
        const double x = static_cast<double>(src[k]) - centre[k];
        const T v = static_cast<T>(x);
        row[k] = v;
        s += static_cast<double>(v) * static_cast<double>(v);
        e = std::max(e, std::fabs(x - static_cast<double>(v)));
        a = std::max(a, std::fabs(x));
      }
      mix.norm2[j] = static_cast<T>(s);
      chunk_norm = std::max(chunk_norm, s);
      chunk_err = std::max(chunk_err, e);
      chunk_coord = std::max(chunk_coord, a);
    }
    norm_max[c] = chunk_norm;
    err_max[c] = chunk_err;
    coord_max[c] = chunk_coord;
  }, stop);
  for (double v : norm_max) mix.norm2_max = std::max(mix.norm2_max, v);
  double centring = 0.0, coord = 0.0;
  for (double v : err_max) centring = std::max(centring, v);
  for (double v : coord_max) coord = std::max(coord, v);
  // The direct path sums p (mu - y) from exact differences; the matrix-product
  // path rounds p mu to T in its weighted sums as well.
  mix.resolution = centring + (d > kDirectMaxDim ? 0.5 * std::numeric_limits<T>::epsilon() * coord : 0.0);
  if (d <= kDirectMaxDim) {
    // Few coordinates: distances by differences over a coordinate-major copy.
    mix.muT.resize(static_cast<size_t>(n * d));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < d; ++k) mix.muT[k * n + j] = mix.mu[j * d + k];
  }
  if (pack && d <= tile_gemm::kMaxDim) mix.tiles = make_tile_pack(mix, threads, stop);
  if (log_weights) {
    double mx = kNegInf;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, log_weights[j]);
    double s = 0.0;
    for (int64_t j = 0; j < n; ++j) s += std::exp(log_weights[j] - mx);
    const double lse = mx + std::log(s);
    mix.logw.resize(n);
    for (int64_t j = 0; j < n; ++j) mix.logw[j] = log_weights[j] - lse;
    mix.log_mass = lse;
  } else {
    mix.log_mass = std::log(static_cast<double>(n));
  }
  if (variances) mix.var.assign(variances, variances + n);
  return mix;
}

template <class T>
void set_projection(Mixture<T>& mix, const double* basis, int64_t k, int threads, StopFlag* stop) {
  const int64_t n = mix.n, d = mix.d;
  Projection pr;
  if (k <= 0 || n == 0) {
    mix.proj = Projection{};
    return;
  }
  std::vector<double> V(basis, basis + k * d);
  pr.k = k;
  pr.basis = V;
  pr.z.resize(static_cast<size_t>(n * k));
  pr.zn2.resize(n);
  pr.resid.resize(n);
  // z = mu V^T in float64, chunk by chunk; the residual norms from the same products.
  constexpr int64_t kChunk = 1024;
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  std::vector<double> rmax(static_cast<size_t>(nchunks), 0.0);
  parallel_for(nchunks, threads, [&](int64_t ch, int) {
    const int64_t j0 = ch * kChunk, j1 = std::min(n, j0 + kChunk), m = j1 - j0;
    std::vector<double> X(static_cast<size_t>(m * d)), Z(static_cast<size_t>(m * k));
    for (int64_t i = 0; i < m * d; ++i) X[i] = static_cast<double>(mix.mu[j0 * d + i]);
    blas::gemm_nt(m, k, d, X.data(), d, pr.basis.data(), d, Z.data(), k);
    for (int64_t i = 0; i < m; ++i) {
      double x2 = 0.0, z2 = 0.0, z2f = 0.0;
      for (int64_t c = 0; c < d; ++c) x2 += X[i * d + c] * X[i * d + c];
      for (int64_t c = 0; c < k; ++c) {
        const double zc = Z[i * k + c];
        const float zf = static_cast<float>(zc);
        pr.z[(j0 + i) * k + c] = zf;
        z2 += zc * zc;
        z2f += static_cast<double>(zf) * zf;
      }
      pr.zn2[j0 + i] = z2f;
      pr.resid[j0 + i] = std::sqrt(std::max(0.0, x2 - z2));
      rmax[ch] = std::max(rmax[ch], pr.resid[j0 + i]);
    }
  }, stop);
  for (double r : rmax) pr.resid_max = std::max(pr.resid_max, r);
  pr.zn2f.resize(n);
  pr.residf.resize(n);
  pr.zn2_prefix.resize(n);
  const int64_t k1 = std::max<int64_t>(1, k / 2);
  for (int64_t j = 0; j < n; ++j) {
    pr.zn2f[j] = static_cast<float>(pr.zn2[j]);
    pr.residf[j] = static_cast<float>(pr.resid[j]);
    float p2 = 0.0f;
    for (int64_t c = 0; c < k1; ++c) p2 += pr.z[j * k + c] * pr.z[j * k + c];
    pr.zn2_prefix[j] = p2;
  }
  mix.proj = std::move(pr);
}

#define LEDKDE_INSTANTIATE(T)                                                                  \
  template TilePack<T> make_tile_pack(const Mixture<T>&, int, StopFlag*);                    \
  template PassOptions with_tile_pack(const Mixture<T>&, const PassOptions&, TilePack<T>&);  \
  template Mixture<T> prepare_mixture(const T*, int64_t, int64_t, const double*, const double*, int, \
                                      bool, StopFlag*);                                          \
  template void set_projection(Mixture<T>&, const double*, int64_t, int, StopFlag*);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
