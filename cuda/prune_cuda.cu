// Certified pruning of the GPU pass at small t: the CPU's rule
// (cpp/src/prune_cpu.cpp) with the same projection (engine.h Projection,
// uploaded with the DeviceMixture), the same bound and the same margin:
//
//   1. project_rows_kernel: each row's projection P y (float64 products,
//      rounded to float), its residual norm r(y) and the slack that covers the
//      float rounding of its bounds (the CPU's formula);
//   2. references_kernel: each row's component nearest in the leading k/2
//      coordinates of the projection, and its exact squared distance D
//      (float64 coordinate differences); the cut is D + margin / inv2v with
//      margin = log(N / eps) + 6: a component beyond it has weight below
//      exp(-margin) of the reference's, N of them at most e^-6 eps of the sum;
//   3. candidates_kernel: the lower bounds
//      LB_j = |P y - P mu_j|^2 + (r(y) - r(mu_j))^2 - slack <= |y - mu_j|^2
//      and each row's list of the components with LB_j <= cut, in index
//      order (ballots and a prefix over the block's warps: no atomics, so the
//      lists are the same on every run); first over the probe's 1024
//      components only, counting: when most rows keep more than a quarter of
//      them (large t) the pass goes dense, as the CPU's probe decides;
//   4. pruned_rows_kernel (one block per row): the candidates' exact logits
//      (float64 coordinate differences, one warp per candidate), their
//      maximum, the weights (those below exp(-margin) of the maximum left out,
//      as the pruned ones), S, E, B and A = sum w mu - y B in a fixed order;
//   5. rows with no candidate or more than the cap go through the dense pass,
//      gathered into a block of their own, and their states are put back.
//
// The kernels are in prune_kernels.cuh; this file launches them. Off by
// default (set_prune): it has been compiled but not yet run on a device. The
// kernels, and this file with its launches rewritten as calls, run on the CPU
// under an emulation of the CUDA thread model and runtime in
// tests/test_cuda_emulation.py (against direct computations);
// tests/test_device.py holds the checks of the whole pass on a GPU (against the
// NumPy reference, the dense GPU pass and the CPU's pruned pass).
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "ledkde/logit_params.h"
#include "ledkde/prune_rule.h"
#include "pass_cuda.cuh"
#include "prune_kernels.cuh"

