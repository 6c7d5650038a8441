// Certified pruning of the CPU pass at small t.
//
// At small t the posterior weights collapse onto the few components nearest
// a query, and every other weight lies far below the working precision. The
// dense pass still computes every distance; this pass skips, without
// computing their distances, the components that provably cannot matter:
//
//   1. bound:  LB_j = |P y - P mu_j|^2 + (r(y) - r(mu_j))^2 <= |y - mu_j|^2 for
//      the projection P of the mixture (engine.h Projection): a k-dimensional
//      product per pair instead of a d-dimensional one, less a slack that
//      covers its rounding;
//   2. reference: the component nearest in the leading k/2 coordinates of
//      the projection gets its exact distance D (any component's exact
//      distance bounds the nearest one's from above; this one is usually the
//      nearest); a pass over a shard of the components takes the least D
//      over all shards (score_cpu.cpp);
//   3. cut: a component with LB_j > D + margin / inv2v has weight at most
//      exp(-margin) relative to the reference's, with margin = log(N / eps) + 6
//      the rule by which the dense pass already leaves blocks of weights at
//      zero (pass_cpu.cpp skip_below): N such weights add at most e^-6 eps to
//      a sum that holds at least the reference's weight;
//   4. the candidates left are treated as the dense pass treats a tile:
//      approximate logits from products in the working precision (a tile of
//      components at a time for all rows, so each is read from memory once),
//      exact ones (coordinate differences in float64) near the maximum, then
//      the online log-sum-exp of row_state.h.
//
// A row with more than 1/kMaxKeptPart of the components as candidates goes
// through the dense pass. Two probes send a whole pass to the dense route
// when the candidates would cost more than it does (kept_pays, a cost model
// fitted to timed passes): one before anything else, a few sample rows'
// candidates among the first tiles against their own references (cheap: the
// rows are prepared only if it says go), one after the references, every
// row against the first tile. Everything depends on the rows and the
// component range only: results are the same for any number of threads.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>

#include "blas.h"
#include "ledkde/exactness.h"
#include "ledkde/prune_rule.h"
#include "parallel.h"
#include "prune_cpu.h"
#include "row_kernels.h"
#include "row_state.h"

