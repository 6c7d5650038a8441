// The CPU score pass over all mixture components for one block of query rows.
// Every CPU operation (fused outputs, partial states, smoothed scores, the
// samplers) is a driver around pass_rows().
#pragma once

#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include "ledkde/cpu.h"
#include "ledkde/logit_params.h"

namespace ledkde {


// The tile pack of a mixture for the built-in products (empty for double, for
// d <= kDirectMaxDim, or without AVX2/AVX-512), for any d.
template <class T>
TilePack<T> make_tile_pack(const Mixture<T>& mix, int threads, StopFlag* stop = nullptr);

// Options for many passes over mix (a sampler run, a smoothed score): when the
// mixture has no tile pack of its own, one is built into `hold` and used.
template <class T>
PassOptions with_tile_pack(const Mixture<T>& mix, const PassOptions& opt, TilePack<T>& hold);

// Scratch memory of one worker; grows on demand, reused across tiles. After a
// pass, m, S, E, A (and B) hold the rows' states: state() is their
// PartialState view (engine.h), the convention of every pass (the CUDA
// RowStates too), which finish_rows.h finishes and merge_row merges.
template <class T>
struct Workspace {
  std::vector<T> rows;        // (q, d) centred query rows
  std::vector<double> m, S, E;  // (q,) the rows' states: maximum, sum of weights, entropy sum
  std::vector<double> A;      // (q, d) sum_j p_j (mu_j - y)/v_j
  std::vector<double> B;      // (q,) sum_j p_j / v_j
  std::vector<T> G, X;        // (tile_q, tile_n) dot products; shifted logits, then weights
  std::vector<T> D2;          // (tile_n,) squared distances (direct path)
  std::vector<T> C;           // (tile_q, d) weighted sums of one tile
  std::vector<T> col;         // (tile_n,) one column of a tile's components (value columns only)
  std::vector<double> ny;     // (q,) |row|^2
  std::vector<double> F;      // (q,) factor of row i of this tile's product C
  std::vector<double> scale;  // (q,) the same times the sum scale (built-in products)
  std::vector<char> near;     // (q,) row i's last tile had near-maximum candidates
  std::vector<float> cfrac;   // (q,) the fraction of row i's last tile that were candidates
  std::vector<int64_t> idx;   // (tile_n,) indices of one row's candidates
  std::vector<double> cd2;    // (tile_n,) their exact squared distances
  std::vector<uint8_t> live;  // (q, tile_n / 64) blocks of a tile where a row may have weight
  std::vector<uint8_t> weighted;  // (q,) row i may have weight on this tile
  std::vector<int64_t> slots;     // (q,) the row of A for each row slot of X (built-in products)
  std::vector<double> logit64, row64;  // (tile_n,) exact logits of one row; (d,) the row in float64
  std::vector<double> rows64, G64;  // (q, d) the rows in float64; (q, tile_n) float64 products
  std::vector<std::pair<int64_t, double>> exact;  // (column, exact logit) of one row's candidates
  std::vector<double> u;      // (M, d) the kernel draws of one query
  std::vector<double> rows_exact;  // (rows, d) the rows in float64 before their rounding to T (smoothed passes)
  // Pruned passes (prune_cpu.cpp): the rows' projections and residual norms,
  // a tile of lower bounds, each row's candidates, and a workspace for the
  // rows that go through the dense pass.
  std::vector<double> yp64, ry, ypn2, slack, thr, ref, cl;
  std::vector<float> yp32, lb;
  std::vector<int64_t> best;
  std::vector<std::vector<uint32_t>> cand;
  std::vector<std::vector<double>> cl_rows;  // the candidates' logits, per row
  std::vector<int64_t> dense_rows;
  std::unique_ptr<Workspace> sub;

  PartialState state() { return PartialState{m.data(), S.data(), E.data(), A.data(), B.data()}; }
  // Sizes the row states of q rows (d wide) and empties them.
  void start_states(int64_t q, int64_t d);
  // Sizes the scratch of a pass of q rows (tiles of tile_n components, nblk
  // live blocks each) and empties the states.
  void start(int64_t q, int64_t d, int64_t tile_n, int64_t nblk, bool own_gemm, bool direct);
};

// Workspaces kept between calls with their buffers allocated: a driver leases
// what it needs and the lease gives them back, so repeated calls skip the page
// faults and zero fills of fresh scratch memory. At most kKeep are kept.
template <class T>
class WorkspaceLease {
 public:
  static constexpr size_t kKeep = 8;
  explicit WorkspaceLease(size_t n);
  ~WorkspaceLease();
  WorkspaceLease(const WorkspaceLease&) = delete;
  WorkspaceLease& operator=(const WorkspaceLease&) = delete;
  Workspace<T>& operator[](size_t i) { return v_[i]; }
  const Workspace<T>& operator[](size_t i) const { return v_[i]; }

 private:
  std::vector<Workspace<T>> v_;
};

// Reduces the components [n_begin, n_end) (all by default) against q centred
// rows ws.rows (q x d): on return ws.state() holds, per row, (m, S, E) with m
// relative to c0, and A = sum_j exp(l_j - m)(mu_j - y_i)/v_j in float64.
// ref_d2 (optional, q): for each row an exact squared distance to some
// component, the least known over all components (a pass over a shard of
// the components gets them from the whole set): the reference of pruning.
// rows_prepared: with ref_d2, the rows' preparation for pruning is already
// in ws (prune_cpu.h copy_prepared).
template <class T>
void pass_rows(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
               const PassOptions& opt, int64_t n_begin = 0, int64_t n_end = -1,
               const double* ref_d2 = nullptr, bool rows_prepared = false);

// The same without pruning: every distance computed (pass_cpu.cpp).
template <class T>
void dense_pass(const Mixture<T>& mix, const LogitParams<T>& lp, int64_t q, Workspace<T>& ws,
                const PassOptions& opt, int64_t n_begin, int64_t n_end);

// Writes ws.rows[i] = y_i - centre (rounded to T) for q rows of y.
template <class T>
void centre_rows(const Mixture<T>& mix, const T* y, int64_t q, Workspace<T>& ws);

}  // namespace ledkde

