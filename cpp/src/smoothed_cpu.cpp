// Kernel-smoothed score and LED-KDE log-density on the CPU: the n_kernel
// perturbed copies of a tile of queries are the rows of one pass over the
// data, and the mean over copies is taken here.
#include <cmath>

#include "ledkde/philox.h"
#include "parallel.h"
#include "pass_cpu.h"

namespace ledkde {

template <class T>
void smoothed_rows(const Mixture<T>& mix, const LogitParams<T>& lp, const double* y, int64_t qb,
                   uint32_t index0, const SmoothOptions& sm, Workspace<T>& ws,
                   const PassOptions& opt, double* score, double* log_density) {
  const int64_t d = mix.d, M = effective_draws(sm);
  ws.rows.resize(static_cast<size_t>(qb * M * d));
  ws.u.assign(d, 0.0);
  for (int64_t i = 0; i < qb; ++i) {
    for (int64_t m = 0; m < M; ++m) {
      if (sm.bandwidth > 0.0)
        kernel_draw(sm.seed, index0 + static_cast<uint32_t>(i), sm.eval, static_cast<uint32_t>(m),
                    sm.antithetic, sm.kernel, sm.bandwidth, d, ws.u.data());
      T* row = ws.rows.data() + (i * M + m) * d;
      for (int64_t k = 0; k < d; ++k)
        row[k] = static_cast<T>(y[i * d + k] + ws.u[k] - mix.centre[k]);
    }
  }
  PassOptions o = opt;
  o.entropy = false;  // only scores and log-densities come out of here
  pass_rows(mix, lp, qb * M, ws, o);
  const double inv_m = 1.0 / static_cast<double>(M);
  for (int64_t i = 0; i < qb; ++i) {
    double* s = score + i * d;
    std::fill(s, s + d, 0.0);
    double ld = 0.0;
    for (int64_t m = 0; m < M; ++m) {
      const int64_t r = i * M + m;
      const double S = ws.st[r].S;
      const double* Ar = ws.A.data() + r * d;
      for (int64_t k = 0; k < d; ++k) s[k] += Ar[k] / S;  // as in evaluate_cpu: h = 0 is exact
      ld += lse_log_density(ws.st[r]);
    }
    for (int64_t k = 0; k < d; ++k) s[k] *= inv_m;
    if (log_density) log_density[i] = lp.c0 + ld * inv_m;
  }
}

template <class T>
void smoothed_cpu(const Mixture<T>& mix, const T* y, int64_t q, double t, const SmoothOptions& sm,
                  T* score, T* log_density, const PassOptions& opt_in) {
  const LogitParams<T> lp = make_logit_params(mix, t);
  // One pass per kernel draw over the same mixture: pack it for the tile products.
  TilePack<T> pack;
  const PassOptions opt = with_tile_pack(mix, opt_in, pack);
  const int64_t d = mix.d;
  const int64_t tq = std::max<int64_t>(1, opt.tile_q / effective_draws(sm));
  const int64_t ntiles = (q + tq - 1) / tq;
  struct Scratch {
    Workspace<T> ws;
    std::vector<double> y, s, ld;
  };
  std::vector<Scratch> scratch(static_cast<size_t>(std::max(1, opt.threads)));
  parallel_for(ntiles, opt.threads, [&](int64_t tile, int worker) {
    Scratch& w = scratch[worker];
    const int64_t i0 = tile * tq, qb = std::min(tq, q - i0);
    w.y.assign(y + i0 * d, y + (i0 + qb) * d);
    w.s.resize(static_cast<size_t>(qb * d));
    w.ld.resize(qb);
    smoothed_rows(mix, lp, w.y.data(), qb, static_cast<uint32_t>(i0), sm, w.ws, opt, w.s.data(),
                  w.ld.data());
    for (int64_t i = 0; i < qb; ++i) {
      if (log_density) log_density[i0 + i] = static_cast<T>(w.ld[i]);
      if (score)
        for (int64_t k = 0; k < d; ++k) score[(i0 + i) * d + k] = static_cast<T>(w.s[i * d + k]);
    }
  });
}

#define LEDKDE_INSTANTIATE(T)                                                                   \
  template void smoothed_rows(const Mixture<T>&, const LogitParams<T>&, const double*, int64_t, \
                              uint32_t, const SmoothOptions&, Workspace<T>&,                    \
                              const PassOptions&, double*, double*);                            \
  template void smoothed_cpu(const Mixture<T>&, const T*, int64_t, double,                     \
                             const SmoothOptions&, T*, T*, const PassOptions&);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