namespace ledkde {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();
using prune_rule::kLbTile;       // components per tile of lower bounds
using prune_rule::kMaxKeptPart;  // a row keeping more than n / 4 candidates goes dense
constexpr int64_t kProbePart = 2;      // tile_probe: rows with more than half of a tile
constexpr int64_t kCountTiles = 4;     // tiles of components over which the probes count
constexpr int64_t kDotTile = 256;      // components per tile of the candidates' products (L2)
constexpr int64_t kMaxPrunedNeighbors = 64;  // more neighbours: the dense search

std::atomic<int64_t> g_considered{0}, g_computed{0};

// Coordinates of the projection that pick the references (half: a quarter
// of the cost of a bound, and the nearest component in most rows).
inline int64_t prefix_dims(int64_t k) { return std::max<int64_t>(1, k / 2); }

// How many of the nb bounds l are at most cut (the candidates of a row).
inline int64_t count_within(const float* l, int64_t nb, float cut) {
  int64_t c = 0;
#pragma omp simd reduction(+ : c)
  for (int64_t j = 0; j < nb; ++j) c += l[j] <= cut;
  return c;
}

// The lower bounds of q prepared rows (a Workspace or PreparedRows: yp32,
// the projections, q x k; ypn2, ry, slack) against components [n0, n0 + nb),
// in float, into lb (q x nb); float rounding of the sum is part of the rows'
// slack (prepare_rows).
template <class Rows>
void lower_bounds(const Projection& pr, const Rows& r, int64_t q, int64_t n0, int64_t nb, float* lb) {
  const int64_t k = pr.k;
  blas::gemm_nt(q, nb, k, r.yp32.data(), k, pr.z.data() + n0 * k, k, lb, nb);
  const float* zn2 = pr.zn2f.data() + n0;
  const float* rz = pr.residf.data() + n0;
  for (int64_t i = 0; i < q; ++i) {
    float* out = lb + i * nb;
    const float yn2 = static_cast<float>(r.ypn2[i]), ry = static_cast<float>(r.ry[i]);
    const float sl = static_cast<float>(r.slack[i]);
#pragma omp simd
    for (int64_t j = 0; j < nb; ++j) out[j] = prune_rule::lower_bound(yn2, zn2[j], out[j], ry, rz[j], sl);
  }
}

template <class T>
void lower_bounds(const Mixture<T>& mix, Workspace<T>& ws, int64_t q, int64_t n0, int64_t nb, float* lb) {
  lower_bounds(mix.proj, ws, q, n0, nb, lb);
}

// Picks references: for each of q rows (projections yp32, q x k) the
// component of [n0, n0 + nb) nearest in the first k1 coordinates of the
// projection (|P1 mu_j|^2 - 2 <P1 y, P1 mu_j>, the squared distance less
// |P1 y|^2), kept in best[i] when it beats low[i]; sc holds q x nb. Not a
// bound (no slack): any component's exact distance is a valid reference, the
// nearest one the best (and the nearest in these coordinates is nearer the
// true nearest than the one of least bound; 2026-11-30, bench/prune.py).
void pick_references(const Projection& pr, const float* yp32, int64_t q, int64_t n0, int64_t nb, float* sc,
                     float* low, int64_t* best) {
  const int64_t k = pr.k, k1 = prefix_dims(k);
  blas::gemm_nt(q, nb, k1, yp32, k, pr.z.data() + n0 * k, k, sc, nb);
  const float* zn2 = pr.zn2_prefix.data() + n0;
  for (int64_t i = 0; i < q; ++i) {
    float* out = sc + i * nb;
    float lo = std::numeric_limits<float>::infinity();
#pragma omp simd reduction(min : lo)
    for (int64_t j = 0; j < nb; ++j) {
      out[j] = zn2[j] - 2.0f * out[j];
      lo = std::min(lo, out[j]);
    }
    if (lo < low[i]) {  // rare after the first tiles: find where
      low[i] = lo;
      for (int64_t j = 0; j < nb; ++j)
        if (out[j] == lo) {
          best[i] = n0 + j;
          break;
        }
    }
  }
}

// The q rows' squared norms (float64), projections, residual norms and
// slacks (prune_rule.h) into out (a Workspace or PreparedRows: ny, yp32,
// ypn2, ry, slack); rows64 and yp64 are scratch.
template <class T, class Rows>
void prepare_rows(const Mixture<T>& mix, const T* rows, int64_t q, Rows& out, std::vector<double>& rows64,
                  std::vector<double>& yp64) {
  const int64_t d = mix.d;
  const Projection& pr = mix.proj;
  const int64_t k = pr.k;
  yp64.resize(static_cast<size_t>(q * k));
  out.yp32.resize(static_cast<size_t>(q * k));
  rows64.assign(static_cast<size_t>(q * d), 0.0);
  for (int64_t e = 0; e < q * d; ++e) rows64[e] = static_cast<double>(rows[e]);
  blas::gemm_nt(q, k, d, rows64.data(), d, pr.basis.data(), d, yp64.data(), k);
  out.ry.resize(q);
  out.slack.resize(q);
  out.ypn2.resize(q);
  out.ny.resize(q);
  const double reach = std::sqrt(mix.norm2_max);
  for (int64_t i = 0; i < q; ++i) {
    double y2 = 0.0, p2 = 0.0, pf2 = 0.0;
    for (int64_t c = 0; c < d; ++c) y2 += rows64[i * d + c] * rows64[i * d + c];
    for (int64_t c = 0; c < k; ++c) {
      const double v = yp64[i * k + c];
      const float f = static_cast<float>(v);
      p2 += v * v;
      pf2 += static_cast<double>(f) * f;
      out.yp32[i * k + c] = f;
    }
    out.ypn2[i] = pf2;
    out.ny[i] = y2;
    out.ry[i] = std::sqrt(std::max(0.0, y2 - p2));
    out.slack[i] = prune_rule::bound_slack(y2, reach, k);
  }
}

template <class T>
void prepare_rows(const Mixture<T>& mix, int64_t q, Workspace<T>& ws) {
  prepare_rows(mix, ws.rows.data(), q, ws, ws.rows64, ws.yp64);
}

// Weights below exp(-margin) of the reference's are left out (prune_rule.h),
// in units of squared distance.
template <class T>
double margin_d2(const Mixture<T>& mix, const LogitParams<T>& lp) {
  return prune_rule::margin<T>(mix.n) / static_cast<double>(lp.inv2v);
}

// The probe of few rows: each prepared row against the first tile of
// [n_begin, n_end), with the tile's own nearest (by the bound, measured
// exactly) as its reference; false when most rows have more than
// 1/kProbePart of the tile within `cut_margin` of it (the margin in squared
// distance). Cheap but pessimistic (the tile's nearest is farther than the
// true one), hence the wide kProbePart.
template <class T>
bool tile_probe(const Mixture<T>& mix, Workspace<T>& ws, int64_t q, int64_t n_begin, int64_t n_end,
                double cut_margin) {
  const int64_t d = mix.d, nb = std::min(kLbTile, n_end - n_begin);
  ws.lb.resize(static_cast<size_t>(q * kLbTile));
  lower_bounds(mix, ws, q, n_begin, nb, ws.lb.data());
  int64_t many = 0;
  for (int64_t i = 0; i < q; ++i) {
    const float* l = ws.lb.data() + i * nb;
    const int64_t jmin = std::min_element(l, l + nb) - l;
    const double D = rows::exact_dist2(ws.rows.data() + i * d, mix.mu.data() + (n_begin + jmin) * d, d);
    many += count_within(l, nb, static_cast<float>(D + cut_margin)) * kProbePart > nb;
  }
  return 2 * many <= q;
}

// Whether the pruned pass is expected to cost less than the dense one, from
// count[i], the candidates of row i among `probed` components: a row keeping
// more than 1/kMaxKeptPart goes dense (counts as 1), the others as their kept
// fraction f_i; pruning pays while the mean stays below the break-even
// (d - 60) / 1400, at most 1/2. The break-even is a fit to passes timed with
// and without the projection (Fashion-MNIST, Q = 256, 2-core AMD EPYC with
// AVX-512; 2026-11-30): the bounds and references cost a fixed
// part of a dense pass that shrinks with d (0.79 at d = 160, 0.46 at 196,
// 0.25 at 784) and a candidate costs several dense pairs (gathered products
// and exact distances), so a pruned pass broke even at a kept fraction of
// about 0.07 at d = 160, 0.09 at 196, 0.2-0.3 at 392 and above 0.3 at 784.
// Only a choice of route: both routes are exact.
bool kept_pays(const int64_t* count, int64_t rows, int64_t probed, int64_t d) {
  if (rows == 0 || probed == 0) return false;
  double kept = 0.0;
  for (int64_t i = 0; i < rows; ++i)
    kept += count[i] * kMaxKeptPart > probed ? 1.0 : static_cast<double>(count[i]) / static_cast<double>(probed);
  const double break_even = std::min(0.5, (static_cast<double>(d) - 60.0) / 1400.0);
  return kept <= break_even * static_cast<double>(rows);
}

}  // namespace

