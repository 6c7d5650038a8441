// Kernel-smoothed score and LED-KDE log-density on the CPU: the kernel draws
// of a tile of queries (and, when the estimator needs it, one unperturbed
// pilot row per query) are the rows of one pass over the data; the
// estimators of smooth_estimator.h turn the rows' states into the means and
// their standard errors.
#include <algorithm>
#include <cmath>
#include <type_traits>
#include <vector>

#include "ledkde/smooth_estimator.h"
#include "parallel.h"
#include "pass_cpu.h"
#include "local_source.h"
#include "row_source.h"
#include "sharded_pass.h"

namespace ledkde {

namespace {

// Rows of one pass at most: a worker's memory stays O(rows (d + tile_n)) for
// any number of draws (10^6 draws of one query once took 4 GB).
constexpr int64_t kMaxPassRows = 8192;

SmoothRowOutputs offset(SmoothRowOutputs o, int64_t i, int64_t d) {
  if (o.score) o.score += i * d;
  if (o.score_se) o.score_se += i;
  if (o.relative_se) o.relative_se += i;
  if (o.log_density) o.log_density += i;
  if (o.log_density_se) o.log_density_se += i;
  return o;
}

}  // namespace

template <class T>
void estimate_from_states(const SmoothOptions& sm, bool per_var, double t, double log_offset, int64_t qb, int64_t d,
                          const RowStateInputs& st, const T* rows, const double* y, const double* centre,
                          SmoothRowOutputs out) {
  const int64_t M = effective_draws(sm);
  const bool pilot = has_pilot(sm, per_var, out.log_density != nullptr);
  const int64_t copies = M + (pilot ? 1 : 0);
  for (int64_t i = 0; i < qb; ++i) {
    const int64_t r0 = i * copies, rp = r0 + M;  // first draw, pilot
    const double* mx = st.m + r0;
    const double* S = st.S + r0;
    // (B is read only with per-component variances: it may be null otherwise.)
    const double beta = control_beta(sm.bandwidth, sm.estimator, per_var, t, pilot,
                                     pilot && per_var ? st.B[rp] : 0.0, pilot ? st.S[rp] : 1.0);
    if (out.score) {
      double* s = out.score + i * d;
      double se2_sum = 0.0, norm2 = 0.0;
      for (int64_t k = 0; k < d; ++k) {
        const ScoreDraws<T> f{st.A + r0 * d, S, rows + r0 * d, d, k, y[i * d + k] - centre[k], beta};
        double se2;
        unit_mean_se2(M, sm.antithetic, f, s[k], se2);
        se2_sum += se2;
        norm2 += s[k] * s[k];
      }
      if (out.score_se) out.score_se[i] = std::sqrt(se2_sum);
      if (out.relative_se) out.relative_se[i] = relative_error(std::sqrt(se2_sum), std::sqrt(norm2));
    }
    if (out.log_density) {
      const LogDensityDraws<T> f{mx, S, pilot ? st.A + rp * d : nullptr, pilot ? st.S[rp] : 1.0, rows + r0 * d,
                                 y + i * d, centre, d};
      double mean, se2;
      unit_mean_se2(M, sm.antithetic, f, mean, se2);
      out.log_density[i] = log_offset + mean;
      if (out.log_density_se) out.log_density_se[i] = std::sqrt(se2);
    }
  }
}

namespace {

// The pass sees its rows rounded to T, r = T(x) for the exact rows x, so its
// A is sum p (mu - r) / v: A -= B (x - r) puts the rounding back in float64
// (float only), and the estimators read the exact rows, so that h = 0 gives
// the plain pass's score bit for bit and the control estimator's linear term
// is the kernel draw itself.
template <class T>
void restore_rows(Workspace<T>& ws, int64_t nrows, int64_t d, const T* rows, const double* exact) {
  if constexpr (std::is_same_v<T, float>)
    for (int64_t i = 0; i < nrows; ++i)
      for (int64_t k = 0; k < d; ++k)
        ws.A[i * d + k] -= ws.B[i] * (exact[i * d + k] - static_cast<double>(rows[i * d + k]));
}

// Row i of ws: x (float64, d), centred by centre, into ws.rows_exact and, rounded to T, ws.rows.
template <class T>
void set_row(Workspace<T>& ws, int64_t i, int64_t d, const double* y, const double* u, const double* centre) {
  for (int64_t k = 0; k < d; ++k) {
    const double x = y[k] + (u ? u[k] : 0.0) - centre[k];
    ws.rows_exact[i * d + k] = x;
    ws.rows[i * d + k] = static_cast<T>(x);
  }
}

// The rows of one pass for qb points y (float64, qb x d) whose stream
// indices are index0, index0 + 1, ...: per point its kernel draws y + u and,
// when the estimator needs it (has_pilot), the unperturbed pilot row, all
// centred, into ws.rows_exact and, rounded to T, ws.rows (qb * rows_per_point
// rows, the layout estimate_from_states reads). Returns the number of rows.
template <class Source, class T = typename Source::Scalar>
int64_t draw_rows(const Source& src, const double* y, int64_t qb, uint32_t index0, const SmoothOptions& sm,
                  bool want_log_density, Workspace<T>& ws) {
  const int64_t d = src.d(), M = effective_draws(sm);
  const double* centre = src.centre();
  const int64_t copies = rows_per_point(sm, src.per_var(), want_log_density);
  ws.rows.resize(static_cast<size_t>(qb * copies * d));
  ws.rows_exact.resize(static_cast<size_t>(qb * copies * d));
  ws.u.assign(static_cast<size_t>(M * d), 0.0);
  for (int64_t i = 0; i < qb; ++i) {
    if (sm.bandwidth > 0.0)
      kernel_draws(sm.seed, index0 + static_cast<uint32_t>(i), sm.eval, M, sm.antithetic, sm.orthogonal, sm.kernel,
                   sm.bandwidth, d, ws.u.data());
    for (int64_t m = 0; m < copies; ++m)  // the pilot row (m = M) is unperturbed
      set_row(ws, i * copies + m, d, y + i * d, m < M ? ws.u.data() + m * d : nullptr, centre);
  }
  return qb * copies;
}

// All draws of qb queries in one pass.
template <class Source, class T = typename Source::Scalar>
void smoothed_block(const Source& src, const typename Source::Params& p, const double* y, int64_t qb,
                    uint32_t index0, const SmoothOptions& sm, Workspace<T>& ws,
                    const PassOptions& opt, SmoothRowOutputs out) {
  const int64_t rows = draw_rows(src, y, qb, index0, sm, out.log_density != nullptr, ws);
  PassOptions o = opt;
  o.entropy = false;  // only scores and log-densities come out of here
  src.reduce(p, rows, ws, o);
  restore_rows(ws, rows, src.d(), ws.rows.data(), ws.rows_exact.data());
  RowStateInputs st{ws.m.data(), ws.S.data(), ws.A.data(), ws.B.data()};
  estimate_from_states(sm, src.per_var(), Source::time(p), Source::log_offset(p), qb, src.d(), st, ws.rows_exact.data(),
                       y, src.centre(), out);
}

// One query whose draws do not fit one pass: its draws go through the pass
// in chunks of whole units (pairs, orthogonal blocks), in order, and each
// running mean and variance (Welford, as unit_mean_se2) carries over from
// chunk to chunk: the estimate is that of one pass over all the draws.
template <class Source, class T = typename Source::Scalar>
void smoothed_chunked(const Source& src, const typename Source::Params& p, const double* y, uint32_t index,
                      const SmoothOptions& sm, Workspace<T>& ws, const PassOptions& opt,
                      SmoothRowOutputs out) {
  const int64_t d = src.d(), M = effective_draws(sm);
  const bool per_var = src.per_var();
  const double* centre = src.centre();
  const double t = Source::time(p);
  const bool pilot = has_pilot(sm, per_var, out.log_density != nullptr);
  const int64_t unit = kernel_draw_unit(sm.antithetic, sm.orthogonal, d);
  const int64_t C = std::max(unit, kMaxPassRows / unit * unit);
  PassOptions o = opt;
  o.entropy = false;
  std::vector<double> yc(static_cast<size_t>(d));
  for (int64_t k = 0; k < d; ++k) yc[k] = y[k] - centre[k];
  double Bp = 0.0, Sp = 1.0;
  std::vector<double> Ap;
  if (pilot) {  // the unperturbed row first: beta and the log-density's linear term need it
    ws.rows.resize(static_cast<size_t>(d));
    ws.rows_exact.resize(static_cast<size_t>(d));
    set_row(ws, 0, d, y, nullptr, centre);
    src.reduce(p, 1, ws, o);
    restore_rows(ws, 1, d, ws.rows.data(), ws.rows_exact.data());
    Bp = ws.B[0];
    Sp = ws.S[0];
    Ap.assign(ws.A.begin(), ws.A.begin() + d);
  }
  const double beta = control_beta(sm.bandwidth, sm.estimator, per_var, t, pilot, Bp, Sp);
  std::vector<MeanVar> acc(static_cast<size_t>(out.score ? d : 0), mean_var_init());
  MeanVar acc_ld = mean_var_init();
  std::vector<double> u(static_cast<size_t>(C * d));
  for (int64_t m0 = 0; m0 < M; m0 += C) {
    if (opt.stop && opt.stop->poll()) return;  // cancelled
    const int64_t c = std::min(C, M - m0);
    kernel_draws_range(sm.seed, index, sm.eval, m0, c, sm.antithetic, sm.orthogonal, sm.kernel, sm.bandwidth, d,
                       u.data());
    ws.rows.resize(static_cast<size_t>(c * d));
    ws.rows_exact.resize(static_cast<size_t>(c * d));
    for (int64_t m = 0; m < c; ++m) set_row(ws, m, d, y, u.data() + m * d, centre);
    src.reduce(p, c, ws, o);
    restore_rows(ws, c, d, ws.rows.data(), ws.rows_exact.data());
    for (int64_t k = 0; k < static_cast<int64_t>(acc.size()); ++k)
      add_units(acc[k], c, sm.antithetic,
                ScoreDraws<double>{ws.A.data(), ws.S.data(), ws.rows_exact.data(), d, k, yc[k], beta});
    if (out.log_density)
      add_units(acc_ld, c, sm.antithetic,
                LogDensityDraws<double>{ws.m.data(), ws.S.data(), pilot ? Ap.data() : nullptr, Sp, ws.rows_exact.data(), y,
                                        centre, d});
  }
  if (out.score) {
    double se2_sum = 0.0, norm2 = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      out.score[k] = acc[k].mean;
      se2_sum += mean_var_se2(acc[k]);
      norm2 += acc[k].mean * acc[k].mean;
    }
    if (out.score_se) out.score_se[0] = std::sqrt(se2_sum);
    if (out.relative_se) out.relative_se[0] = relative_error(std::sqrt(se2_sum), std::sqrt(norm2));
  }
  if (out.log_density) {
    out.log_density[0] = Source::log_offset(p) + acc_ld.mean;
    if (out.log_density_se) out.log_density_se[0] = std::sqrt(mean_var_se2(acc_ld));
  }
}

}  // namespace

