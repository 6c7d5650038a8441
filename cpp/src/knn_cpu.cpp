// Exact k nearest components of each query, tiled like the score pass: the
// same matrix products (or coordinate differences for small d) give
// approximate squared distances, and every component that could enter the
// running top k within the approximation's error bound is measured again by
// coordinate differences in float64. No (Q x N) buffer.
#include <algorithm>
#include <cmath>
#include <limits>

#include "blas.h"
#include "parallel.h"
#include "pass_cpu.h"
#include "prune_cpu.h"
#include "row_kernels.h"

namespace ledkde {

namespace {

// The running k best (exact squared distance, index) of one query, sorted.
struct TopK {
  std::vector<std::pair<double, int64_t>> best;
  int64_t k;
  double worst() const {
    return static_cast<int64_t>(best.size()) < k ? std::numeric_limits<double>::infinity()
                                                   : best.back().first;
  }
  void offer(double d2, int64_t j) {
    const std::pair<double, int64_t> e{d2, j};
    if (static_cast<int64_t>(best.size()) == k && !(e < best.back())) return;
    best.insert(std::upper_bound(best.begin(), best.end(), e), e);
    if (static_cast<int64_t>(best.size()) > k) best.pop_back();
  }
};

}  // namespace

template <class T>
void knn_cpu(const Mixture<T>& mix, const T* y, int64_t q, int64_t k, int64_t* index, T* dist,
             const PassOptions& opt) {
  const int64_t d = mix.d, n = mix.n, tq = opt.tile_q, tn = opt.tile_n;
  const int64_t ntiles = (q + tq - 1) / tq;
  const bool direct = !mix.muT.empty();
  const double eps = std::numeric_limits<T>::epsilon();
  const double kappa = expansion_kappa(d);
  // The row kernels return c' - d2 * k0; with c' = 0 and k0 = -1 that is the
  // (approximate) squared distance itself.
  const T k0 = T(-1);
  WorkspaceLease<T> ws(static_cast<size_t>(worker_count(opt.threads, ntiles)));
  StopFlag stop(opt.interrupted);
  PassOptions o = opt;
  o.stop = &stop;
  const bool prune = knn_prune_applies(mix, k, opt);
  parallel_for(ntiles, opt.threads, [&](int64_t tile, int worker) {
    Workspace<T>& w = ws[worker];
    const int64_t i0 = tile * tq, qb = std::min(tq, q - i0);
    centre_rows(mix, y + i0 * d, qb, w);
    std::vector<TopK> top(qb, TopK{{}, k});
    // Pruned first (prune_cpu.h); the rows it leaves, and all rows without a
    // projection, the dense way below.
    std::vector<char> dense(qb, 1);
    if (prune) {
      std::vector<std::vector<std::pair<double, int64_t>>> found;
      knn_candidates(mix, qb, w, k, o, found, dense);
      for (int64_t i = 0; i < qb; ++i)
        for (const auto& e : found[i]) top[i].offer(e.first, e.second);
    }
    // The rows left for the dense search, packed (position r holds row drows[r]).
    std::vector<int64_t> drows;
    for (int64_t i = 0; i < qb; ++i)
      if (dense[i]) drows.push_back(i);
    const int64_t qd = static_cast<int64_t>(drows.size());
    std::vector<T> rows_d(static_cast<size_t>(qd * d));
    for (int64_t r = 0; r < qd; ++r) std::copy_n(w.rows.data() + drows[r] * d, d, rows_d.data() + r * d);
    w.X.resize(static_cast<size_t>(tn));
    if (direct) w.D2.resize(static_cast<size_t>(tn));
    else w.G.resize(static_cast<size_t>(qd * tn));
    std::vector<double> ny(qd), delta(qd);
    for (int64_t r = 0; r < qd; ++r) {
      double s = 0.0;
      for (int64_t c = 0; c < d; ++c) s += static_cast<double>(rows_d[r * d + c]) * rows_d[r * d + c];
      ny[r] = s;
      // Error bound of an approximate squared distance (expansion: a few
      // sqrt(d) roundings of the largest term; differences: relative (d + 4) eps).
      delta[r] = direct ? 0.0 : kappa * eps * (s + mix.norm2_max);
    }
    for (int64_t n0 = 0; qd > 0 && n0 < n; n0 += tn) {
      if (stop.poll()) return;  // cancelled
      const int64_t nb = std::min(tn, n - n0);
      if (!direct) blas::gemm_nt(qd, nb, d, rows_d.data(), d, mix.mu.data() + n0 * d, d, w.G.data(), tn);
      for (int64_t r = 0; r < qd; ++r) {
        TopK& best = top[drows[r]];
        const T* row = rows_d.data() + r * d;
        T* x = w.X.data();
        if (direct)
          rows::logits_direct(row, mix.muT.data() + n0, n, d, nullptr, nullptr, k0, nb, w.D2.data(), x);
        else
          rows::logits_expansion(mix.norm2.data() + n0, w.G.data() + r * tn, static_cast<T>(ny[r]),
                                 nullptr, nullptr, k0, nb, x);
        for (int64_t j = 0; j < nb; ++j) {
          // Could this component beat the current k-th best once measured exactly?
          const double worst = best.worst();
          const double slack = direct ? (static_cast<double>(d) + 4.0) * eps * worst : delta[r];
          if (static_cast<double>(x[j]) > worst + 2.0 * slack) continue;
          const T* mu = mix.mu.data() + (n0 + j) * d;
          best.offer(rows::exact_dist2(row, mu, d), n0 + j);
        }
      }
    }
    if (stop.stopped()) return;
    for (int64_t i = 0; i < qb; ++i)
      for (int64_t r = 0; r < k; ++r) {
        index[(i0 + i) * k + r] = top[i].best[r].second;
        dist[(i0 + i) * k + r] = static_cast<T>(std::sqrt(top[i].best[r].first));
      }
  }, &stop);
}

template void knn_cpu(const Mixture<float>&, const float*, int64_t, int64_t, int64_t*, float*,
                      const PassOptions&);
template void knn_cpu(const Mixture<double>&, const double*, int64_t, int64_t, int64_t*, double*,
                      const PassOptions&);

}  // namespace ledkde