void prune_counts(int64_t* considered, int64_t* computed, bool reset) {
  *considered = reset ? g_considered.exchange(0) : g_considered.load();
  *computed = reset ? g_computed.exchange(0) : g_computed.load();
}

void add_prune_counts(int64_t considered, int64_t computed) {
  g_considered += considered;
  g_computed += computed;
}

template <class T>
bool prune_applies(const Mixture<T>& mix, const LogitParams<T>& lp, const PassOptions& opt, int64_t range) {
  if (!opt.prune || mix.proj.empty() || !mix.var.empty() || lp.per_component || !mix.muT.empty()) return false;
  return prune_rule::pays(range, mix.proj.k, mix.d);
}

template <class T>
void prune_prepare(const Mixture<T>& mix, int64_t q, Workspace<T>& ws) {
  prepare_rows(mix, q, ws);
}

template <class T>
void prune_sample(const Mixture<T>& mix, int64_t q, const T* rows, RowSample<T>& out) {
  const int64_t d = mix.d, s = std::min(q, kSampleRows);
  out.s = s;
  out.rows.resize(static_cast<size_t>(s * d));
  for (int64_t r = 0; r < s; ++r) std::copy_n(rows + r * q / s * d, d, out.rows.data() + r * d);  // evenly spaced
  std::vector<double> rows64, yp64;
  prepare_rows(mix, out.rows.data(), s, out.prep, rows64, yp64);
}