// The draws of qb queries: in one pass when they fit kMaxPassRows rows, else
// in blocks of queries, else (one query's draws alone are too many) in chunks.
template <class Source>
void smoothed_rows(const Source& src, const typename Source::Params& p, const double* y, int64_t qb,
                   uint32_t index0, const SmoothOptions& sm, Workspace<typename Source::Scalar>& ws,
                   const PassOptions& opt, SmoothRowOutputs out) {
  const int64_t d = src.d();
  const int64_t copies = rows_per_point(sm, src.per_var(), out.log_density != nullptr);
  if (qb * copies <= kMaxPassRows) {
    smoothed_block(src, p, y, qb, index0, sm, ws, opt, out);
  } else if (copies <= kMaxPassRows) {
    const int64_t per = kMaxPassRows / copies;
    for (int64_t i0 = 0; i0 < qb; i0 += per)
      smoothed_block(src, p, y + i0 * d, std::min(per, qb - i0), index0 + static_cast<uint32_t>(i0), sm, ws, opt,
                     offset(out, i0, d));
  } else {
    for (int64_t i = 0; i < qb; ++i)
      smoothed_chunked(src, p, y + i * d, index0 + static_cast<uint32_t>(i), sm, ws, opt, offset(out, i, d));
  }
}

namespace {

// The float64 estimates of a block of qb queries (what smoothed_rows writes
// where out wants them), and their copy into out in T.
struct BlockEstimates {
  std::vector<double> y, s, ld, sse, lse;
  template <class T>
  SmoothRowOutputs start(const T* src, int64_t qb, int64_t d, const SmoothOutputs<T>& out) {
    y.assign(src, src + qb * d);
    s.resize(static_cast<size_t>(qb * d));
    ld.resize(qb);
    sse.resize(qb);
    lse.resize(qb);
    SmoothRowOutputs ro;
    ro.score = out.score ? s.data() : nullptr;
    ro.score_se = out.score_se ? sse.data() : nullptr;
    ro.log_density = out.log_density ? ld.data() : nullptr;
    ro.log_density_se = out.log_density_se ? lse.data() : nullptr;
    return ro;
  }
  template <class T>
  void write(const SmoothOutputs<T>& out, int64_t i0, int64_t qb, int64_t d) const {
    for (int64_t i = 0; i < qb; ++i) {
      if (out.log_density) out.log_density[i0 + i] = static_cast<T>(ld[i]);
      if (out.log_density_se) out.log_density_se[i0 + i] = static_cast<T>(lse[i]);
      if (out.score_se) out.score_se[i0 + i] = static_cast<T>(sse[i]);
      if (out.score)
        for (int64_t k = 0; k < d; ++k) out.score[(i0 + i) * d + k] = static_cast<T>(s[i * d + k]);
    }
  }
};

}  // namespace

