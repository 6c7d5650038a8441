// Fused outputs and partial states of the plain score pass on the CPU:
// threads over query tiles (and shards of the components when the tiles are few).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>
#include <vector>

#include "ledkde/finish_rows.h"
#include "parallel.h"
#include "pass_cpu.h"
#include "prune_cpu.h"
#include "sharded_pass.h"

namespace ledkde {

namespace {

// The pass works on the centred rows rounded to T, r = T(y - c), so its A is
// sum p (mu - r) / v. The rounding of r is put back here in float64, A -= B
// ((y - c) - r), so that the score and the denoiser are those of y itself:
// queries far from the data's centre (large t) lose nothing to it.
template <class T>
void restore_rounding(const Mixture<T>& mix, const T* y, int64_t qb, Workspace<T>& w) {
  if constexpr (std::is_same_v<T, float>) {
    const int64_t d = mix.d;
    for (int64_t i = 0; i < qb; ++i)
      for (int64_t k = 0; k < d; ++k) {
        const double x = static_cast<double>(y[i * d + k]) - mix.centre[k];
        w.A[i * d + k] -= w.B[i] * (x - static_cast<double>(static_cast<T>(x)));
      }
  }
}

// Runs the pass over all components for each query tile (in parallel) and
// hands the finished tile to emit(first_row, rows, workspace).
//
// With few query tiles there would be too few tasks for the threads, so the
// components are also cut into a fixed number of shards whose states are
// merged in shard order: both the cut and the order depend on q and n only,
// never on the thread count, so results stay bit-identical across threads.
template <class T, class Emit>
void for_each_query_tile(const Mixture<T>& mix, const LogitParams<T>& lp, const T* y, int64_t q,
                         const PassOptions& opt, Emit&& emit) {
  const int64_t d = mix.d, tq = opt.tile_q;
  const int64_t ntiles = (q + tq - 1) / tq;
  if (ntiles == 0) return;
  const int64_t nshards = shard_count(mix, lp, opt, ntiles);
  StopFlag stop(opt.interrupted);
  PassOptions o = opt;
  o.stop = &stop;
  WorkspaceLease<T> ws(static_cast<size_t>(worker_count(opt.threads, ntiles * nshards)));
  if (nshards == 1) {
    if (ntiles > 1 && q >= kSampleFrom && prune_applies(mix, lp, o, mix.n)) {
      // The first probe of pruning once for the call, on a sample of all its
      // rows, rather than once per tile (it reads all the components' leading
      // projection coordinates: ~2 ms at N = 60,000).
      Workspace<T>& w = ws[0];
      const int64_t s = std::min(q, kSampleRows);
      std::vector<T> sample(static_cast<size_t>(s * d));
      for (int64_t r = 0; r < s; ++r) std::copy_n(y + r * q / s * d, d, sample.data() + r * d);
      centre_rows(mix, sample.data(), s, w);
      o.probed = sample_probe(mix, lp, s, w.rows.data(), 0, mix.n, w.lb);
      o.prune = o.probed;
    }
    parallel_for(ntiles, opt.threads, [&](int64_t tile, int worker) {
      Workspace<T>& w = ws[worker];
      const int64_t i0 = tile * tq, qb = std::min(tq, q - i0);
      centre_rows(mix, y + i0 * d, qb, w);
      pass_rows(mix, lp, qb, w, o);
      if (stop.stopped()) return;
      restore_rounding(mix, y + i0 * d, qb, w);
      emit(i0, qb, w);
    }, &stop);
    return;
  }
  WorkspaceLease<T> part(static_cast<size_t>(ntiles * nshards));
  sharded_passes(mix, lp, ntiles, tq, nshards, o, ws, part, [&](int64_t tile, Workspace<T>& w) {
    const int64_t i0 = tile * tq, qb = std::min(tq, q - i0);
    centre_rows(mix, y + i0 * d, qb, w);
    return qb;
  });
  for (int64_t tile = 0; tile < ntiles; ++tile) {
    const int64_t i0 = tile * tq, qb = std::min(tq, q - i0);
    restore_rounding(mix, y + i0 * d, qb, part[tile * nshards]);
    emit(i0, qb, part[tile * nshards]);
  }
}

}  // namespace

template <class T>
void evaluate_cpu(const Mixture<T>& mix, const T* y, int64_t q, double t, PassOutputs<T> out,
                  const PassOptions& opt_in) {
  const LogitParams<T> lp = make_logit_params(mix, t);
  const int64_t d = mix.d;
  PassOptions opt = opt_in;
  opt.entropy = out.entropy != nullptr;
  for_each_query_tile(mix, lp, y, q, opt, [&](int64_t i0, int64_t qb, Workspace<T>& w) {
    PassOutputs<T> o;
    o.log_density = out.log_density ? out.log_density + i0 : nullptr;
    o.score = out.score ? out.score + i0 * d : nullptr;
    o.denoise = out.denoise ? out.denoise + i0 * d : nullptr;
    o.entropy = out.entropy ? out.entropy + i0 : nullptr;
    o.max_weight = out.max_weight ? out.max_weight + i0 : nullptr;
    finish_rows(w.state(), y + i0 * d, qb, d, t, lp.c0, o);
  });
}

template <class T>
void partial_cpu(const Mixture<T>& mix, const T* y, int64_t q, double t, PartialState out,
                 const PassOptions& opt) {
  const LogitParams<T> lp = make_logit_params(mix, t);
  const int64_t d = mix.d;
  for_each_query_tile(mix, lp, y, q, opt, [&](int64_t i0, int64_t qb, const Workspace<T>& w) {
    for (int64_t i = 0; i < qb; ++i) {
      // Un-normalize the weights (log_mass) so that shards merge.
      out.m[i0 + i] = w.m[i] + lp.c0 + mix.log_mass;
      out.S[i0 + i] = w.S[i];
      out.E[i0 + i] = w.E[i];
      std::copy(w.A.begin() + i * d, w.A.begin() + (i + 1) * d, out.A + (i0 + i) * d);
      if (out.B) out.B[i0 + i] = w.B[i];
    }
  });
}

void merge_states_cpu(int64_t q, int64_t d, PartialState a, PartialState b) {
  for (int64_t i = 0; i < q; ++i) merge_row(a, i, b, i, d);
}

void finalize_states_cpu(int64_t q, int64_t d, PartialState s, double* log_density, double* score,
                         double* entropy, double* max_weight) {
  // The states' m already hold every offset; no denoiser, so no rows are read.
  finish_rows<double>(s, nullptr, q, d, 0.0, 0.0, PassOutputs<double>{log_density, score, nullptr, entropy, max_weight});
}

template void evaluate_cpu(const Mixture<float>&, const float*, int64_t, double, PassOutputs<float>,
                           const PassOptions&);
template void evaluate_cpu(const Mixture<double>&, const double*, int64_t, double,
                           PassOutputs<double>, const PassOptions&);
template void partial_cpu(const Mixture<float>&, const float*, int64_t, double, PartialState,
                          const PassOptions&);
template void partial_cpu(const Mixture<double>&, const double*, int64_t, double, PartialState,
                          const PassOptions&);

}  // namespace ledkde