template <class T>
void sample_nearest(const Mixture<T>& mix, const RowSample<T>& smp, int64_t n_begin, int64_t n_end, double* ref) {
  const int64_t d = mix.d, s = smp.s;
  std::vector<float> sc(static_cast<size_t>(s * kLbTile)), low(s, std::numeric_limits<float>::infinity());
  std::vector<int64_t> best(s, n_begin);
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kLbTile)
    pick_references(mix.proj, smp.prep.yp32.data(), s, n0, std::min(kLbTile, n_end - n0), sc.data(), low.data(),
                    best.data());
  for (int64_t r = 0; r < s; ++r)
    ref[r] = rows::exact_dist2(smp.rows.data() + r * d, mix.mu.data() + best[r] * d, d);
}

template <class T>
bool sample_pays(const Mixture<T>& mix, const LogitParams<T>& lp, const RowSample<T>& smp, int64_t n_begin,
                 int64_t n_end, std::vector<float>& scratch, const double* ref) {
  const int64_t s = smp.s, end = std::min(n_end, n_begin + kCountTiles * kLbTile);
  const double md2 = margin_d2(mix, lp);
  scratch.resize(static_cast<size_t>(s * kLbTile));
  std::vector<int64_t> count(s, 0);
  for (int64_t n0 = n_begin; n0 < end; n0 += kLbTile) {
    const int64_t nb = std::min(kLbTile, end - n0);
    lower_bounds(mix.proj, smp.prep, s, n0, nb, scratch.data());
    for (int64_t r = 0; r < s; ++r) {
      count[r] += count_within(scratch.data() + r * nb, nb, static_cast<float>(ref[r] + md2));
    }
  }
  return kept_pays(count.data(), s, end - n_begin, mix.d);
}

template <class T>
bool prune_probe(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws, int64_t n_begin,
                 int64_t n_end) {
  if (q == 0) return false;
  if (q < kSampleFrom) {
    prepare_rows(mix, q, ws);
    return tile_probe(mix, ws, q, n_begin, n_end, margin_d2(mix, lp));
  }
  if (!sample_probe(mix, lp, q, ws.rows.data(), n_begin, n_end, ws.lb)) return false;
  prepare_rows(mix, q, ws);
  return true;
}

template <class T>
bool sample_probe(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, const T* rows, int64_t n_begin,
                  int64_t n_end, std::vector<float>& scratch) {
  RowSample<T> smp;
  prune_sample(mix, q, rows, smp);
  std::vector<double> ref(smp.s);
  sample_nearest(mix, smp, n_begin, n_end, ref.data());
  return sample_pays(mix, lp, smp, n_begin, n_end, scratch, ref.data());
}

template <class T>
bool prune_probe_prepared(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
                          int64_t n_begin, int64_t n_end) {
  return q > 0 && tile_probe(mix, ws, q, n_begin, n_end, margin_d2(mix, lp));
}

template <class T>
void prune_references(const Mixture<T>& mix, int64_t q, Workspace<T>& ws, const PassOptions& opt,
                      int64_t n_begin, int64_t n_end, double* ref_d2) {
  const int64_t d = mix.d;
  ws.lb.resize(static_cast<size_t>(q * kLbTile));
  std::vector<float> low(q, std::numeric_limits<float>::infinity());
  ws.best.assign(q, n_begin);
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kLbTile) {
    if (opt.stop && opt.stop->poll()) return;  // cancelled: the caller stops too
    pick_references(mix.proj, ws.yp32.data(), q, n0, std::min(kLbTile, n_end - n0), ws.lb.data(), low.data(),
                    ws.best.data());
  }
  for (int64_t i = 0; i < q; ++i)
    ref_d2[i] = rows::exact_dist2(ws.rows.data() + i * d, mix.mu.data() + ws.best[i] * d, d);
}

