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
#include "row_kernels.h"
#include "tile_gemm.h"

namespace ledkde {

namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// The exactness rules (logit tolerance, error bounds, candidate margins,
// kMaxOvershoot) live in ledkde/exactness.h, shared with the CUDA pass.

// The logit of component j at squared distance d2, in float64.
template <class T>
double logit_of_dist2(const LogitParams<T>& lp, int64_t j, double d2) {
  if (!lp.per_component) return -d2 * static_cast<double>(lp.inv2v);
  return static_cast<double>(lp.cprime[j]) - d2 * static_cast<double>(lp.inv2v_j[j]);
}

// Exact logit of component j for the row (distance by coordinate differences).
template <class T>
double exact_logit(const Mixture<T>& mix, const LogitParams<T>& lp, const T* row, int64_t j) {
  return logit_of_dist2(lp, j, rows::exact_dist2(row, mix.mu.data() + j * mix.d, mix.d));
}

// The candidates of a tile whose weights p_j = exp(l_j - ts) were taken from
// approximate logits (those with l_j - ts >= cut, at most the weights >=
// exp(cut) up to the exponential's rounding, hence the slack): their exact
// weights replace them, and *m_new rises to their maximum. Returns false, x
// partly patched, when an exact logit lies more than kMaxOvershoot above ts.
template <class T>
bool patch_candidates(const Mixture<T>& mix, const LogitParams<T>& lp, const T* row, int64_t n0,
                      T* x, int64_t nb, T ts, T cut, int64_t* idx, double* m_new) {
  const T thr = static_cast<T>(std::exp(static_cast<double>(cut) - 1e-3));
  const int64_t count = rows::indices_at_least(x, nb, thr, idx);
  for (int64_t c = 0; c < count; ++c) {
    const double z = exact_logit(mix, lp, row, n0 + idx[c]) - static_cast<double>(ts);
    if (z > kMaxOvershoot) return false;
    *m_new = std::max(*m_new, static_cast<double>(ts) + z);
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
void centre_rows(const Mixture<T>& mix, const T* y, int64_t q, Workspace<T>& ws) {
  const int64_t d = mix.d;
  ws.rows.resize(static_cast<size_t>(q * d));
  for (int64_t i = 0; i < q; ++i)
    for (int64_t k = 0; k < d; ++k)
      ws.rows[i * d + k] = static_cast<T>(static_cast<double>(y[i * d + k]) - mix.centre[k]);
}

template <class T>
void pass_rows(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
               const PassOptions& opt, int64_t n_begin, int64_t n_end) {
  const int64_t d = mix.d, n = mix.n, tn = opt.tile_n;
  // The built-in tile products need tiles that start on a packed panel.
  const TilePack<T>* tp = &mix.tiles;
  if constexpr (std::is_same_v<T, float>)
    if (opt.tiles) tp = opt.tiles;
  const bool own_gemm = !tp->empty() && tn % tile_gemm::kPanel == 0 &&
                        n_begin % tile_gemm::kPanel == 0;
  const int64_t pad = own_gemm ? tile_gemm::kRowPad : 0;  // rows the kernels may touch past q
  if (mix.muT.empty()) ws.G.resize(static_cast<size_t>((q + pad) * tn));
  ws.X.resize(static_cast<size_t>((q + pad) * tn));
  if (own_gemm) {
    ws.rows.resize(static_cast<size_t>((q + pad) * d));
    ws.scale.resize(q);
  }
  ws.C.resize(static_cast<size_t>(q * d));
  ws.ny.resize(q);
  ws.B.assign(q, 0.0);
  ws.F.assign(q, 1.0);
  ws.near.assign(q, 0);
  ws.st.assign(q, lse_init());
  ws.A.assign(static_cast<size_t>(q * d), 0.0);

  // Bound on the error of an approximate logit: rounding in the product and
  // in |y|^2 + |mu|^2 - 2 y.mu, a few sqrt(d) units of the largest term.
  const double eps = std::numeric_limits<T>::epsilon();
  const double kappa = expansion_kappa(d);
  const double tol = logit_tolerance<T>();
  std::vector<double> delta(q);
  for (int64_t i = 0; i < q; ++i) {
    double s = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      const double r = static_cast<double>(ws.rows[i * d + k]);
      s += r * r;
    }
    ws.ny[i] = s;
    delta[i] = expansion_error(kappa * eps, s, mix.norm2_max, lp.inv2v_max, lp.cprime_abs_max);
  }

  const bool direct = !mix.muT.empty();
  if (direct) ws.D2.resize(static_cast<size_t>(tn));
  ws.idx.resize(static_cast<size_t>(tn));
  const int64_t nblk = (tn + tile_gemm::kLiveBlock - 1) / tile_gemm::kLiveBlock;
  ws.live.resize(static_cast<size_t>(q * nblk));
  ws.weighted.resize(q);
  if (own_gemm) {
    ws.E.resize(static_cast<size_t>(tn));
    ws.row64.resize(static_cast<size_t>(d));
  }
  ws.rows64.clear();  // the rows in float64, made when a tile first needs them
  ws.slots.resize(q);
  const T skip = skip_below(mix);
  const T* cprime = lp.per_component ? lp.cprime.data() : nullptr;
  const T* kj = lp.per_component ? lp.inv2v_j.data() : nullptr;
  // With equal variances the 1/v factor is applied to the sums, not per column.
  const double sum_scale = mix.var.empty() ? 2.0 * lp.inv2v_max : 1.0;
  const bool per_var = !mix.var.empty();
  std::vector<std::pair<int64_t, double>> exact;  // (column, exact logit) of one row
  if (n_end < 0) n_end = n;
  for (int64_t n0 = n_begin; n0 < n_end; n0 += tn) {
    if (opt.stop && opt.stop->poll()) return;  // cancelled: the caller discards the rows
    const int64_t nb = std::min(tn, n_end - n0);
    const T* mu = mix.mu.data() + n0 * d;
    // Most rows had many near-maximum candidates on their last tile (large t:
    // many comparable logits): this tile's first product runs in float64,
    // which makes every logit exact at once (float data only).
    bool exact_tile = false;
    if (own_gemm) {
      int64_t many_rows = 0;
      for (int64_t i = 0; i < q; ++i) many_rows += ws.near[i];
      exact_tile = 2 * many_rows > q;
    }
    // The tile's first row panel (built-in products).
    const T* pk = own_gemm ? tp->packed.data() + (n0 / tile_gemm::kPanel) * d * tile_gemm::kPanel
                           : nullptr;
    if (!direct) {
      if constexpr (std::is_same_v<T, float>) {
        if (exact_tile) {
          if (ws.rows64.size() != static_cast<size_t>((q + pad) * d)) {
            ws.rows64.assign(static_cast<size_t>((q + pad) * d), 0.0);
            for (int64_t k = 0; k < q * d; ++k) ws.rows64[k] = static_cast<double>(ws.rows[k]);
          }
          ws.G64.resize(static_cast<size_t>((q + pad) * tn));
          tile_gemm::dot_tiles_f64(ws.rows64.data(), q, d, pk, nb, ws.G64.data(), tn);
        } else if (own_gemm) {
          tile_gemm::dot_tiles(ws.rows.data(), q, d, pk, nb, ws.G.data(), tn);
        }
      }
      if (!own_gemm) blas::gemm_nt(q, nb, d, ws.rows.data(), d, mu, d, ws.G.data(), tn);
    }
    // The rows whose weights on this tile are not all zero are packed into
    // the first slots of X (row i of A for slot s is ws.slots[s]): the second
    // product leaves the others out.
    int64_t nslots = 0;
    for (int64_t i = 0; i < q; ++i) {
      if (!direct && i > 0 && ws.weighted[i - 1]) ws.slots[nslots++] = i - 1;
      ws.weighted[i] = 1;
      const int64_t slot = direct ? i : nslots;
      T* x = ws.X.data() + slot * tn;
      uint8_t* live = ws.live.data() + slot * nblk;
      const T* row = ws.rows.data() + i * d;
      const T* cp = cprime ? cprime + n0 : nullptr;
      const T* kk = kj ? kj + n0 : nullptr;
      LseScalars& st = ws.st[i];
      // Error bound of this row's approximate logits: the expansion's (fixed
      // per row), or for coordinate differences a relative error of about
      // (d + 4) eps of the logits near the maximum.
      auto error_bound = [&](double m) {
        return direct ? (static_cast<double>(d) + 4.0) * eps * (std::fabs(m) + 2.0 * lp.cprime_abs_max)
                      : delta[i];
      };
      // Moves row i's state (S, E, and its sums A and B) onto the maximum m.
      auto move_row_to = [&](double m) {
        const double a = lse_move_to(st, m);
        if (a == 1.0) return;
        double* Ai = ws.A.data() + i * d;
        for (int64_t k = 0; k < d; ++k) Ai[k] *= a;
        ws.B[i] *= a;
      };
      // Merges a tile's (S, E) taken relative to ts into row i's state, both
      // moved onto the maximum m_new; returns the tile's factor for its sums.
      auto merge_tile = [&](double ts, double S, double E, double m_new) {
        move_row_to(m_new);
        LseScalars tile{ts, S, E};
        const double f = lse_move_to(tile, m_new);
        st.S += tile.S;
        st.E += tile.E;
        return f;
      };
      double tile_max;
      bool many = false;       // the row's last tile had many candidates
      bool all_exact = false;  // ws.E holds the exact logits of the whole tile
      if (direct) {
        const T* muT0 = mix.muT.data() + n0;
        // Shift of the sweep: the row's running maximum, or on the row's first
        // tile with weight, that tile's own maximum (one extra sweep).
        double shift = st.m;
        if (shift == kNegInf) {
          shift = static_cast<double>(rows::direct_max(row, muT0, n, d, cp, kk, lp.inv2v, nb));
          // Whole tile of zero-weight components, nothing seen before: nothing to add.
          if (shift == kNegInf) continue;
        }
        // The usual case: one fused sweep, no tile of logits in memory.
        auto fused_sweep = [&]() {
          for (int sweep = 0; sweep < 2; ++sweep) {
            if (error_bound(shift) > tol) return false;
            const T ts = static_cast<T>(shift);
            double sums[4], acc[kDirectMaxDim];
            rows::direct_accumulate(row, muT0, n, d, cp, kk, lp.inv2v, per_var, opt.entropy, nb, ts,
                                    sum_scale, sums, acc);
            const double m_new = std::max(st.m, sums[3]);
            if (error_bound(m_new) > tol) return false;
            // A new maximum far above the shift: the sums risked overflow; sweep
            // again from the true maximum.
            if (sums[3] - static_cast<double>(ts) > kMaxOvershoot) {
              shift = m_new;
              continue;
            }
            const double f = merge_tile(static_cast<double>(ts), sums[0], sums[1], m_new);
            double* Ai = ws.A.data() + i * d;
            for (int64_t k = 0; k < d; ++k) Ai[k] += f * acc[k];
            ws.B[i] += f * (per_var ? sums[2] : sums[2] * sum_scale);
            return true;
          }
          return false;
        };
        if (fused_sweep()) continue;
        // Near-maximum logits need the exact recompute below: store them.
        tile_max = static_cast<double>(rows::logits_direct(
            row, muT0, n, d, cp, kk, lp.inv2v, nb, ws.D2.data(), x));
      } else if (exact_tile) {
        // Exact logits from the float64 products and float64 norms.
        ws.F[i] = 1.0;
        const double* g = ws.G64.data() + i * tn;
        const double* n2 = tp->norm2.data() + n0;
        tile_max = kNegInf;
        for (int64_t j = 0; j < nb; ++j) {
          ws.E[j] = logit_of_dist2(lp, n0 + j, ws.ny[i] + n2[j] - 2.0 * g[j]);
          tile_max = std::max(tile_max, ws.E[j]);
        }
        all_exact = true;
        // Whether the float route would have met many candidates here.
        const double m_guess = std::max(st.m, tile_max);
        const double dlt = error_bound(m_guess);
        int64_t count = 0;
        if (dlt > tol) {
          const double cut = m_guess - candidate_margin(dlt, tol);
          for (int64_t j = 0; j < nb; ++j) count += ws.E[j] >= cut;
        }
        ws.near[i] = count > nb / 16;
        std::fill_n(live, nblk, uint8_t{1});
      } else {
        ws.F[i] = 1.0;
        many = ws.near[i];
        // The usual case after the row's first tile: one sweep from G to the
        // weights, shifted by the running maximum, when no logit comes near
        // enough to the maximum to need the exact recompute.
        const double shift = st.m;
        if (shift != kNegInf && !ws.near[i]) {
          const double dlt = error_bound(shift);
          const T ts = static_cast<T>(shift);
          // Candidates for the recompute lie above m_new - margin >= shift - margin.
          const T cut = dlt > tol ? static_cast<T>(-candidate_margin(dlt, tol))
                                  : std::numeric_limits<T>::infinity();
          double sums[4];
          rows::expansion_weights(mix.norm2.data() + n0, ws.G.data() + i * tn,
                                  static_cast<T>(ws.ny[i]), cp, kk, lp.inv2v, nb, ts, cut, skip,
                                  opt.entropy, x, sums, live);
          double m_new = std::max(st.m, static_cast<double>(ts) + sums[2]);
          // A few candidates (the usual case when the tile holds the row's
          // new maximum): their exact weights are patched in (without the
          // entropy, whose sum would need every logit again). Many go the
          // two-step route, which computes a whole tile of exact logits at once.
          const bool few = sums[3] <= static_cast<double>(nb / 16);
          if (sums[3] != 0.0 && few && sums[2] <= kMaxOvershoot && !opt.entropy &&
              patch_candidates(mix, lp, row, n0, x, nb, ts, cut, ws.idx.data(), &m_new)) {
            sums[0] = rows::sum(x, nb);
            sums[3] = 0.0;
          }
          if (sums[3] == 0.0 && sums[2] <= kMaxOvershoot) {
            const double f = merge_tile(static_cast<double>(ts), sums[0], sums[1], m_new);
            // This tile's weights are relative to ts: scale its product on the way into A.
            ws.F[i] = f;
            ws.weighted[i] = std::any_of(live, live + nblk, [](uint8_t b) { return b != 0; });
            ws.B[i] += per_var ? f * rows::scale_by_inverse_variance(x, kk, nb)
                               : f * sums[0] * sum_scale;
            continue;
          }
          // A row whose tile held many candidates (large t: many comparable
          // logits) tends to keep holding them: take the two-step route
          // directly on its next tile.
          ws.near[i] = sums[3] > static_cast<double>(nb / 16);
        } else {
          ws.near[i] = 0;  // try the single sweep again on the next tile
        }
        // The two-step route below may give weight to every block.
        std::fill_n(live, nblk, uint8_t{1});
        tile_max = static_cast<double>(rows::logits_expansion(
            mix.norm2.data() + n0, ws.G.data() + i * tn, static_cast<T>(ws.ny[i]), cp, kk,
            lp.inv2v, nb, x));
      }
      double m_new = std::max(st.m, tile_max);
      // Whole row of zero-weight components, nothing seen before: nothing to add.
      if (m_new == kNegInf) {
        std::fill(x, x + nb, T(0));
        ws.weighted[i] = 0;
        continue;
      }
      const double dlt = error_bound(m_new);
      exact.clear();
      if (dlt > tol && !all_exact) {
        // Components that could carry weight above the tolerance once their
        // logit is exact.
        const double cut = m_new - candidate_margin(dlt, tol);
        const T ct = static_cast<T>(cut);
        // (With many candidates on the row's last tile, no need to count them.)
        const int64_t count = many && own_gemm ? nb : rows::indices_at_least(x, nb, ct, ws.idx.data());
        double exact_max = st.m;
        if (own_gemm && count > nb / 8) {
          // Many candidates (large t: many comparable logits): the exact
          // logits of the whole tile at once, by coordinate differences in
          // float64 over the packed panels.
          if constexpr (std::is_same_v<T, float>) {
            for (int64_t k = 0; k < d; ++k) ws.row64[k] = static_cast<double>(row[k]);
            tile_gemm::exact_dist2(ws.row64.data(), d, pk, nb, ws.E.data());
          }
          for (int64_t j = 0; j < nb; ++j) {
            ws.E[j] = logit_of_dist2(lp, n0 + j, ws.E[j]);
            exact_max = std::max(exact_max, ws.E[j]);
          }
          all_exact = true;
        } else {
          for (int64_t c = 0; c < count; ++c)
            exact.emplace_back(ws.idx[c], exact_logit(mix, lp, row, n0 + ws.idx[c]));
          for (const auto& e : exact) exact_max = std::max(exact_max, e.second);
        }
        m_new = exact_max;
        if (m_new == kNegInf) {
          std::fill(x, x + nb, T(0));
          ws.weighted[i] = 0;
          continue;
        }
      }
      move_row_to(m_new);
      double s_tile, e_tile;
      if (all_exact) {
        // Shifted exact logits: small numbers, which T holds accurately.
        for (int64_t j = 0; j < nb; ++j) x[j] = static_cast<T>(ws.E[j] - m_new);
        rows::weights(x, nb, T(0), &s_tile, &e_tile);
      } else if (exact.empty()) {
        rows::weights(x, nb, static_cast<T>(m_new), &s_tile, &e_tile);
      } else {
        // Shift first, then patch in the candidates' exact shifted logits
        // (small numbers, so T holds them accurately), then exponentiate.
        const T mt = static_cast<T>(m_new);
        for (int64_t j = 0; j < nb; ++j) x[j] -= mt;
        for (const auto& e : exact) x[e.first] = static_cast<T>(e.second - m_new);
        rows::weights(x, nb, T(0), &s_tile, &e_tile);
      }
      st.S += s_tile;
      st.E += e_tile;
      // The running sum of p / v; with per-component variances the columns
      // are divided by v_j here.
      ws.B[i] += mix.var.empty() ? s_tile * sum_scale
                                 : rows::scale_by_inverse_variance(x, kk, nb);
      if (direct)
        rows::weighted_sum_direct(x, row, mix.muT.data() + n0, n, d, nb, sum_scale,
                                  ws.A.data() + i * d);
    }
    if (!direct && q > 0 && ws.weighted[q - 1]) ws.slots[nslots++] = q - 1;
    if (!direct && own_gemm) {
      if constexpr (std::is_same_v<T, float>) {
        for (int64_t s = 0; s < nslots; ++s) ws.scale[s] = sum_scale * ws.F[ws.slots[s]];
        tile_gemm::accumulate(ws.X.data(), tn, nslots, nb, mu, d, d, ws.scale.data(), ws.A.data(),
                              ws.slots.data(), ws.live.data(), nblk);
      }
    } else if (!direct) {
      if (nslots > 0) blas::gemm_nn(nslots, d, nb, ws.X.data(), tn, mu, d, ws.C.data(), d);
      for (int64_t s = 0; s < nslots; ++s) {
        const int64_t i = ws.slots[s];
        rows::add_scaled(ws.C.data() + s * d, d, sum_scale * ws.F[i], ws.A.data() + i * d);
      }
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

template <class T>
TilePack<T> make_tile_pack(const Mixture<T>& mix, int threads) {
  TilePack<T> tp;
  if constexpr (std::is_same_v<T, float>) {
    const int64_t n = mix.n, d = mix.d;
    if (d <= kDirectMaxDim || !tile_gemm::available()) return tp;
    const int64_t panels = (n + tile_gemm::kPanel - 1) / tile_gemm::kPanel;
    tp.packed.resize(static_cast<size_t>(panels * d * tile_gemm::kPanel));
    tp.norm2.resize(static_cast<size_t>(n));
    // Chunks of whole panels, in parallel.
    constexpr int64_t kChunkPanels = 64;
    parallel_for((panels + kChunkPanels - 1) / kChunkPanels, threads, [&](int64_t c, int) {
      const int64_t p0 = c * kChunkPanels, p1 = std::min(panels, p0 + kChunkPanels);
      tile_gemm::pack(mix.mu.data(), n, d, p0, p1, tp.packed.data());
      for (int64_t j = p0 * tile_gemm::kPanel; j < std::min(n, p1 * tile_gemm::kPanel); ++j) {
        double s = 0.0;
        for (int64_t k = 0; k < d; ++k) s += static_cast<double>(mix.mu[j * d + k]) * mix.mu[j * d + k];
        tp.norm2[j] = s;
      }
    });
  }
  return tp;
}

template <class T>
PassOptions with_tile_pack(const Mixture<T>& mix, const PassOptions& opt, TilePack<T>& hold) {
  PassOptions o = opt;
  if constexpr (std::is_same_v<T, float>) {
    if (mix.tiles.empty() && !opt.tiles) {
      hold = make_tile_pack(mix, opt.threads);
      if (!hold.empty()) o.tiles = &hold;
    }
  }
  return o;
}

template <class T>
Mixture<T> prepare_mixture(const T* data, int64_t n, int64_t d, const double* log_weights,
                           const double* variances, int threads, bool pack) {
  Mixture<T> mix;
  mix.n = n;
  mix.d = d;
  constexpr int64_t kChunk = 2048;  // rows per task (threads only change who does a chunk)
  const int64_t nchunks = (n + kChunk - 1) / kChunk;
  // The centre only has to lie near the middle of the data (it keeps the
  // norms small): the mean of every (n / 1024)-th row (1024 to 2047 rows, or
  // all when fewer), which saves a pass over the data.
  mix.centre.assign(d, 0.0);
  const int64_t stride = std::max<int64_t>(1, n / 1024);
  int64_t used = 0;
  for (int64_t j = 0; j < n; j += stride, ++used)
    for (int64_t k = 0; k < d; ++k) mix.centre[k] += static_cast<double>(data[j * d + k]);
  for (auto& c : mix.centre) c /= static_cast<double>(used);
  // The direct path (coordinate differences) is translation invariant and
  // exact on the values as given (y - mu of two nearby floats has no
  // rounding error), while centring would round y - c and mu - c first:
  // relative errors of eps |y - c| / |y - mu| in the distances of close
  // pairs. So only the matrix-product path centres.
  if (d <= kDirectMaxDim) std::fill(mix.centre.begin(), mix.centre.end(), 0.0);
  // Padded: the second product reads up to kRowTail floats past a row (zeros after the last).
  mix.mu.resize(static_cast<size_t>(n * d + tile_gemm::kRowTail));
  std::fill(mix.mu.end() - tile_gemm::kRowTail, mix.mu.end(), T(0));
  mix.norm2.resize(n);
  std::vector<double> norm_max(nchunks, 0.0);
  parallel_for(nchunks, threads, [&](int64_t c, int) {
    const double* centre = mix.centre.data();
    for (int64_t j = c * kChunk; j < std::min(n, (c + 1) * kChunk); ++j) {
      T* row = mix.mu.data() + j * d;
      const T* src = data + j * d;
      double s = 0.0;
#pragma omp simd reduction(+ : s)
      for (int64_t k = 0; k < d; ++k) {
        const T v = static_cast<T>(static_cast<double>(src[k]) - centre[k]);
        row[k] = v;
        s += static_cast<double>(v) * static_cast<double>(v);
      }
      mix.norm2[j] = static_cast<T>(s);
      norm_max[c] = std::max(norm_max[c], s);
    }
  });
  for (double v : norm_max) mix.norm2_max = std::max(mix.norm2_max, v);
  if (d <= kDirectMaxDim) {
    // Few coordinates: distances by differences over a coordinate-major copy.
    mix.muT.resize(static_cast<size_t>(n * d));
    for (int64_t j = 0; j < n; ++j)
      for (int64_t k = 0; k < d; ++k) mix.muT[k * n + j] = mix.mu[j * d + k];
  }
  if (pack && d <= tile_gemm::kMaxDim) mix.tiles = make_tile_pack(mix, threads);
  if (log_weights) {
    double mx = kNegInf;
    for (int64_t j = 0; j < n; ++j) mx = std::max(mx, log_weights[j]);
    double s = 0.0;
    for (int64_t j = 0; j < n; ++j) s += std::exp(log_weights[j] - mx);
    const double lse = mx + std::log(s);
    mix.logw.resize(n);
    for (int64_t j = 0; j < n; ++j) mix.logw[j] = log_weights[j] - lse;
    mix.log_mass = lse;
  } else {
    mix.log_mass = std::log(static_cast<double>(n));
  }
  if (variances) mix.var.assign(variances, variances + n);
  return mix;
}

#define LEDKDE_INSTANTIATE(T)                                                                  \
  template void centre_rows(const Mixture<T>&, const T*, int64_t, Workspace<T>&);             \
  template void pass_rows(const Mixture<T>&, const LogitParams<T>&, int64_t, Workspace<T>&,   \
                          const PassOptions&, int64_t, int64_t);                                                 \
  template TilePack<T> make_tile_pack(const Mixture<T>&, int);                               \
  template PassOptions with_tile_pack(const Mixture<T>&, const PassOptions&, TilePack<T>&);  \
  template Mixture<T> prepare_mixture(const T*, int64_t, int64_t, const double*, const double*, int, \
                                      bool);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde
