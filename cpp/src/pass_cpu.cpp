// The tiled online log-sum-exp pass on the CPU (SPEC section 2).
//
// For a block of q query rows and each tile of tile_n components:
//   1. G = rows * mu_tile^T       (matrix product: the built-in tile products
//                                  of tile_gemm.h for float and d <= kMaxDim (1024)
//                                  on AVX2 / AVX-512, else BLAS)
//   2. approximate logits from |y|^2 + |mu|^2 - 2 G, and p = exp(l - m) with
//      the online rescale, in one sweep shifted by the row's running maximum
//      when no logit of the tile comes near that maximum (the usual case);
//   3. otherwise the few components whose logit is near the row maximum and
//      whose approximation error could matter get their distance recomputed
//      exactly, by coordinate differences accumulated in float64, first;
//   4. A += p * mu_tile / v        (matrix product over the centred rows themselves,
//                                  scaled per row into float64).
// Memory: the rows, one (q x tile_n) tile of G and one of weights per worker.
// For d <= kDirectMaxDim the products are too thin for a matrix product:
// one fused sweep per row and tile computes the distances by coordinate
// differences, the weights and every sum in registers.
#include <algorithm>
#include <cmath>
#include <limits>
#include <mutex>
#include <type_traits>

#include "blas.h"
#include "parallel.h"
#include "pass_cpu.h"
#include "row_state.h"
#include "row_kernels.h"
#include "tile_gemm.h"

namespace ledkde {

namespace {

// Candidates for the exact recompute. A row whose tile holds at most
// 1/kFewDiv of them gets their exact distances four at a time
// (rows::exact_dist2s) and patched in; more send the row's next tile to the
// two-step route, where up to 1/kManyDiv are recomputed one by one and more
// get the whole tile's exact distances for that row. When the rows' last
// tiles held on average more than kExactTileFraction candidates, the next
// tile's first product runs in float64 for all rows instead. Costs measured
// on Fashion-MNIST, d = 784 (AVX-512 EPYC): an exact distance from the data's
// rows is a matrix-vector product at ~4.4x a pair of the float32 product
// (it streams the component's row from L2/L3); the float64 product costs 2x
// for every pair (and saves the float32 one), so it pays above ~0.2. With
// 1/16 and 1/8 Fashion-MNIST t = 3 ran at 2.1x the limit,
// with these 1.3x; t = 5.8 with 64 rows 2.2x -> 1.8x.
constexpr int64_t kFewDiv = 4;
constexpr int64_t kManyDiv = 2;
constexpr double kExactTileFraction = 0.2;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The exactness rules (logit tolerance, error bounds, candidate margins,
// kMaxOvershoot) live in ledkde/exactness.h, shared with the CUDA pass.

// The logit of component j at squared distance d2, in float64.
template <class T>
double logit_of_dist2(const LogitParams<T>& lp, int64_t j, double d2) {
  if (!lp.per_component) return -d2 * static_cast<double>(lp.inv2v);
  return static_cast<double>(lp.cprime[j]) - d2 * static_cast<double>(lp.inv2v_j[j]);
}

// The candidates of a tile whose weights p_j = exp(l_j - ts) were taken from
// approximate logits (those with l_j - ts >= cut, at most the weights >=
// exp(cut) up to the exponential's rounding, hence the slack): their exact
// weights replace them, and *m_new rises to their maximum. Returns false, x
// partly patched, when an exact logit lies more than kMaxOvershoot above ts.
template <class T>
bool patch_candidates(const Mixture<T>& mix, const LogitParams<T>& lp, const T* row, int64_t n0,
                      T* x, int64_t nb, double ts, T cut, int64_t* idx, double* d2, double* m_new) {
  const T thr = static_cast<T>(std::exp(static_cast<double>(cut) - 1e-3));
  const int64_t count = rows::indices_at_least(x, nb, thr, idx);
  rows::exact_dist2s(row, mix.mu.data() + n0 * mix.d, mix.d, idx, count, d2);
  for (int64_t c = 0; c < count; ++c) {
    const double z = logit_of_dist2(lp, n0 + idx[c], d2[c]) - ts;
    if (z > kMaxOvershoot) return false;
    *m_new = std::max(*m_new, ts + z);
    x[idx[c]] = static_cast<T>(std::exp(z));
  }
  return true;
}

// Shifted logits below this lie in blocks of weights that the sweep may
// leave at zero: N of them add at most e^-6 eps to a sum that holds the
// maximum's weight 1 (and, times their distance, as little to the score).
// Off with per-component variances, whose 1/v_j factors this bound ignores.
template <class T>
T skip_below(const Mixture<T>& mix) {
  if (!mix.var.empty()) return -std::numeric_limits<T>::infinity();
  const double eps = std::numeric_limits<T>::epsilon();
  return static_cast<T>(std::log(eps) - std::log(static_cast<double>(std::max<int64_t>(mix.n, 1))) - 6.0);
}

}  // namespace

namespace {

template <class T>
struct WorkspaceCache {
  std::mutex mutex;
  std::vector<Workspace<T>> kept;
};

template <class T>
WorkspaceCache<T>& workspace_cache() {
  // Never destroyed: a lease may end during interpreter shutdown.
  static WorkspaceCache<T>* cache = new WorkspaceCache<T>();
  return *cache;
}

}  // namespace

template <class T>
WorkspaceLease<T>::WorkspaceLease(size_t n) {
  WorkspaceCache<T>& c = workspace_cache<T>();
  {
    std::lock_guard<std::mutex> lock(c.mutex);
    while (v_.size() < n && !c.kept.empty()) {
      v_.push_back(std::move(c.kept.back()));
      c.kept.pop_back();
    }
  }
  v_.resize(n);
}

template <class T>
WorkspaceLease<T>::~WorkspaceLease() {
  WorkspaceCache<T>& c = workspace_cache<T>();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& w : v_) {
    if (c.kept.size() >= kKeep) break;
    c.kept.push_back(std::move(w));
  }
}

template class WorkspaceLease<float>;
template class WorkspaceLease<double>;


template <class T>
void Workspace<T>::start_states(int64_t q, int64_t d) {
  B.assign(q, 0.0);
  m.assign(q, -std::numeric_limits<double>::infinity());
  S.assign(q, 0.0);
  E.assign(q, 0.0);
  A.assign(static_cast<size_t>(q * d), 0.0);
}

template <class T>
void Workspace<T>::start(int64_t q, int64_t d, int64_t tn, int64_t nblk, bool own_gemm, bool direct) {
  const int64_t pad = own_gemm ? tile_gemm::kRowPad : 0;  // rows the kernels may touch past q
  if (direct) D2.resize(static_cast<size_t>(tn));
  else G.resize(static_cast<size_t>((q + pad) * tn));
  X.resize(static_cast<size_t>((q + pad) * tn));
  if (own_gemm) {
    rows.resize(static_cast<size_t>((q + pad) * d));
    scale.resize(q);
    logit64.resize(static_cast<size_t>(tn));
    row64.resize(static_cast<size_t>(d));
  }
  C.resize(static_cast<size_t>(q * d));
  ny.resize(q);
  F.assign(q, 1.0);
  near.assign(q, 0);
  cfrac.assign(q, 0.0f);
  start_states(q, d);
  idx.resize(static_cast<size_t>(tn));
  cd2.resize(static_cast<size_t>(tn));
  live.resize(static_cast<size_t>(q * nblk));
  weighted.resize(q);
  rows64.clear();  // the rows in float64, made when a tile first needs them
  slots.resize(q);
}

template struct Workspace<float>;
template struct Workspace<double>;

template <class T>
void centre_rows(const Mixture<T>& mix, const T* y, int64_t q, Workspace<T>& ws) {
  const int64_t d = mix.d;
  ws.rows.resize(static_cast<size_t>(q * d));
  for (int64_t i = 0; i < q; ++i)
    for (int64_t k = 0; k < d; ++k)
      ws.rows[i * d + k] = static_cast<T>(static_cast<double>(y[i * d + k]) - mix.centre[k]);
}

namespace {

// What every route of one pass reads: the mixture, the options, the
// exactness rules (ledkde/exactness.h) and the current tile of components.
template <class T>
struct PassContext {
  const Mixture<T>& mix;
  const LogitParams<T>& lp;
  const PassOptions& opt;
  Workspace<T>& ws;
  int64_t d, tn, nblk;
  bool direct;    // d <= kDirectMaxDim: distances by coordinate differences
  bool own_gemm;  // the built-in tile products (else BLAS)
  bool per_var;   // per-component variances
  const TilePack<T>* tp;
  double eps, tol;
  T skip;            // skip_below(mix)
  double sum_scale;  // with equal variances 1/v is applied to the sums, not per column
  const T* cprime;   // per-component constants, or null
  const T* kj;
  std::vector<double> delta;  // (q,) the expansion's error bound of each row
  // (q,) |y_i|^2 inv2v for a row whose float logits leave out |y_i|^2 (they
  // are l_j + lift_i: equal variances, rows far from the data), else 0.
  std::vector<double> lift;
  // The current tile: components [n0, n0 + nb), its first row panel pk (built-in products).
  int64_t n0 = 0, nb = 0;
  const T* pk = nullptr;