namespace {

// The second probe, every row against the first tile with its reference:
// whether the candidates would cost less than the dense pass (kept_pays).
template <class T>
bool second_probe(const Mixture<T>& mix, int64_t q, Workspace<T>& ws, int64_t n_begin, int64_t nr) {
  const int64_t nb = std::min(kLbTile, nr);
  lower_bounds(mix, ws, q, n_begin, nb, ws.lb.data());
  std::vector<int64_t> count(q, 0);
  for (int64_t i = 0; i < q; ++i) count[i] = count_within(ws.lb.data() + i * nb, nb, static_cast<float>(ws.thr[i]));
  return kept_pays(count.data(), q, nb, mix.d);
}

// Each row's candidates (components whose bound lies within ws.thr[i]), as
// offsets from n_begin into ws.cand[i], up to cap of them; a row with more
// gets dense[i] = 1 and no list. False when cancelled.
template <class T>
bool gather_candidates(const Mixture<T>& mix, int64_t q, Workspace<T>& ws, const PassOptions& opt, int64_t n_begin,
                       int64_t n_end, int64_t cap, std::vector<char>& dense) {
  if (static_cast<int64_t>(ws.cand.size()) < q) ws.cand.resize(q);
  for (int64_t i = 0; i < q; ++i) ws.cand[i].clear();
  for (int64_t n0 = n_begin; n0 < n_end; n0 += kLbTile) {
    if (opt.stop && opt.stop->poll()) return false;
    const int64_t nb = std::min(kLbTile, n_end - n0);
    lower_bounds(mix, ws, q, n0, nb, ws.lb.data());
    for (int64_t i = 0; i < q; ++i) {
      if (dense[i]) continue;
      const float* l = ws.lb.data() + i * nb;
      const float cut = static_cast<float>(ws.thr[i]);
      const int64_t count = count_within(l, nb, cut);
      if (count == 0) continue;  // the usual case at small t
      std::vector<uint32_t>& c = ws.cand[i];
      if (static_cast<int64_t>(c.size()) + count > cap) {
        dense[i] = 1;
        c.clear();
        continue;
      }
      for (int64_t j = 0; j < nb; ++j)
        if (l[j] <= cut) c.push_back(static_cast<uint32_t>(n0 - n_begin + j));
    }
  }
  return true;
}

// The candidates' products y . mu_j in the working precision into
// ws.cl_rows[i], a tile of components at a time for all rows, so that each
// tile is read from memory once (gathered row by row, the candidates'
// components would each be fetched from memory once per row). False when cancelled.
template <class T>
bool candidate_products(const Mixture<T>& mix, int64_t q, Workspace<T>& ws, const PassOptions& opt, int64_t n_begin,
                        int64_t nr, const std::vector<char>& dense) {
  const int64_t d = mix.d;
  const T* mu0 = mix.mu.data() + n_begin * d;
  if (static_cast<int64_t>(ws.cl_rows.size()) < q) ws.cl_rows.resize(q);
  std::vector<int64_t> cursor(q, 0);
  for (int64_t i = 0; i < q; ++i) ws.cl_rows[i].resize(dense[i] ? 0 : ws.cand[i].size());
  for (int64_t j0 = 0; j0 < nr; j0 += kDotTile) {
    if (opt.stop && opt.stop->poll()) return false;
    const uint32_t j1 = static_cast<uint32_t>(std::min(nr, j0 + kDotTile));
    for (int64_t i = 0; i < q; ++i) {
      if (dense[i]) continue;
      const std::vector<uint32_t>& cand = ws.cand[i];
      const int64_t c0 = cursor[i];
      int64_t c1 = c0;
      while (c1 < static_cast<int64_t>(cand.size()) && cand[c1] < j1) ++c1;
      if (c1 > c0) rows::dots(ws.rows.data() + i * d, mu0, d, cand.data() + c0, c1 - c0, ws.cl_rows[i].data() + c0);
      cursor[i] = c1;
    }
  }
  return true;
}

// Row i's state over its candidates, as the dense pass treats a tile's
// components: logits from the products (|y|^2 + |mu|^2 - 2 y.mu, the error
// bound of ledkde/exactness.h), the ones near the maximum recomputed exactly,
// then the weights and A = sum w mu (less y sum w at the end), w = p / v.
template <class T>
void reduce_candidates(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t i, Workspace<T>& ws,
                       int64_t n_begin) {
  const int64_t d = mix.d;
  const std::vector<uint32_t>& cand = ws.cand[i];
  const int64_t nc = static_cast<int64_t>(cand.size());
  // None: the reference lies in another shard of the components (in its own
  // range it is always a candidate); the state stays empty, S = 0.
  if (nc == 0) return;
  const T* row = ws.rows.data() + i * d;
  const T* mu0 = mix.mu.data() + n_begin * d;
  const double inv2v = static_cast<double>(lp.inv2v), sum_scale = 2.0 * inv2v;
  const double eps = std::numeric_limits<T>::epsilon(), tol = logit_tolerance<T>(mix.logit_tol);
  RowState rs(ws.m.data(), ws.S.data(), ws.E.data(), ws.A.data(), ws.B.data(), i, d);
  double* l = ws.cl_rows[i].data();
  const double ny = ws.ny[i];
  const T* n2 = mix.norm2.data() + n_begin;
  double top = rs.max();
  for (int64_t c = 0; c < nc; ++c) {
    l[c] = -(ny + static_cast<double>(n2[cand[c]]) - 2.0 * l[c]) * inv2v;
    top = std::max(top, l[c]);
  }
  const double dlt = expansion_error(expansion_kappa(d) * eps, ny, mix.norm2_max, lp.inv2v_max, 0.0);
  if (dlt > tol) {
    // Near the maximum an approximate logit's error could matter: exact.
    const double cut = top - candidate_margin(dlt, tol);
    for (int64_t c = 0; c < nc; ++c)
      if (l[c] >= cut) l[c] = -rows::exact_dist2(row, mu0 + static_cast<int64_t>(cand[c]) * d, d) * inv2v;
  }
  double mx = rs.max();
  for (int64_t c = 0; c < nc; ++c) mx = std::max(mx, l[c]);
  rs.move_to(mx);
  // Below this (true logits up to dlt above their approximations) a weight is
  // certified negligible, as the pruned ones.
  const double skip = mx - margin_d2(mix, lp) * inv2v - std::max(dlt, 0.0);
  for (int64_t c = 0; c < nc; ++c) {
    if (l[c] < skip) continue;
    const double z = l[c] - mx;
    const double p = std::exp(z);
    rs.add(p, p * z);
    const double w = p * sum_scale;
    rows::add_scaled(mu0 + static_cast<int64_t>(cand[c]) * d, d, w, rs.A());
    rs.B() += w;
  }
  double* Ai = ws.A.data() + i * d;
  for (int64_t c = 0; c < d; ++c) Ai[c] -= static_cast<double>(row[c]) * ws.B[i];
}

}  // namespace