namespace ledkde::cuda {

namespace {

// A row keeps at most n / 4 candidates (prune_rule.h: more, and the gathers of
// their components cost about what the dense pass does) and at most kCapMax
// (Fashion-MNIST at t = 0.1 keeps about 5,400 of 60,000 per row: pruned, not
// sent dense). The rows go a batch at a time so that the lists and their
// logits stay within kListBytes (tests/cuda_emulation sets it small, to run
// several batches).
constexpr int64_t kCapMax = 16384;
#ifndef LEDKDE_PRUNE_LIST_BYTES
#define LEDKDE_PRUNE_LIST_BYTES (int64_t(1) << 30)
#endif
constexpr int64_t kListBytes = LEDKDE_PRUNE_LIST_BYTES;

std::atomic<bool> prune_flag{false};
std::atomic<int64_t> g_considered{0}, g_computed{0};

}  // namespace

bool set_prune(bool enabled) { return prune_flag.exchange(enabled); }
bool prune_enabled() { return prune_flag.load(); }

void gpu_prune_counts(int64_t* considered, int64_t* computed, bool reset) {
  *considered = reset ? g_considered.exchange(0) : g_considered.load();
  *computed = reset ? g_computed.exchange(0) : g_computed.load();
}

template <class T>
bool pruned_pass(const DeviceMixture<T>& mix, const T* rows, int64_t nrows, double t, RowStates& st) {
  const int64_t n = mix.n, d = mix.d, k = mix.proj_k;
  // Where the CPU's pass would prune (prune_cpu.cpp prune_applies).
  if (!prune_flag.load() || nrows == 0 || k == 0 || k > kMaxProjK || mix.has_weights || mix.has_variances ||
      d <= kDirectMaxDim || n >= (int64_t(1) << 32) || !prune_rule::pays(n, k, d))
    return false;
  const LogitParams<T> lp = make_logit_params(mix.params, t);
  const double inv2v = 0.5 / t;
  const double margin = prune_rule::margin<T>(n);
  const double md2 = margin / inv2v;
  const int64_t cap = std::min(n / prune_rule::kMaxKeptPart, kCapMax);
  // Rows a batch at a time, so that the lists and their logits (12 bytes an
  // entry) stay within kListBytes whatever the number of rows.
  const int64_t per_row = cap * static_cast<int64_t>(sizeof(uint32_t) + sizeof(double));
  const int64_t batch = std::clamp<int64_t>(kListBytes / per_row, 1, nrows);

  // Scratch for a batch: yp (rows x k), ypn2, ry, slack, thr (float), ref_d2
  // (double), count (int64), the lists (rows x cap) and their logits.
  const size_t q = static_cast<size_t>(batch);
  const size_t b_yp = aligned_bytes(q * k * sizeof(float)), b_f = aligned_bytes(q * sizeof(float));
  const size_t b_d = aligned_bytes(q * sizeof(double)), b_c = aligned_bytes(q * sizeof(int64_t));
  const size_t b_cand = aligned_bytes(q * cap * sizeof(uint32_t)), b_l = aligned_bytes(q * cap * sizeof(double));
  char* w = static_cast<char*>(st.work.get(b_yp + 4 * b_f + b_d + b_c + b_cand + b_l));
  float* yp = reinterpret_cast<float*>(w);
  float* ypn2 = reinterpret_cast<float*>(w + b_yp);
  float* ry = reinterpret_cast<float*>(w + b_yp + b_f);
  float* slack = reinterpret_cast<float*>(w + b_yp + 2 * b_f);
  float* thr = reinterpret_cast<float*>(w + b_yp + 3 * b_f);
  double* ref_d2 = reinterpret_cast<double*>(w + b_yp + 4 * b_f);
  int64_t* count = reinterpret_cast<int64_t*>(w + b_yp + 4 * b_f + b_d);
  uint32_t* cand = reinterpret_cast<uint32_t*>(w + b_yp + 4 * b_f + b_d + b_c);
  double* L = reinterpret_cast<double*>(w + b_yp + 4 * b_f + b_d + b_c + b_cand);

  const int ki = static_cast<int>(k), k1 = std::max(1, ki / 2);
  std::vector<int64_t> kept(q), dense;  // dense: the rows (of all batches) the lists do not serve
  int64_t computed = 0;
  for (int64_t r0 = 0; r0 < nrows; r0 += batch) {
    const int64_t nr = std::min(batch, nrows - r0);
    const T* rb = rows + r0 * d;
    project_rows_kernel<T><<<blocks_for(nr), kWarps * 32>>>(rb, nr, d, mix.basis_dev, ki,
                                                             std::sqrt(mix.params.norm2_max), yp, ypn2, ry, slack);
    check(cudaGetLastError(), "project_rows_kernel launch");
    const unsigned groups = grid_of(nr, kGroup);
    references_kernel<T><<<groups, kBoundThreads>>>(rb, nr, d, mix.mu_dev, mix.z_dev, ki, k1, mix.zn2p_dev, n, yp,
                                                    md2, ref_d2, thr);
    check(cudaGetLastError(), "references_kernel launch");
    if (r0 == 0) {
      // The probe (first batch): rows keeping more than a quarter of the first
      // components would go dense; when most would, the whole pass does.
      const int64_t nb = std::min(prune_rule::kLbTile, n);
      candidates_kernel<<<groups, kBoundThreads>>>(mix.z_dev, ki, mix.zn2_dev, mix.resid_dev, 0, nb, nr, yp, ypn2,
                                                   ry, slack, thr, cap, nullptr, count);
      check(cudaGetLastError(), "candidates_kernel launch (probe)");
      check(cudaMemcpy(kept.data(), count, nr * sizeof(int64_t), cudaMemcpyDeviceToHost), "download the probe");
      int64_t many = 0;
      for (int64_t i = 0; i < nr; ++i) many += kept[i] * prune_rule::kMaxKeptPart > nb;
      if (2 * many > nr) {
        g_considered += nrows * n;
        g_computed += nrows * n;
        return false;
      }
    }
    candidates_kernel<<<groups, kBoundThreads>>>(mix.z_dev, ki, mix.zn2_dev, mix.resid_dev, 0, n, nr, yp, ypn2, ry,
                                                 slack, thr, cap, cand, count);
    check(cudaGetLastError(), "candidates_kernel launch");
    pruned_rows_kernel<T><<<static_cast<unsigned>(nr), kRowThreads>>>(
        rb, d, mix.mu_dev, cand, cap, count, inv2v, margin, lp.c0, L, st.m.get() + r0, st.S.get() + r0,
        st.E.get() + r0, st.A.get() + r0 * d, st.B.get() + r0);
    check(cudaGetLastError(), "pruned_rows_kernel launch");
    check(cudaMemcpy(kept.data(), count, nr * sizeof(int64_t), cudaMemcpyDeviceToHost), "download the counts");
    for (int64_t i = 0; i < nr; ++i) {
      const bool go_dense = kept[i] == 0 || kept[i] > cap;
      if (go_dense) dense.push_back(r0 + i);
      computed += go_dense ? n : kept[i];
    }
  }

  // The rows the lists do not serve: the dense pass over a block of their own.
  if (!dense.empty()) {
    const int64_t qd = static_cast<int64_t>(dense.size());
    Buffer<int64_t> idx(dense.size());
    idx.upload(dense.data(), dense.size());
    Buffer<T> sub_rows(static_cast<size_t>(qd * d));
    gather_rows_kernel<T><<<grid_of(qd * d, 256), 256>>>(rows, idx.get(), qd, d, sub_rows.get());
    check(cudaGetLastError(), "gather_rows_kernel launch");
    RowStates sub(qd, d);
    dense_pass(mix, sub_rows.get(), qd, t, sub);
    scatter_states_kernel<<<grid_of(qd * d, 256), 256>>>(idx.get(), qd, d, sub.state(), st.state());
    check(cudaGetLastError(), "scatter_states_kernel launch");
    check(cudaDeviceSynchronize(), "the dense rows");  // before idx, sub_rows and sub are freed
  }
  g_considered += nrows * n;
  g_computed += computed;
  return true;
}

template bool pruned_pass(const DeviceMixture<float>&, const float*, int64_t, double, RowStates&);
template bool pruned_pass(const DeviceMixture<double>&, const double*, int64_t, double, RowStates&);

}  // namespace ledkde::cuda
