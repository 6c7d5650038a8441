// The exact vector-Jacobian products of the empirical denoiser (ledkde/cpu.h
// denoise_vjp_cpu): one more pass over the components, blocks of rows against
// tiles of components, in float64. Per row it keeps the online sums
//   S = sum e,  a = sum e x,  b = sum e (x.v) x,  c = sum e (x.v),
//   e2 = sum e |y - x|^2,  ce2 = sum e (x.v) |y - x|^2
// (e = exp(logit - running maximum), x the centred components: the
// covariances below do not change with the centre), from which
//   J v = Cov_w(x) v / t = (b / S - (a / S)((a / S).v)) / t,
//   (dD/dsigma).v = Cov_w(x.v, |y - x|^2) / sigma^3 = (ce2/S - (c/S)(e2/S)) / t^1.5.
// The products G = y x^T and C = v x^T, and the sums a and b, are BLAS
// float64 products of a tile of the points as given, centred in float64;
// |y - x|^2 by the expansion, in float64.
#include <algorithm>
#include <cmath>
#include <vector>

#include "blas.h"
#include "ledkde/cpu.h"
#include "ledkde/tile_math.h"
#include "parallel.h"

namespace ledkde {

namespace {

constexpr int64_t kVjpRows = 64;    // rows per block (the parallel tasks)
constexpr int64_t kVjpTile = 1024;  // components per tile

// The online sums of one block of rows (see the top of the file).
struct VjpSums {
  int64_t q, d;
  std::vector<double> m, S, c, e2, ce2, ab;  // ab: (2q, d), a in rows [0, q), b in [q, 2q)
  VjpSums(int64_t rows, int64_t dim)
      : q(rows), d(dim), m(rows, neg_inf()), S(rows, 0.0), c(rows, 0.0), e2(rows, 0.0), ce2(rows, 0.0),
        ab(static_cast<size_t>(2 * rows * dim), 0.0) {}
};

// Scratch of one block: [y; v] (2q, d), their products with a tile (2q, nb),
// the tile in float64 (nb, d) with its squared norms, and the weights [e; e c] (2q, nb).
struct VjpScratch {
  std::vector<double> yv, gc, x64, nx, ew;
};

// One tile [n0, n0 + nb) of components into the block's sums.
template <class T>
void vjp_tile(const VjpPoints<T>& pts, int64_t n0, int64_t nb, double t, const double* ny, VjpSums& s,
              VjpScratch& w) {
  const int64_t q = s.q, d = s.d;
  w.x64.resize(static_cast<size_t>(nb * d));
  w.nx.assign(static_cast<size_t>(nb), 0.0);
  for (int64_t j = 0; j < nb; ++j) {
    const T* src = pts.x + (n0 + j) * d;
    double* dst = w.x64.data() + j * d;
    double n2 = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      dst[k] = static_cast<double>(src[k]) - pts.centre[k];
      n2 += dst[k] * dst[k];
    }
    w.nx[j] = n2;
  }
  w.gc.resize(static_cast<size_t>(2 * q * nb));
  blas::gemm_nt(2 * q, nb, d, w.yv.data(), d, w.x64.data(), d, w.gc.data(), nb);
  w.ew.resize(static_cast<size_t>(2 * q * nb));
  const double inv2t = 0.5 / t;
  for (int64_t i = 0; i < q; ++i) {
    const double* g = w.gc.data() + i * nb;
    const double* cv = w.gc.data() + (q + i) * nb;
    double* e = w.ew.data() + i * nb;  // the logits, then the weights
    double* ec = w.ew.data() + (q + i) * nb;
    for (int64_t j = 0; j < nb; ++j) ec[j] = std::max(ny[i] + w.nx[j] - 2.0 * g[j], 0.0);  // |y - x|^2
    if (pts.logw)
      for (int64_t j = 0; j < nb; ++j) e[j] = pts.logw[n0 + j] - ec[j] * inv2t;
    else
      for (int64_t j = 0; j < nb; ++j) e[j] = -ec[j] * inv2t;
    double top = s.m[i];
    for (int64_t j = 0; j < nb; ++j) top = std::max(top, e[j]);
    // Every state moves onto the new maximum (an empty one has nothing to
    // move); exp_nonpositive gives 0 for -inf - -inf, a point of weight 0.
    const double keep = s.m[i] == neg_inf() ? 0.0 : std::exp(s.m[i] - top);
    s.m[i] = top;
    for (int64_t j = 0; j < nb; ++j) e[j] = exp_nonpositive(e[j] - top);
    double sum = 0.0, csum = 0.0, e2sum = 0.0, ce2sum = 0.0;
    for (int64_t j = 0; j < nb; ++j) {
      const double p = e[j], d2 = ec[j];
      ec[j] = p * cv[j];
      sum += p;
      csum += ec[j];
      e2sum += p * d2;
      ce2sum += ec[j] * d2;
    }
    s.S[i] = s.S[i] * keep + sum;
    s.c[i] = s.c[i] * keep + csum;
    s.e2[i] = s.e2[i] * keep + e2sum;
    s.ce2[i] = s.ce2[i] * keep + ce2sum;
    for (int64_t k = 0; k < d; ++k) {
      s.ab[i * d + k] *= keep;
      s.ab[(q + i) * d + k] *= keep;
    }
  }
  // [a; b] += [e; e c] x_tile (BLAS adds to the kept sums: beta = 1).
  scipy_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2 * q, d, nb, 1.0, w.ew.data(), nb, w.x64.data(), d,
                    1.0, s.ab.data(), d);
}