template <class T>
bool pruned_reduce(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
                   const PassOptions& opt, int64_t n_begin, int64_t n_end, const double* ref_d2,
                   bool rows_prepared) {
  const int64_t d = mix.d, nr = n_end - n_begin;
  if (!rows_prepared) prepare_rows(mix, q, ws);
  const double inv2v = static_cast<double>(lp.inv2v), md2 = margin_d2(mix, lp);
  ws.thr.resize(q);
  for (int64_t i = 0; i < q; ++i) ws.thr[i] = ref_d2[i] + md2;
  ws.lb.resize(static_cast<size_t>(q * kLbTile));
  if (!second_probe(mix, q, ws, n_begin, nr)) return false;
  ws.start_states(q, d);
  for (int64_t i = 0; i < q; ++i) ws.m[i] = -ref_d2[i] * inv2v;  // the running maximum starts at the reference (S = 0)
  std::vector<char> dense(q, 0);
  // Each row's candidates, up to nr / kMaxKeptPart (more: the row goes dense).
  if (!gather_candidates(mix, q, ws, opt, n_begin, n_end, nr / kMaxKeptPart, dense)) return true;
  ws.dense_rows.clear();
  for (int64_t i = 0; i < q; ++i)
    if (dense[i]) ws.dense_rows.push_back(i);
  if (!candidate_products(mix, q, ws, opt, n_begin, nr, dense)) return true;
  int64_t computed = static_cast<int64_t>(ws.dense_rows.size()) * nr;
  for (int64_t i = 0; i < q; ++i) {
    if (dense[i]) continue;
    computed += static_cast<int64_t>(ws.cand[i].size());
    reduce_candidates(mix, lp, i, ws, n_begin);
  }
  add_prune_counts(q * nr, computed);
  return true;
}

