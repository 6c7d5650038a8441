// Passes of a few blocks of query rows with the components cut into shards
// (score_cpu.cpp, smoothed_cpu.cpp): with fewer blocks than kTargetTasks the
// components are split too, so that a few rows still keep the cores busy.
// The cut and the order of the merge depend on the sizes alone, never on the
// thread count: results stay bit-identical across threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "ledkde/finish_rows.h"
#include "parallel.h"
#include "pass_cpu.h"
#include "prune_cpu.h"
#include "tile_gemm.h"

namespace ledkde {

// Shards of the components for ntiles blocks of rows: about kTargetTasks
// tasks in all, at most one per tile of tile_n components.
inline int64_t shard_count(int64_t ntiles, int64_t n, int64_t tile_n) {
  const int64_t n_tiles_data = (n + tile_n - 1) / tile_n;
  if (ntiles <= 0) return 1;
  return std::max<int64_t>(1, std::min((kTargetTasks + ntiles - 1) / ntiles, n_tiles_data));
}

// The first component of shard s of nshards: the components cut into shards
// of nearly equal size (within one packed panel of 32, where the built-in
// tile products may start). Shards of whole tiles of 512 were up to 20%
// apart (5000 components: 3, 3, 3, 1 tiles), and a pass waited on its largest.
inline int64_t shard_begin(int64_t s, int64_t nshards, int64_t n) {
  const int64_t panels = (n + tile_gemm::kPanel - 1) / tile_gemm::kPanel;
  return std::min(n, s * panels / nshards * tile_gemm::kPanel);
}

// The shard count for a pass over mix at lp: fewer shards where more would
// each hold too few components for the pruning (prune_applies) that a pass
// over all of them gets (Fashion-MNIST N = 5000, 64 queries, t = 0.05: four
// shards of 1250 went dense, 3x slower than one pruned pass).
template <class T>
int64_t shard_count(const Mixture<T>& mix, const LogitParams<T>& lp, const PassOptions& opt, int64_t ntiles) {
  int64_t ns = shard_count(ntiles, mix.n, opt.tile_n);
  if (ns > 1 && prune_applies(mix, lp, opt, mix.n))
    while (ns > 1 && !prune_applies(mix, lp, opt, shard_begin(1, ns, mix.n))) --ns;
  return ns;
}

// The first probe of each of ntiles blocks of rows over the components cut
// into nshards shards (prune_cpu.h): from kSampleFrom rows on, on a sample of
// the block's rows, their references the least over the shards; below, each
// shard probes its first tile with the rows prepared, and the majority
// decides. Then, for the blocks where pruning pays (pays[tile]), the rows
// prepared once for all shards (prep[tile]) and every row's reference, the
// least over the shards (refs, tq per block). Arguments as sharded_passes.
template <class T, class Rows>
void sharded_references(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t ntiles, int64_t tq,
                        int64_t nshards, const PassOptions& o, WorkspaceLease<T>& ws, Rows& rows,
                        std::vector<char>& pays, std::vector<PreparedRows>& prep, std::vector<double>& refs) {
  auto begin = [&](int64_t shard) { return shard_begin(shard, nshards, mix.n); };
  std::vector<RowSample<T>> sample(static_cast<size_t>(ntiles));
  prep.assign(static_cast<size_t>(ntiles), PreparedRows{});
  std::vector<int64_t> qbs(static_cast<size_t>(ntiles));
  parallel_for(ntiles, o.threads, [&](int64_t tile, int worker) {
    Workspace<T>& w = ws[worker];
    qbs[tile] = rows(tile, w);
    if (qbs[tile] >= kSampleFrom) {
      prune_sample(mix, qbs[tile], w.rows.data(), sample[tile]);
    } else {
      prune_prepare(mix, qbs[tile], w);
      copy_prepared(w, prep[tile]);
    }
  }, o.stop);
  std::vector<double> near(static_cast<size_t>(ntiles * nshards * kSampleRows), 0.0);
  std::vector<char> vote(static_cast<size_t>(ntiles * nshards), 0);
  parallel_for(ntiles * nshards, o.threads, [&](int64_t task, int worker) {
    const int64_t tile = task / nshards, shard = task % nshards;
    if (qbs[tile] >= kSampleFrom) {
      sample_nearest(mix, sample[tile], begin(shard), begin(shard + 1), near.data() + task * kSampleRows);
      return;
    }
    Workspace<T>& w = ws[worker];
    rows(tile, w);
    copy_prepared(prep[tile], w);
    vote[task] = prune_probe_prepared(mix, lp, qbs[tile], w, begin(shard), begin(shard + 1));
  }, o.stop);
  for (int64_t tile = 0; tile < ntiles; ++tile) {
    if (qbs[tile] < kSampleFrom) {
      int64_t yes = 0;
      for (int64_t shard = 0; shard < nshards; ++shard) yes += vote[tile * nshards + shard];
      pays[tile] = 2 * yes > nshards;
      continue;
    }
    double* first = near.data() + tile * nshards * kSampleRows;
    for (int64_t shard = 1; shard < nshards; ++shard)
      for (int64_t r = 0; r < kSampleRows; ++r) first[r] = std::min(first[r], first[shard * kSampleRows + r]);
    pays[tile] = sample_pays(mix, lp, sample[tile], 0, mix.n, ws[0].lb, first);
  }
  parallel_for(ntiles, o.threads, [&](int64_t tile, int worker) {
    if (!pays[tile] || qbs[tile] < kSampleFrom) return;
    Workspace<T>& w = ws[worker];
    prune_prepare(mix, rows(tile, w), w);
    copy_prepared(w, prep[tile]);
  }, o.stop);
  std::vector<double> local(static_cast<size_t>(ntiles * nshards * tq), 0.0);
  parallel_for(ntiles * nshards, o.threads, [&](int64_t task, int worker) {
    if (!pays[task / nshards]) return;
    const int64_t shard = task % nshards;
    Workspace<T>& w = ws[worker];
    const int64_t qb = rows(task / nshards, w);
    copy_prepared(prep[task / nshards], w);
    prune_references(mix, qb, w, o, begin(shard), begin(shard + 1), local.data() + task * tq);
  }, o.stop);
  refs.assign(static_cast<size_t>(ntiles * tq), std::numeric_limits<double>::infinity());
  for (int64_t task = 0; task < ntiles * nshards; ++task)
    if (pays[task / nshards])
      for (int64_t i = 0; i < tq; ++i)
        refs[task / nshards * tq + i] = std::min(refs[task / nshards * tq + i], local[task * tq + i]);
}

// The passes of ntiles blocks of rows over the components cut into nshards
// shards (shard_begin). rows(tile, w) puts block tile's centred rows into
// w.rows and returns how many there are (at most tq). On return
// part[tile * nshards] holds block tile's states merged over the shards in
// shard order, and its rows. With pruning, each row's reference (prune_cpu.h)
// comes from all the components: each shard finds its own and each row takes
// the least, in shard order. part must hold ntiles * nshards workspaces, ws
// one per worker; o.stop is polled (parallel_for throws Cancelled).
template <class T, class Rows>
void sharded_passes(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t ntiles, int64_t tq, int64_t nshards,
                    const PassOptions& opt, WorkspaceLease<T>& ws, WorkspaceLease<T>& part, Rows&& rows) {
  const int64_t d = mix.d;
  auto begin = [&](int64_t shard) { return shard_begin(shard, nshards, mix.n); };
  PassOptions dense = opt;
  dense.prune = false;  // blocks where pruning would not pay (large t)
  std::vector<double> refs;
  std::vector<PreparedRows> prep_rows;
  std::vector<char> pays(static_cast<size_t>(ntiles), 0);
  if (prune_applies(mix, lp, opt, begin(1) - begin(0)))
    sharded_references(mix, lp, ntiles, tq, nshards, opt, ws, rows, pays, prep_rows, refs);
  // One state per (block, shard); then the shards of each block merge.
  parallel_for(ntiles * nshards, opt.threads, [&](int64_t task, int worker) {
    const int64_t tile = task / nshards, shard = task % nshards;
    Workspace<T>& w = ws[worker];
    const int64_t qb = rows(tile, w);
    if (pays[tile]) {
      copy_prepared(prep_rows[tile], w);
      pass_rows(mix, lp, qb, w, opt, begin(shard), begin(shard + 1), refs.data() + tile * tq, true);
    } else {
      pass_rows(mix, lp, qb, w, dense, begin(shard), begin(shard + 1));
    }
    Workspace<T>& out = part[task];
    out.m.swap(w.m);
    out.S.swap(w.S);
    out.E.swap(w.E);
    out.A.swap(w.A);
    out.B.swap(w.B);
    if (shard == 0) out.rows.swap(w.rows);
  }, opt.stop);
  for (int64_t tile = 0; tile < ntiles; ++tile) {
    Workspace<T>& acc = part[tile * nshards];
    const int64_t qb = static_cast<int64_t>(acc.m.size());
    for (int64_t shard = 1; shard < nshards; ++shard) {
      const PartialState other = part[tile * nshards + shard].state();
      for (int64_t i = 0; i < qb; ++i) merge_row(acc.state(), i, other, i, d);
    }
  }
}

}  // namespace ledkde
