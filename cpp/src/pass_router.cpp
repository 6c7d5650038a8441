// The route of a pass over a block of rows: certified pruning where it
// applies and pays (prune_cpu.cpp), else the dense pass (pass_cpu.cpp). The
// two are siblings: neither calls the other; the rows that the pruned pass
// leaves to the dense one (too many candidates) are run here.
#include <algorithm>
#include <memory>

#include "parallel.h"
#include "pass_cpu.h"
#include "prune_cpu.h"

namespace ledkde {

namespace {

// The dense pass of the rows ws.dense_rows that pruned_reduce left, over a
// workspace of their own; their states copied into ws.
template <class T>
void dense_rows(const Mixture<T>& mix, const LogitParams<T>& lp, Workspace<T>& ws, const PassOptions& opt,
                int64_t n_begin, int64_t n_end) {
  const int64_t qd = static_cast<int64_t>(ws.dense_rows.size()), d = mix.d;
  if (qd == 0) return;
  if (!ws.sub) ws.sub = std::make_unique<Workspace<T>>();
  Workspace<T>& sub = *ws.sub;
  sub.rows.resize(static_cast<size_t>(qd * d));
  for (int64_t r = 0; r < qd; ++r) std::copy_n(ws.rows.data() + ws.dense_rows[r] * d, d, sub.rows.data() + r * d);
  dense_pass(mix, lp, qd, sub, opt, n_begin, n_end);
  for (int64_t r = 0; r < qd; ++r) {
    const int64_t i = ws.dense_rows[r];
    ws.m[i] = sub.m[r];
    ws.S[i] = sub.S[r];
    ws.E[i] = sub.E[r];
    ws.B[i] = sub.B[r];
    std::copy_n(sub.A.data() + r * d, d, ws.A.data() + i * d);
  }
}

// The pruned pass, with its dense rows; false when it chose not to prune.
template <class T>
bool pruned(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws, const PassOptions& opt,
            int64_t n_begin, int64_t n_end, const double* ref_d2, bool rows_prepared) {
  if (!pruned_reduce(mix, lp, q, ws, opt, n_begin, n_end, ref_d2, rows_prepared)) return false;
  if (!(opt.stop && opt.stop->stopped())) dense_rows(mix, lp, ws, opt, n_begin, n_end);
  return true;
}

}  // namespace

template <class T>
void pass_rows(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
               const PassOptions& opt, int64_t n_begin, int64_t n_end, const double* ref_d2, bool rows_prepared) {
  if (n_end < 0) n_end = mix.n;
  if (q > 0 && prune_applies(mix, lp, opt, n_end - n_begin)) {
    if (ref_d2) {  // a shard of the components, references from all of them
      if (pruned(mix, lp, q, ws, opt, n_begin, n_end, ref_d2, rows_prepared)) return;
    } else {
      bool go = opt.probed;  // the call's first probe said go (score_cpu.cpp)
      if (go)
        prune_prepare(mix, q, ws);
      else
        go = prune_probe(mix, lp, q, ws, n_begin, n_end);  // prepares the rows when it says go
      if (go) {
        ws.ref.resize(q);
        prune_references(mix, q, ws, opt, n_begin, n_end, ws.ref.data());
        if (pruned(mix, lp, q, ws, opt, n_begin, n_end, ws.ref.data(), true)) return;
      }
    }
  }
  add_prune_counts(q * (n_end - n_begin), q * (n_end - n_begin));
  dense_pass(mix, lp, q, ws, opt, n_begin, n_end);
}

#define LEDKDE_INSTANTIATE(T)                                                                \
  template void pass_rows(const Mixture<T>&, const LogitParams<T>&, int64_t, Workspace<T>&, \
                          const PassOptions&, int64_t, int64_t, const double*, bool);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