template <class T>
bool knn_prune_applies(const Mixture<T>& mix, int64_t k, const PassOptions& opt) {
  return opt.prune && !mix.proj.empty() && mix.muT.empty() && mix.n >= prune_rule::kMinComponents &&
         k <= kMaxPrunedNeighbors;
}

template <class T>
void knn_candidates(const Mixture<T>& mix, int64_t q, Workspace<T>& ws, int64_t k, const PassOptions& opt,
                    std::vector<std::vector<std::pair<double, int64_t>>>& found, std::vector<char>& dense) {
  const int64_t d = mix.d, n = mix.n, k1 = prefix_dims(mix.proj.k);
  found.assign(q, {});
  dense.assign(q, 0);
  if (q == 0) return;
  prepare_rows(mix, q, ws);
  // The probe of the first tile (tile_probe, with a cut of zero margin):
  // queries far from all the data (most components about as far as the
  // nearest) go to the dense search at once.
  if (!tile_probe(mix, ws, q, 0, n, 0.0)) {
    std::fill(dense.begin(), dense.end(), 1);
    add_prune_counts(q * n, q * n);
    return;
  }
  // References: each row's k nearest in the leading coordinates of the
  // projection, then their exact distances; the k-th of those bounds the
  // true k-th nearest distance from above.
  std::vector<std::vector<std::pair<float, int64_t>>> pick(q);
  ws.lb.resize(static_cast<size_t>(q * kLbTile));
  for (int64_t n0 = 0; n0 < n; n0 += kLbTile) {
    if (opt.stop && opt.stop->poll()) return;
    const int64_t nb = std::min(kLbTile, n - n0);
    float* sc = ws.lb.data();
    blas::gemm_nt(q, nb, k1, ws.yp32.data(), mix.proj.k, mix.proj.z.data() + n0 * mix.proj.k, mix.proj.k, sc, nb);
    const float* zn2 = mix.proj.zn2_prefix.data() + n0;
    for (int64_t i = 0; i < q; ++i) {
      auto& p = pick[i];
      float worst = static_cast<int64_t>(p.size()) < k ? std::numeric_limits<float>::infinity() : p.back().first;
      for (int64_t j = 0; j < nb; ++j) {
        const float v = zn2[j] - 2.0f * sc[i * nb + j];
        if (v >= worst) continue;
        const std::pair<float, int64_t> e{v, n0 + j};
        p.insert(std::upper_bound(p.begin(), p.end(), e), e);
        if (static_cast<int64_t>(p.size()) > k) p.pop_back();
        if (static_cast<int64_t>(p.size()) == k) worst = p.back().first;
      }
    }
  }
  std::vector<double> bound(q, 0.0);
  for (int64_t i = 0; i < q; ++i)
    for (const auto& e : pick[i])
      bound[i] = std::max(bound[i], rows::exact_dist2(ws.rows.data() + i * d, mix.mu.data() + e.second * d, d));
  // Candidates: components whose lower bound does not exceed that (ties are
  // kept: the k-th place goes to the lower index).
  const int64_t cap = n / kMaxKeptPart;
  std::vector<std::vector<uint32_t>>& cand = ws.cand;
  if (static_cast<int64_t>(cand.size()) < q) cand.resize(q);
  for (int64_t i = 0; i < q; ++i) cand[i].clear();
  for (int64_t n0 = 0; n0 < n; n0 += kLbTile) {
    if (opt.stop && opt.stop->poll()) return;
    const int64_t nb = std::min(kLbTile, n - n0);
    lower_bounds(mix, ws, q, n0, nb, ws.lb.data());
    for (int64_t i = 0; i < q; ++i) {
      if (dense[i]) continue;
      const float* l = ws.lb.data() + i * nb;
      const float cut = static_cast<float>(bound[i]);
      for (int64_t j = 0; j < nb; ++j)
        if (l[j] <= cut) cand[i].push_back(static_cast<uint32_t>(n0 + j));
      if (static_cast<int64_t>(cand[i].size()) > cap) {
        dense[i] = 1;
        cand[i].clear();
      }
    }
  }
  // Their approximate distances (|y|^2 + |mu|^2 - 2 y.mu, products in the
  // working precision, a tile of components at a time for all rows); those
  // that could come within the bound once exact (error bound of the
  // expansion, as the dense search) are measured exactly.
  if (static_cast<int64_t>(ws.cl_rows.size()) < q) ws.cl_rows.resize(q);
  for (int64_t i = 0; i < q; ++i) ws.cl_rows[i].resize(dense[i] ? 0 : cand[i].size());
  std::vector<int64_t> cursor(q, 0);
  for (int64_t j0 = 0; j0 < n; j0 += kDotTile) {
    if (opt.stop && opt.stop->poll()) return;
    const uint32_t j1 = static_cast<uint32_t>(std::min(n, j0 + kDotTile));
    for (int64_t i = 0; i < q; ++i) {
      if (dense[i]) continue;
      const int64_t c0 = cursor[i];
      int64_t c1 = c0;
      while (c1 < static_cast<int64_t>(cand[i].size()) && cand[i][c1] < j1) ++c1;
      if (c1 > c0) rows::dots(ws.rows.data() + i * d, mix.mu.data(), d, cand[i].data() + c0, c1 - c0,
                              ws.cl_rows[i].data() + c0);
      cursor[i] = c1;
    }
  }
  const double kappa_eps = expansion_kappa(d) * std::numeric_limits<T>::epsilon();
  int64_t computed = 0;
  for (int64_t i = 0; i < q; ++i) {
    if (dense[i]) continue;
    const double ny = ws.ny[i], slack = kappa_eps * (ny + mix.norm2_max);
    const double keep = bound[i] + 2.0 * slack;
    for (size_t c = 0; c < cand[i].size(); ++c) {
      const int64_t j = cand[i][c];
      const double approx = ny + static_cast<double>(mix.norm2[j]) - 2.0 * ws.cl_rows[i][c];
      if (approx > keep) continue;
      found[i].emplace_back(rows::exact_dist2(ws.rows.data() + i * d, mix.mu.data() + j * d, d), j);
    }
    computed += static_cast<int64_t>(cand[i].size());
  }
  for (int64_t i = 0; i < q; ++i) computed += dense[i] ? n : 0;
  add_prune_counts(q * n, computed);
}

#define LEDKDE_INSTANTIATE(T)                                                                          \
  template bool prune_applies(const Mixture<T>&, const LogitParams<T>&, const PassOptions&, int64_t); \
  template void prune_prepare(const Mixture<T>&, int64_t, Workspace<T>&);                            \
  template bool prune_probe(const Mixture<T>&, const LogitParams<T>&, int64_t, Workspace<T>&, int64_t, \
                            int64_t);                                                                 \
  template bool prune_probe_prepared(const Mixture<T>&, const LogitParams<T>&, int64_t, Workspace<T>&, \
                                     int64_t, int64_t);                                               \
  template bool sample_probe(const Mixture<T>&, const LogitParams<T>&, int64_t, const T*, int64_t, int64_t, \
                             std::vector<float>&);                                                    \
  template void prune_sample(const Mixture<T>&, int64_t, const T*, RowSample<T>&);                   \
  template void sample_nearest(const Mixture<T>&, const RowSample<T>&, int64_t, int64_t, double*);     \
  template bool sample_pays(const Mixture<T>&, const LogitParams<T>&, const RowSample<T>&, int64_t, int64_t, \
                            std::vector<float>&, const double*);                                      \
  template void prune_references(const Mixture<T>&, int64_t, Workspace<T>&, const PassOptions&,       \
                                 int64_t, int64_t, double*);                                          \
  template bool pruned_reduce(const Mixture<T>&, const LogitParams<T>&, int64_t, Workspace<T>&,       \
                              const PassOptions&, int64_t, int64_t, const double*, bool);         \
  template bool knn_prune_applies(const Mixture<T>&, int64_t, const PassOptions&);                   \
  template void knn_candidates(const Mixture<T>&, int64_t, Workspace<T>&, int64_t, const PassOptions&, \
                               std::vector<std::vector<std::pair<double, int64_t>>>&, std::vector<char>&);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
