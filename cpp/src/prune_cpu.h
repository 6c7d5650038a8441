// Certified pruning of the CPU pass at small t (engine.h Projection): the
// components whose weight provably lies below the working precision are
// skipped without computing their distances.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "pass_cpu.h"

namespace ledkde {

// Whether a pass over `range` components of mix at these logit parameters
// can prune: a projection exists, pruning is on, equal weights and
// variances (the empirical case), the matrix-product path, enough components.
template <class T>
bool prune_applies(const Mixture<T>& mix, const LogitParams<T>& lp, const PassOptions& opt, int64_t range);

// The rows' part of the pruned pass, prepared once for the q centred rows
// ws.rows and kept in ws: their projections, residual norms, the slacks of
// their bounds and their squared norms. PreparedRows keeps a copy, so that
// the passes over every shard of the components share one preparation.
struct PreparedRows {
  std::vector<float> yp32;
  std::vector<double> ypn2, ry, slack, ny;
};
template <class T>
void prune_prepare(const Mixture<T>& mix, int64_t q, Workspace<T>& ws);

// The preparation from one holder to the other (a Workspace or PreparedRows:
// the same members).
template <class From, class To>
void copy_prepared(const From& from, To& to) {
  to.yp32 = from.yp32;
  to.ypn2 = from.ypn2;
  to.ry = from.ry;
  to.slack = from.slack;
  to.ny = from.ny;
}

// The first probe decides, before any row's reference is sought, whether a
// pass of q rows should try pruning. From kSampleFrom rows on it measures a
// sample of kSampleRows of them: their references (as prune_references picks
// them) and their candidates among the first tiles, against a cost model
// fitted to timed passes (prune_cpu.cpp kept_pays). Below, where the
// sample's search would cost about what every row's references do (both
// read all the components' projections), each row is probed against the
// first tile's own nearest (cheap, pessimistic).
constexpr int64_t kSampleRows = 8;
constexpr int64_t kSampleFrom = 128;

// A few of a block's rows (kSampleRows, evenly spaced) with their
// preparation.
template <class T>
struct RowSample {
  int64_t s = 0;
  std::vector<T> rows;  // (s, d) centred rows
  PreparedRows prep;    // their projections, residual norms, slacks, norms
};

// The sample of the q centred rows `rows` (q x d), prepared.
template <class T>
void prune_sample(const Mixture<T>& mix, int64_t q, const T* rows, RowSample<T>& out);

// ref[r]: the exact squared distance from sample row r to the component of
// [n_begin, n_end) that prune_references would pick for it. A pass over
// shards takes the least over the shards.
template <class T>
void sample_nearest(const Mixture<T>& mix, const RowSample<T>& smp, int64_t n_begin, int64_t n_end, double* ref);

// The sample's verdict: whether pruning is expected to cost less than the
// dense pass, from the sample rows' candidates against their references ref
// among the first few tiles of [n_begin, n_end). Only a choice of route
// (both are exact); it depends on the rows and the components alone.
template <class T>
bool sample_pays(const Mixture<T>& mix, const LogitParams<T>& lp, const RowSample<T>& smp, int64_t n_begin,
                 int64_t n_end, std::vector<float>& scratch, const double* ref);

// The three above in one: the sample of the q centred rows `rows` against
// all of [n_begin, n_end).
template <class T>
bool sample_probe(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, const T* rows, int64_t n_begin,
                  int64_t n_end, std::vector<float>& scratch);

// First step of a pruned pass over the q centred rows ws.rows and all of the
// components [n_begin, n_end): the first probe (the sample's, or below
// kSampleFrom rows the first tile's); true when pruning pays, and then the
// rows are prepared in ws. False: the caller runs the dense pass.
template <class T>
bool prune_probe(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws, int64_t n_begin,
                 int64_t n_end);

// The first-tile probe of fewer than kSampleFrom rows already prepared in ws,
// over [n_begin, n_end) (one shard of the components).
template <class T>
bool prune_probe_prepared(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
                          int64_t n_begin, int64_t n_end);

// Second step (after prune_probe on this workspace): in ref_d2[i] the exact
// squared distance of row i's most promising component (least distance of
// the leading projection coordinates): the reference.
template <class T>
void prune_references(const Mixture<T>& mix, int64_t q, Workspace<T>& ws, const PassOptions& opt,
                      int64_t n_begin, int64_t n_end, double* ref_d2);

// Second step, the pass itself (on return ws.state() as after dense_pass,
// but for the rows listed in ws.dense_rows): ref_d2[i] is an exact squared
// distance from row i to some component (the least known, over all
// components when the pass covers a shard of them); components whose bound
// lies beyond it by the margin are skipped, and each row is reduced over its
// candidates with exact distances, except the rows with more than 1/4 of
// the components as candidates: those are listed in ws.dense_rows, for the
// caller to run the dense pass on (pass_router.cpp). Returns false, having
// done nothing, when a probe of the first tile finds that the candidates
// would cost more than the dense pass: the caller runs dense_pass.
// rows_prepared: the rows' preparation is in ws already (prune_probe,
// prune_prepare or copy_prepared put it there for these rows).
template <class T>
bool pruned_reduce(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
                   const PassOptions& opt, int64_t n_begin, int64_t n_end, const double* ref_d2,
                   bool rows_prepared);

// Whether nearest_neighbors over mix can prune (k nearest, k small enough).
template <class T>
bool knn_prune_applies(const Mixture<T>& mix, int64_t k, const PassOptions& opt);

// The pruned search of the k nearest components of the q centred rows
// ws.rows: each row's references (k components nearest in the leading
// projection coordinates, measured exactly) bound its k-th distance; every
// component whose lower bound does not exceed it is measured exactly, into
// found[i] as (squared distance, index). Rows with more than 1/4 of the
// components as candidates get dense[i] = 1 and nothing in found: the caller
// searches them the dense way.
template <class T>
void knn_candidates(const Mixture<T>& mix, int64_t q, Workspace<T>& ws, int64_t k, const PassOptions& opt,
                    std::vector<std::vector<std::pair<double, int64_t>>>& found, std::vector<char>& dense);

// Adds to the counts that prune_counts (cpu.h) reports.
void add_prune_counts(int64_t considered, int64_t computed);

}  // namespace ledkde