// The sums of a block of q rows (y, v: q x d in float64) over the points [n0, n1).
template <class T>
VjpSums vjp_block(const VjpPoints<T>& pts, const double* y, const double* v, int64_t q, double t, int64_t n0,
                  int64_t n1, const PassOptions& opt) {
  const int64_t d = pts.d;
  VjpScratch w;
  w.yv.resize(static_cast<size_t>(2 * q * d));
  std::vector<double> ny(static_cast<size_t>(q), 0.0);
  for (int64_t i = 0; i < q; ++i)
    for (int64_t k = 0; k < d; ++k) {
      const double yc = y[i * d + k] - pts.centre[k];
      w.yv[i * d + k] = yc;
      w.yv[(q + i) * d + k] = v[i * d + k];
      ny[i] += yc * yc;
    }
  VjpSums s(q, d);
  for (int64_t j0 = n0; j0 < n1; j0 += kVjpTile) {
    if (opt.stop && opt.stop->poll()) throw Cancelled();
    vjp_tile(pts, j0, std::min(kVjpTile, n1 - j0), t, ny.data(), s, w);
  }
  return s;
}

// Sums b (the same rows over other points) into a: both moved onto the larger maximum.
void merge_sums(VjpSums& a, const VjpSums& b) {
  const int64_t q = a.q, d = a.d;
  for (int64_t i = 0; i < q; ++i) {
    const double top = std::max(a.m[i], b.m[i]);
    if (top == neg_inf()) continue;
    const double fa = a.m[i] == neg_inf() ? 0.0 : std::exp(a.m[i] - top);
    const double fb = b.m[i] == neg_inf() ? 0.0 : std::exp(b.m[i] - top);
    a.m[i] = top;
    a.S[i] = fa * a.S[i] + fb * b.S[i];
    a.c[i] = fa * a.c[i] + fb * b.c[i];
    a.e2[i] = fa * a.e2[i] + fb * b.e2[i];
    a.ce2[i] = fa * a.ce2[i] + fb * b.ce2[i];
    for (int64_t r : {i, q + i})
      for (int64_t k = 0; k < d; ++k) a.ab[r * d + k] = fa * a.ab[r * d + k] + fb * b.ab[r * d + k];
  }
}

// The products of q rows from their sums.
void vjp_products(const VjpSums& s, const double* v, double t, double* jv, double* ds) {
  const int64_t q = s.q, d = s.d;
  for (int64_t i = 0; i < q; ++i) {
    const double* a = s.ab.data() + i * d;
    const double* b = s.ab.data() + (q + i) * d;
    const double inv = 1.0 / s.S[i];
    double mv = 0.0;
    for (int64_t k = 0; k < d; ++k) mv += a[k] * inv * v[i * d + k];
    for (int64_t k = 0; k < d; ++k) jv[i * d + k] = (b[k] * inv - a[k] * inv * mv) / t;
    ds[i] = (s.ce2[i] * inv - (s.c[i] * inv) * (s.e2[i] * inv)) / (t * std::sqrt(t));
  }
}

}  // namespace

// Blocks of rows, each over shards of the points when the blocks are fewer
// than the threads' tasks; the shards' sums merge in shard order, so the
// result depends on the sizes only, not on the thread count.
template <class T>
void denoise_vjp_cpu(const VjpPoints<T>& pts, const double* y, const double* v, int64_t q, double t, double* jv,
                     double* ds, const PassOptions& opt) {
  const int64_t d = pts.d, blocks = (q + kVjpRows - 1) / kVjpRows;
  const int64_t tiles = (pts.n + kVjpTile - 1) / kVjpTile;
  const int64_t shards = std::max<int64_t>(1, std::min((kTargetTasks + blocks - 1) / blocks, tiles / 4));
  auto begin = [&](int64_t s) { return std::min(pts.n, (s * tiles / shards) * kVjpTile); };
  std::vector<VjpSums> sums(static_cast<size_t>(blocks * shards), VjpSums(0, 0));
  StopFlag stop(opt.interrupted);
  PassOptions o = opt;
  o.stop = &stop;
  parallel_for(blocks * shards, opt.threads, [&](int64_t task, int) {
    const int64_t b = task / shards, sh = task % shards, i0 = b * kVjpRows, qb = std::min(kVjpRows, q - i0);
    sums[task] = vjp_block(pts, y + i0 * d, v + i0 * d, qb, t, begin(sh), begin(sh + 1), o);
  }, &stop);
  for (int64_t b = 0; b < blocks; ++b) {
    VjpSums& a = sums[b * shards];
    for (int64_t sh = 1; sh < shards; ++sh) merge_sums(a, sums[b * shards + sh]);
    vjp_products(a, v + b * kVjpRows * d, t, jv + b * kVjpRows * d, ds + b * kVjpRows);
  }
}

template void denoise_vjp_cpu(const VjpPoints<float>&, const double*, const double*, int64_t, double, double*,
                              double*, const PassOptions&);
template void denoise_vjp_cpu(const VjpPoints<double>&, const double*, const double*, int64_t, double, double*,
                              double*, const PassOptions&);

}  // namespace ledkde