  const T* cp() const { return cprime ? cprime + n0 : nullptr; }
  const T* kk() const { return kj ? kj + n0 : nullptr; }
  // The |y|^2 the row's float logits are computed with (0 when lifted).
  T ny(int64_t i) const { return lift[i] != 0.0 ? T(0) : static_cast<T>(ws.ny[i]); }
  // Error bound of row i's approximate logits near the maximum m: the
  // expansion's (fixed per row), or for coordinate differences a relative
  // error of about (d + 4) eps of the logits near the maximum.
  double error_bound(int64_t i, double m) const {
    return direct ? (static_cast<double>(d) + 4.0) * eps * (std::fabs(m) + 2.0 * lp.cprime_abs_max) : delta[i];
  }
};

// A row's logits of the current tile, left in x (or in ws.logit64 when exact) by a
// route that could not finish the tile in one sweep.
struct TileLogits {
  double max;      // the tile's largest (approximate) logit
  bool all_exact;  // ws.logit64 holds the exact logits of the whole tile
};

// Direct route, the usual case: one fused sweep computes the distances by
// coordinate differences, the weights and every sum in registers, with no
// tile of logits in memory. Returns true when the tile is done.
template <class T>
bool direct_sweep(const PassContext<T>& c, int64_t i, const T* row, RowState& rs) {
  const T* muT0 = c.mix.muT.data() + c.n0;
  // Shift of the sweep: the row's running maximum, or on the row's first
  // tile with weight, that tile's own maximum (one extra sweep).
  double shift = rs.max();
  if (shift == kNegInf) {
    shift = static_cast<double>(rows::direct_max(row, muT0, c.mix.n, c.d, c.cp(), c.kk(), c.lp.inv2v, c.nb));
    // Whole tile of zero-weight components, nothing seen before: nothing to add.
    if (shift == kNegInf) return true;
  }
  for (int sweep = 0; sweep < 2; ++sweep) {
    if (c.error_bound(i, shift) > c.tol) return false;
    const T ts = static_cast<T>(shift);
    double sums[4], acc[kDirectMaxDim];
    rows::direct_accumulate(row, muT0, c.mix.n, c.d, c.cp(), c.kk(), c.lp.inv2v, c.per_var, c.opt.entropy, c.nb,
                            ts, c.sum_scale, sums, acc);
    const double m_new = std::max(rs.max(), sums[3]);
    if (c.error_bound(i, m_new) > c.tol) return false;
    // A new maximum far above the shift: the sums risked overflow; sweep
    // again from the true maximum.
    if (sums[3] - static_cast<double>(ts) > kMaxOvershoot) {
      shift = m_new;
      continue;
    }
    const double f = rs.merge_tile(static_cast<double>(ts), sums[0], sums[1], m_new);
    for (int64_t k = 0; k < c.d; ++k) rs.A()[k] += f * acc[k];
    rs.B() += f * (c.per_var ? sums[2] : sums[2] * c.sum_scale);
    return true;
  }
  return false;
}

// Direct route, near-maximum logits that need the exact recompute: the
// tile's logits stored in x.
template <class T>
TileLogits direct_logits(const PassContext<T>& c, const T* row, T* x) {
  const double mx = static_cast<double>(rows::logits_direct(row, c.mix.muT.data() + c.n0, c.mix.n, c.d, c.cp(),
                                                            c.kk(), c.lp.inv2v, c.nb, c.ws.D2.data(), x));
  return {mx, false};
}

// Float64 route (float data, most rows had many candidates on the last
// tile): exact logits from the tile's float64 product and float64 norms, and
// whether the float route would have met many candidates here.
template <class T>
TileLogits exact_tile_logits(const PassContext<T>& c, int64_t i, double row_max, uint8_t* live) {
  Workspace<T>& ws = c.ws;
  const double* g = ws.G64.data() + i * c.tn;
  const double* n2 = c.tp->norm2.data() + c.n0;
  const double tile_max = rows::logits_f64(n2, g, ws.ny[i], c.cp(), c.kk(), static_cast<double>(c.lp.inv2v), c.nb,
                                           ws.logit64.data());
  const double m_guess = std::max(row_max, tile_max);
  const double dlt = c.error_bound(i, m_guess);
  int64_t count = 0;
  if (dlt > c.tol) count = rows::count_at_least(ws.logit64.data(), c.nb, m_guess - candidate_margin(dlt, c.tol));
  ws.near[i] = count > c.nb / kFewDiv;
  ws.cfrac[i] = static_cast<float>(count) / static_cast<float>(c.nb);
  std::fill_n(live, c.nblk, uint8_t{1});
  return {tile_max, true};
}

// Matrix-product route, the usual case after the row's first tile: one sweep
// from G to the weights, shifted by the running maximum, when no logit comes
// near enough to the maximum to need the exact recompute (or only a few,
// patched in). Returns true when the tile is done; its weights stay in x for
// the second product, with the factor ws.F[i] that moves them onto the row's maximum.
template <class T>
bool expansion_sweep(const PassContext<T>& c, int64_t i, const T* row, RowState& rs, T* x, uint8_t* live) {
  Workspace<T>& ws = c.ws;
  const double shift = rs.max();
  const double dlt = c.error_bound(i, shift);
  // The sweep's shift in the float logits' terms, and what it is in float64
  // (they differ by the lift and by the shift's rounding to T).
  const T ts = static_cast<T>(shift + c.lift[i]);
  const double ts64 = static_cast<double>(ts) - c.lift[i];
  // Candidates for the recompute lie above m_new - margin >= shift - margin.
  const T cut = dlt > c.tol ? static_cast<T>(-candidate_margin(dlt, c.tol)) : std::numeric_limits<T>::infinity();
  double sums[4];
  rows::expansion_weights(c.mix.norm2.data() + c.n0, ws.G.data() + i * c.tn, c.ny(i), c.cp(), c.kk(), c.lp.inv2v,
                          c.nb, ts, cut, c.skip, c.opt.entropy, x, sums, live);
  double m_new = std::max(rs.max(), ts64 + sums[2]);
  ws.cfrac[i] = static_cast<float>(sums[3] / static_cast<double>(c.nb));
  // A few candidates (the usual case when the tile holds the row's new
  // maximum): their exact weights are patched in (without the entropy, whose
  // sum would need every logit again). Many go the two-step route, which
  // computes a whole tile of exact logits at once.
  const bool few = sums[3] <= static_cast<double>(c.nb / kFewDiv);
  if (sums[3] != 0.0 && few && sums[2] <= kMaxOvershoot && !c.opt.entropy &&
      patch_candidates(c.mix, c.lp, row, c.n0, x, c.nb, ts64, cut, ws.idx.data(), ws.cd2.data(), &m_new)) {
    sums[0] = rows::sum(x, c.nb);
    sums[3] = 0.0;
  }
  if (sums[3] == 0.0 && sums[2] <= kMaxOvershoot) {
    const double f = rs.merge_tile(ts64, sums[0], sums[1], m_new);
    // This tile's weights are relative to ts: scale its product on the way into A.
    ws.F[i] = f;
    ws.weighted[i] = std::any_of(live, live + c.nblk, [](uint8_t b) { return b != 0; });
    rs.B() += c.per_var ? f * rows::scale_by_inverse_variance(x, c.kk(), c.nb) : f * sums[0] * c.sum_scale;
    return true;
  }
  // A row whose tile held many candidates (large t: many comparable logits)
  // tends to keep holding them: take the two-step route directly on its next tile.
  ws.near[i] = sums[3] > static_cast<double>(c.nb / kFewDiv);
  return false;
}

// Matrix-product route, two steps: the tile's approximate logits into x
// (every block may then carry weight).
template <class T>
TileLogits expansion_logits(const PassContext<T>& c, int64_t i, T* x, uint8_t* live) {
  std::fill_n(live, c.nblk, uint8_t{1});
  c.ws.cfrac[i] = 0.0f;  // finish_tile counts the candidates
  const double mx = static_cast<double>(rows::logits_expansion(c.mix.norm2.data() + c.n0, c.ws.G.data() + i * c.tn,
                                                               c.ny(i), c.cp(), c.kk(), c.lp.inv2v, c.nb, x));
  return {mx - c.lift[i], false};
}

// Every two-step route ends here: the components whose logit could carry
// weight above the tolerance once exact get it recomputed (a few by
// coordinate differences, or the whole tile at once), then the tile's
// weights in x, merged into the row's state.
template <class T>
void finish_tile(const PassContext<T>& c, int64_t i, const T* row, RowState& rs, T* x, TileLogits lg) {
  Workspace<T>& ws = c.ws;
  const int64_t nb = c.nb;
  double m_new = std::max(rs.max(), lg.max);
  // Whole row of zero-weight components, nothing seen before: nothing to add.
  auto nothing = [&]() {
    std::fill(x, x + nb, T(0));
    ws.weighted[i] = 0;
  };
  if (m_new == kNegInf) return nothing();
  const double dlt = c.error_bound(i, m_new);
  std::vector<std::pair<int64_t, double>>& exact = ws.exact;  // (column, exact logit)
  exact.clear();
  bool all_exact = lg.all_exact;
  if (dlt > c.tol && !all_exact) {
    // Components that could carry weight above the tolerance once their logit is exact.
    const double cut = m_new - candidate_margin(dlt, c.tol);
    const int64_t count = rows::indices_at_least(x, nb, static_cast<T>(cut + c.lift[i]), ws.idx.data());
    ws.cfrac[i] = static_cast<float>(count) / static_cast<float>(nb);
    double exact_max = rs.max();
    if (c.own_gemm && count > nb / kManyDiv) {
      // Many candidates (large t: many comparable logits): the exact logits
      // of the whole tile at once, by coordinate differences in float64 over
      // the packed panels.
      if constexpr (std::is_same_v<T, float>) {
        for (int64_t k = 0; k < c.d; ++k) ws.row64[k] = static_cast<double>(row[k]);
        tile_gemm::exact_dist2(ws.row64.data(), c.d, c.pk, nb, ws.logit64.data());
      }
      exact_max = std::max(exact_max, rows::logits_f64(nullptr, nullptr, 0.0, c.cp(), c.kk(),
                                                       static_cast<double>(c.lp.inv2v), nb, ws.logit64.data()));
      all_exact = true;
    } else {
      rows::exact_dist2s(row, c.mix.mu.data() + c.n0 * c.d, c.d, ws.idx.data(), count, ws.cd2.data());
      for (int64_t k = 0; k < count; ++k)
        exact.emplace_back(ws.idx[k], logit_of_dist2(c.lp, c.n0 + ws.idx[k], ws.cd2[k]));
      for (const auto& e : exact) exact_max = std::max(exact_max, e.second);
    }
    m_new = exact_max;
    if (m_new == kNegInf) return nothing();
  }
  double s_tile, e_tile;
  if (all_exact) {
    rs.move_to(m_new);
    // Shifted exact logits: small numbers, which T holds accurately.
    rows::shifted(ws.logit64.data(), nb, m_new, x);
    rows::weights(x, nb, T(0), &s_tile, &e_tile);
  } else {
    // The float logits x (lifted or not) are shifted by mt: the weights are
    // relative to what mt is in float64.
    const T mt = static_cast<T>(m_new + c.lift[i]);
    double m_ref = static_cast<double>(mt) - c.lift[i];
    // Logits of extreme size (t near the edge of the working range, where
    // the rounding of mt exceeds 1e-3): the state stays on m_new (lifted
    // rows never get here: their float logits are kept below 1e-3 / eps).
    if (std::fabs(m_ref - m_new) > 1e-3) m_ref = m_new;
    rs.move_to(m_ref);
    if (exact.empty()) {
      rows::weights(x, nb, mt, &s_tile, &e_tile);
    } else {
      // Shift first, then patch in the candidates' exact shifted logits (small
      // numbers, so T holds them accurately), then exponentiate.
      for (int64_t j = 0; j < nb; ++j) x[j] -= mt;
      for (const auto& e : exact) x[e.first] = static_cast<T>(e.second - m_ref);
      rows::weights(x, nb, T(0), &s_tile, &e_tile);
    }
  }
  rs.add(s_tile, e_tile);
  // The running sum of p / v; with per-component variances the columns are divided by v_j here.
  rs.B() += c.per_var ? rows::scale_by_inverse_variance(x, c.kk(), nb) : s_tile * c.sum_scale;
  if (c.direct)
    rows::weighted_sum_direct(x, row, c.mix.muT.data() + c.n0, c.mix.n, c.d, nb, c.sum_scale, rs.A());
}

// The first product of a tile, G = rows mu_tile^T (matrix-product path): in
// float64 when exact_tile (float data), by the built-in products or by BLAS.
template <class T>
void first_product(PassContext<T>& c, int64_t q, int64_t pad, bool exact_tile) {
  Workspace<T>& ws = c.ws;
  if constexpr (std::is_same_v<T, float>) {
    if (exact_tile) {
      if (ws.rows64.size() != static_cast<size_t>((q + pad) * c.d)) {
        ws.rows64.assign(static_cast<size_t>((q + pad) * c.d), 0.0);
        for (int64_t k = 0; k < q * c.d; ++k) ws.rows64[k] = static_cast<double>(ws.rows[k]);
      }
      ws.G64.resize(static_cast<size_t>((q + pad) * c.tn));
      tile_gemm::dot_tiles_f64(ws.rows64.data(), q, c.d, c.pk, c.nb, ws.G64.data(), c.tn);
    } else if (c.own_gemm) {
      tile_gemm::dot_tiles(ws.rows.data(), q, c.d, c.pk, c.nb, ws.G.data(), c.tn);
    }
  }
  if (!c.own_gemm)
    blas::gemm_nt(q, c.nb, c.d, ws.rows.data(), c.d, c.mix.mu.data() + c.n0 * c.d, c.d, ws.G.data(), c.tn);
}

// The second product for the value columns alone (PassOptions::value_begin,
// value_count): per column, the tile's entries gathered once, then per
// weighted row one sum over the tile in T (rows::dot), added in float64.
template <class T>
void value_columns_product(PassContext<T>& c, int64_t nslots) {
  Workspace<T>& ws = c.ws;
  const T* mu = c.mix.mu.data() + c.n0 * c.d;
  ws.col.resize(static_cast<size_t>(c.nb));
  T* col = ws.col.data();
  for (int64_t k = c.opt.value_begin; k < c.opt.value_begin + c.opt.value_count; ++k) {
    for (int64_t j = 0; j < c.nb; ++j) col[j] = mu[j * c.d + k];
    for (int64_t s = 0; s < nslots; ++s) {
      const int64_t i = ws.slots[s];
      ws.A[i * c.d + k] += c.sum_scale * ws.F[i] * rows::dot(ws.X.data() + s * c.tn, col, c.nb);
    }
  }
}

// The second product of a tile, A += sum_scale F p mu_tile (matrix-product
// path), over the nslots weighted rows packed into X.
template <class T>
void second_product(PassContext<T>& c, int64_t nslots) {
  Workspace<T>& ws = c.ws;
  if (c.opt.value_count >= 0 && c.opt.value_count < c.d) return value_columns_product(c, nslots);
  const T* mu = c.mix.mu.data() + c.n0 * c.d;
  if (c.own_gemm) {
    if constexpr (std::is_same_v<T, float>) {
      for (int64_t s = 0; s < nslots; ++s) ws.scale[s] = c.sum_scale * ws.F[ws.slots[s]];
      tile_gemm::accumulate(ws.X.data(), c.tn, nslots, c.nb, mu, c.d, c.d, ws.scale.data(), ws.A.data(),
                            ws.slots.data(), ws.live.data(), c.nblk);
    }
    return;
  }
  if (nslots > 0) blas::gemm_nn(nslots, c.d, c.nb, ws.X.data(), c.tn, mu, c.d, ws.C.data(), c.d);
  for (int64_t s = 0; s < nslots; ++s) {
    const int64_t i = ws.slots[s];
    rows::add_scaled(ws.C.data() + s * c.d, c.d, c.sum_scale * ws.F[i], ws.A.data() + i * c.d);
  }
}

}  // namespace

// The driver: per tile of components, the first product, then per row the
// route (direct; float64 tile; single sweep; else two steps ending in
// finish_tile), then the second product.
template <class T>
void dense_pass(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
                const PassOptions& opt, int64_t n_begin, int64_t n_end) {
  const int64_t d = mix.d, tn = opt.tile_n;
  // The built-in tile products need tiles that start on a packed panel.
  const TilePack<T>* tp = &mix.tiles;
  if constexpr (std::is_same_v<T, float>)
    if (opt.tiles) tp = opt.tiles;
  const bool own_gemm = !tp->empty() && tn % tile_gemm::kPanel == 0 && n_begin % tile_gemm::kPanel == 0;
  const bool direct = !mix.muT.empty();
  const int64_t nblk = (tn + tile_gemm::kLiveBlock - 1) / tile_gemm::kLiveBlock;
  PassContext<T> c{mix, lp, opt, ws, d, tn, nblk, direct, own_gemm, !mix.var.empty(), tp,
                   std::numeric_limits<T>::epsilon(), logit_tolerance<T>(mix.logit_tol), skip_below(mix),
                   mix.var.empty() ? 2.0 * lp.inv2v_max : 1.0,
                   lp.per_component ? lp.cprime.data() : nullptr, lp.per_component ? lp.inv2v_j.data() : nullptr,
                   std::vector<double>(static_cast<size_t>(q)), std::vector<double>(static_cast<size_t>(q))};
  ws.start(q, d, tn, nblk, own_gemm, direct);
  // Bound on the error of an approximate logit: rounding in the product and
  // in |y|^2 + |mu|^2 - 2 y.mu, a few sqrt(d) units of the largest term.
  const double kappa = expansion_kappa(d);
  for (int64_t i = 0; i < q; ++i) {
    double s = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      const double r = static_cast<double>(ws.rows[i * d + k]);
      s += r * r;
    }
    ws.ny[i] = s;
    c.delta[i] = expansion_error(kappa * c.eps, s, mix.norm2_max, lp.inv2v_max, lp.cprime_abs_max);
    // Equal variances and a row far from the data (|y|^2 > 4 max |mu|^2): its
    // float logits leave out |y|^2 (lifted), a smaller error bound; only
    // while they stay below 1e-3 / eps, so that their rounding is harmless.
    c.lift[i] = 0.0;
    if (!direct && !c.per_var) {
      const double lifted = expansion_error_lifted(kappa * c.eps, s, mix.norm2_max, lp.inv2v_max, lp.cprime_abs_max);
      if (lifted < c.delta[i] && lifted <= kappa * 1e-3) {
        c.delta[i] = lifted;
        c.lift[i] = s * static_cast<double>(lp.inv2v);
      }
    }
  }
  const int64_t pad = own_gemm ? tile_gemm::kRowPad : 0;  // rows the kernels may touch past q
  if (n_end < 0) n_end = mix.n;
  for (int64_t n0 = n_begin; n0 < n_end; n0 += tn) {
    if (opt.stop && opt.stop->poll()) return;  // cancelled: the caller discards the rows
    c.n0 = n0;
    c.nb = std::min(tn, n_end - n0);
    c.pk = own_gemm ? tp->packed.data() + (n0 / tile_gemm::kPanel) * d * tile_gemm::kPanel : nullptr;
    // Most rows had many near-maximum candidates on their last tile (large t:
    // many comparable logits): this tile's first product runs in float64,
    // which makes every logit exact at once (float data only).
    bool exact_tile = false;
    if (own_gemm) {
      double frac = 0.0;
      for (int64_t i = 0; i < q; ++i) frac += ws.cfrac[i];
      exact_tile = frac > kExactTileFraction * static_cast<double>(q);
    }
    if (!direct) first_product(c, q, pad, exact_tile);
    // The rows whose weights on this tile are not all zero are packed into
    // the first slots of X (row i of A for slot s is ws.slots[s]): the second
    // product leaves the others out.
    int64_t nslots = 0;
    for (int64_t i = 0; i < q; ++i) {
      if (!direct && i > 0 && ws.weighted[i - 1]) ws.slots[nslots++] = i - 1;
      ws.weighted[i] = 1;
      ws.F[i] = 1.0;
      const int64_t slot = direct ? i : nslots;
      T* x = ws.X.data() + slot * tn;
      uint8_t* live = ws.live.data() + slot * nblk;
      const T* row = ws.rows.data() + i * d;
      RowState rs(ws.m.data(), ws.S.data(), ws.E.data(), ws.A.data(), ws.B.data(), i, d);
      TileLogits lg;
      if (direct) {
        if (direct_sweep(c, i, row, rs)) continue;
        lg = direct_logits(c, row, x);
      } else if (exact_tile) {
        lg = exact_tile_logits(c, i, rs.max(), live);
      } else {
        const bool many = ws.near[i];
        if (rs.max() != kNegInf && !many) {
          if (expansion_sweep(c, i, row, rs, x, live)) continue;
        } else {
          ws.near[i] = 0;  // try the single sweep again on the next tile
        }
        lg = expansion_logits(c, i, x, live);
      }
      finish_tile(c, i, row, rs, x, lg);
    }
    if (!direct) {
      if (q > 0 && ws.weighted[q - 1]) ws.slots[nslots++] = q - 1;
      second_product(c, nslots);
    }
  }
  // A = sum p mu / v - y sum p / v = sum p (mu - y) / v, in float64. (The
  // direct path sums p (mu - y) / v itself.)
  if (direct) return;
  for (int64_t i = 0; i < q; ++i) {
    double* Ai = ws.A.data() + i * d;
    const T* r = ws.rows.data() + i * d;
    for (int64_t k = 0; k < d; ++k) Ai[k] -= static_cast<double>(r[k]) * ws.B[i];
  }
}

#define LEDKDE_INSTANTIATE(T)                                                                  \
  template void centre_rows(const Mixture<T>&, const T*, int64_t, Workspace<T>&);             \
  template void dense_pass(const Mixture<T>&, const LogitParams<T>&, int64_t, Workspace<T>&,  \
                           const PassOptions&, int64_t, int64_t);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