template <class T>
void smoothed_cpu(const Mixture<T>& mix, const T* y, int64_t q, double t, const SmoothOptions& sm,
                  SmoothOutputs<T> out, const PassOptions& opt_in) {
  const LogitParams<T> lp = make_logit_params(mix, t);
  // One pass per kernel draw over the same mixture: pack it for the tile products.
  TilePack<T> pack;
  const PassOptions opt = with_tile_pack(mix, opt_in, pack);
  const int64_t d = mix.d;
  const int64_t copies = rows_per_point(sm, !mix.var.empty(), out.log_density != nullptr);
  const int64_t tq = std::max<int64_t>(1, opt.tile_q / copies);
  const int64_t ntiles = (q + tq - 1) / tq;
  StopFlag stop(opt.interrupted);
  PassOptions o = opt;
  o.stop = &stop;
  // The draws of all the queries in one pass: the components cut into shards
  // so that every core shares it (one tile alone would run on one core).
  const int64_t nshards = ntiles == 1 && q * copies <= kMaxPassRows ? shard_count(mix, lp, opt, 1) : 1;
  if (nshards > 1) {
    o.entropy = false;
    BlockEstimates est;
    const SmoothRowOutputs ro = est.start(y, q, d, out);
    WorkspaceLease<T> ws(static_cast<size_t>(worker_count(opt.threads, nshards)));
    WorkspaceLease<T> part(static_cast<size_t>(nshards));
    // The draws once (their normals cost more than a pruned pass at small
    // t), copied into each shard's workspace.
    Workspace<T> drawn;
    const int64_t nrows = draw_rows(MixtureSource<T>{mix}, est.y.data(), q, 0, sm, out.log_density != nullptr, drawn);
    sharded_passes(mix, lp, 1, nrows, nshards, o, ws, part, [&](int64_t, Workspace<T>& w) {
      w.rows.assign(drawn.rows.begin(), drawn.rows.begin() + nrows * d);
      return nrows;
    });
    restore_rows(part[0], nrows, d, drawn.rows.data(), drawn.rows_exact.data());
    Workspace<T>& w = part[0];
    const RowStateInputs st{w.m.data(), w.S.data(), w.A.data(), w.B.data()};
    estimate_from_states(sm, !mix.var.empty(), lp.t, lp.c0, q, d, st, drawn.rows_exact.data(), est.y.data(),
                         mix.centre.data(), ro);
    est.write(out, 0, q, d);
    return;
  }
  struct Scratch {
    Workspace<T> ws;
    BlockEstimates est;
  };
  std::vector<Scratch> scratch(static_cast<size_t>(worker_count(opt.threads, ntiles)));
  parallel_for(ntiles, opt.threads, [&](int64_t tile, int worker) {
    Scratch& w = scratch[worker];
    const int64_t i0 = tile * tq, qb = std::min(tq, q - i0);
    const SmoothRowOutputs ro = w.est.start(y + i0 * d, qb, d, out);
    smoothed_rows(MixtureSource<T>{mix}, lp, w.est.y.data(), qb, static_cast<uint32_t>(i0), sm, w.ws, o, ro);
    if (stop.stopped()) return;  // cancelled: nothing is written
    w.est.write(out, i0, qb, d);
  }, &stop);
}

// Over a remote source (data sharded over machines): tiles of queries one
// after the other on the calling thread (the shards do the parallel work).
template <class T>
void smoothed_remote(const RemoteSource<T>& src, const T* y, int64_t q, double t, const SmoothOptions& sm,
                     SmoothOutputs<T> out, const PassOptions& opt) {
  const int64_t d = src.d();
  const auto p = src.params(t);
  const int64_t copies = rows_per_point(sm, src.per_var(), out.log_density != nullptr);
  const int64_t tq = std::max<int64_t>(1, kMaxPassRows / copies);
  StopFlag stop(opt.interrupted);
  PassOptions o = opt;
  o.stop = &stop;
  Workspace<T> ws;
  BlockEstimates est;
  for (int64_t i0 = 0; i0 < q; i0 += tq) {
    if (stop.poll()) throw Cancelled();
    const int64_t qb = std::min(tq, q - i0);
    const SmoothRowOutputs ro = est.start(y + i0 * d, qb, d, out);
    smoothed_rows(src, p, est.y.data(), qb, static_cast<uint32_t>(i0), sm, ws, o, ro);
    if (stop.stopped()) throw Cancelled();
    est.write(out, i0, qb, d);
  }
}

#define LEDKDE_INSTANTIATE(T)                                                                   \
  template void estimate_from_states(const SmoothOptions&, bool, double, double, int64_t, int64_t,  \
                                     const RowStateInputs&, const T*, const double*, const double*, \
                                     SmoothRowOutputs);                                            \
  template void smoothed_rows(const MixtureSource<T>&, const LogitParams<T>&, const double*, int64_t, \
                              uint32_t, const SmoothOptions&, Workspace<T>&, const PassOptions&,     \
                              SmoothRowOutputs);                                                     \
  template void smoothed_rows(const RemoteSource<T>&, const RemoteSource<T>::Params&, const double*,  \
                              int64_t, uint32_t, const SmoothOptions&, Workspace<T>&,                \
                              const PassOptions&, SmoothRowOutputs);                                 \
  template void smoothed_rows(const LocalSource<T>&, const LocalSource<T>::Params&, const double*,    \
                              int64_t, uint32_t, const SmoothOptions&, Workspace<T>&,                \
                              const PassOptions&, SmoothRowOutputs);                                 \
  template void smoothed_cpu(const Mixture<T>&, const T*, int64_t, double,                     \
                             const SmoothOptions&, SmoothOutputs<T>, const PassOptions&);    \
  template void smoothed_remote(const RemoteSource<T>&, const T*, int64_t, double,             \
                                const SmoothOptions&, SmoothOutputs<T>, const PassOptions&);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
