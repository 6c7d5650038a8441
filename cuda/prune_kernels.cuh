// The kernels of the GPU's pruned pass (prune_cuda.cu runs them; the steps
// are described there). Device code only, on the helpers of device_helpers.cuh
// and the shared rule of ledkde/prune_rule.h, so that
// tests/cuda_emulation runs them as written on the CPU and checks each
// against a direct computation.
#pragma once

#include <cstdint>

#include "device_helpers.cuh"
#include "ledkde/engine.h"
#include "ledkde/prune_rule.h"
#include "ledkde/tile_math.h"

namespace ledkde::cuda {

namespace {

constexpr int kGroup = 8;                    // rows per block of the bound kernels (one warp each at the end)
constexpr int kBoundThreads = 32 * kGroup;   // so a block has kGroup warps
constexpr int kMaxProjK = 64;                // projection coordinates kept in shared memory (Python: min(64, d/4))

// Each row's projection yp (nrows x k, float), |yp|^2 of the rounded values,
// residual norm and slack (prune_cpu.cpp prepare_rows): one warp per row.
template <class T>
__global__ void project_rows_kernel(const T* __restrict__ rows, int64_t nrows, int64_t d,
                                    const double* __restrict__ basis, int k, double reach, float* yp, float* ypn2,
                                    float* ry, float* slack) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (r >= nrows) return;
  const T* y = rows + r * d;
  double y2 = 0.0;
  for (int64_t e = lane; e < d; e += 32) {
    const double v = static_cast<double>(y[e]);
    y2 = fma(v, v, y2);
  }
  y2 = warp_sum(y2);
  double p2 = 0.0, pf2 = 0.0;
  for (int c = 0; c < k; ++c) {
    const double* b = basis + static_cast<int64_t>(c) * d;
    double s = 0.0;
    for (int64_t e = lane; e < d; e += 32) s = fma(b[e], static_cast<double>(y[e]), s);
    s = warp_sum(s);  // every lane holds it
    const float f = static_cast<float>(s);
    p2 = fma(s, s, p2);
    pf2 = fma(static_cast<double>(f), static_cast<double>(f), pf2);
    if (lane == 0) yp[r * k + c] = f;
  }
  if (lane != 0) return;
  ypn2[r] = static_cast<float>(pf2);
  ry[r] = static_cast<float>(sqrt(fmax(0.0, y2 - p2)));
  slack[r] = static_cast<float>(prune_rule::bound_slack(y2, reach, k));
}

// The lesser of two (value, index) pairs: the least value, then the least index.
__device__ __forceinline__ void min_pair(float& v, long long& j, float v2, long long j2) {
  if (v2 < v || (v2 == v && j2 < j)) {
    v = v2;
    j = j2;
  }
}

// Each row's reference: the component least in |P1 mu_j|^2 - 2 <P1 y, P1 mu_j>
// (P1: the first k1 coordinates), then its exact squared distance ref_d2 and
// the cut thr = float(ref_d2 + md2). kGroup rows per block; each thread takes
// every kBoundThreads-th component for all of them.
template <class T>
__global__ void __launch_bounds__(kBoundThreads)
    references_kernel(const T* __restrict__ rows, int64_t nrows, int64_t d, const T* __restrict__ mu,
                      const float* __restrict__ z, int k, int k1, const float* __restrict__ zn2p, int64_t n,
                      const float* __restrict__ yp, double md2, double* ref_d2, float* thr) {
  __shared__ float sy[kGroup][kMaxProjK];
  __shared__ float sv[kGroup][kGroup];  // [row][warp]
  __shared__ long long sj[kGroup][kGroup];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kGroup;
  for (int e = threadIdx.x; e < kGroup * k1; e += kBoundThreads) {
    const int g = e / k1, c = e % k1;
    sy[g][c] = r0 + g < nrows ? yp[(r0 + g) * k + c] : 0.0f;
  }
  __syncthreads();
  float best[kGroup];
  long long at[kGroup];
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    best[g] = INFINITY;
    at[g] = n;  // none yet (made 0 below if no value is finite)
  }
  for (int64_t j = threadIdx.x; j < n; j += kBoundThreads) {
    const float* zj = z + j * k;
    float acc[kGroup];
#pragma unroll
    for (int g = 0; g < kGroup; ++g) acc[g] = 0.0f;
    for (int c = 0; c < k1; ++c) {
      const float zc = zj[c];
#pragma unroll
      for (int g = 0; g < kGroup; ++g) acc[g] = fmaf(sy[g][c], zc, acc[g]);
    }
    const float base = zn2p[j];
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const float v = base - 2.0f * acc[g];
      if (v < best[g]) {  // strict: a thread's earliest index among equals
        best[g] = v;
        at[g] = j;
      }
    }
  }
#pragma unroll
  for (int g = 0; g < kGroup; ++g) {
    float v = best[g];
    long long j = at[g];
    for (int o = 16; o > 0; o >>= 1) {
      const float v2 = __shfl_xor_sync(kFull, v, o);
      const long long j2 = __shfl_xor_sync(kFull, j, o);
      min_pair(v, j, v2, j2);
    }
    if (lane == 0) {
      sv[g][warp] = v;
      sj[g][warp] = j;
    }
  }
  __syncthreads();
  // Warp g: row r0 + g.
  const int64_t r = r0 + warp;
  if (r >= nrows) return;
  float v = sv[warp][0];
  long long j = sj[warp][0];
  for (int w = 1; w < kGroup; ++w) min_pair(v, j, sv[warp][w], sj[warp][w]);
  if (j >= n) j = 0;  // no finite value: any component is a valid reference
  const double s = warp_dist2(rows + r * d, mu + static_cast<int64_t>(j) * d, d);
  if (lane == 0) {
    ref_d2[r] = s;
    thr[r] = static_cast<float>(s + md2);
  }
}

// Each row's candidates among components [n_lo, n_hi): count[r] of them,
// their offsets from n_lo (in increasing order) into cand[r * cap ...] up to
// cap (cand null: counted only, the probe). kGroup rows per block; each step
// takes kBoundThreads consecutive components, one per thread, and writes each
// row's kept ones at the row's running count plus those of the lower lanes.
__global__ void __launch_bounds__(kBoundThreads)
    candidates_kernel(const float* __restrict__ z, int k, const float* __restrict__ zn2,
                      const float* __restrict__ rz, int64_t n_lo, int64_t n_hi, int64_t nrows,
                      const float* __restrict__ yp, const float* __restrict__ ypn2, const float* __restrict__ ry,
                      const float* __restrict__ slack, const float* __restrict__ thr, int64_t cap, uint32_t* cand,
                      int64_t* count) {
  __shared__ float sy[kGroup][kMaxProjK];
  __shared__ float sn2[kGroup], sr[kGroup], ssl[kGroup], scut[kGroup];
  __shared__ int wc[kGroup][kGroup];  // [row][warp]: kept in this step
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * kGroup;
  for (int e = threadIdx.x; e < kGroup * k; e += kBoundThreads) {
    const int g = e / k, c = e % k;
    sy[g][c] = r0 + g < nrows ? yp[(r0 + g) * k + c] : 0.0f;
  }
  if (threadIdx.x < kGroup) {
    const int g = threadIdx.x;
    const bool ok = r0 + g < nrows;
    sn2[g] = ok ? ypn2[r0 + g] : 0.0f;
    sr[g] = ok ? ry[r0 + g] : 0.0f;
    ssl[g] = ok ? slack[r0 + g] : 0.0f;
    scut[g] = ok ? thr[r0 + g] : -INFINITY;  // rows past the end keep nothing
  }
  __syncthreads();
  const unsigned lower = (1u << lane) - 1u;  // the lanes below this one
  int64_t kept[kGroup];
#pragma unroll
  for (int g = 0; g < kGroup; ++g) kept[g] = 0;
  for (int64_t j0 = n_lo; j0 < n_hi; j0 += kBoundThreads) {
    const int64_t j = j0 + threadIdx.x;
    const bool in = j < n_hi;
    float acc[kGroup];
#pragma unroll
    for (int g = 0; g < kGroup; ++g) acc[g] = 0.0f;
    float zn = 0.0f, rj = 0.0f;
    if (in) {
      const float* zj = z + j * k;
      for (int c = 0; c < k; ++c) {
        const float zc = zj[c];
#pragma unroll
        for (int g = 0; g < kGroup; ++g) acc[g] = fmaf(sy[g][c], zc, acc[g]);
      }
      zn = zn2[j];
      rj = rz[j];
    }
    unsigned ballot[kGroup];
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      const float lb = prune_rule::lower_bound(sn2[g], zn, acc[g], sr[g], rj, ssl[g]);
      ballot[g] = __ballot_sync(kFull, in && lb <= scut[g]);
      if (lane == 0) wc[g][warp] = __popc(ballot[g]);
    }
    __syncthreads();
#pragma unroll
    for (int g = 0; g < kGroup; ++g) {
      int before = 0, total = 0;
      for (int w = 0; w < kGroup; ++w) {
        const int c = wc[g][w];
        total += c;
        before += w < warp ? c : 0;
      }
      if (cand && ((ballot[g] >> lane) & 1u)) {
        const int64_t pos = kept[g] + before + __popc(ballot[g] & lower);
        if (pos < cap) cand[(r0 + g) * cap + pos] = static_cast<uint32_t>(j - n_lo);
      }
      kept[g] += total;
    }
    __syncthreads();  // wc is written again in the next step
  }
#pragma unroll
  for (int g = 0; g < kGroup; ++g)
    if (threadIdx.x == g && r0 + g < nrows) count[r0 + g] = kept[g];
}

// One block per row with 1 <= count <= cap candidates: exact logits into
// L[r * cap ...], then weights in their place, and the row's final state
// (m with c0, S, E, B, A = sum w mu - y B), as the dense pass leaves it.
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    pruned_rows_kernel(const T* __restrict__ rows, int64_t d, const T* __restrict__ mu,
                       const uint32_t* __restrict__ cand, int64_t cap, const int64_t* __restrict__ count,
                       double inv2v, double margin, double c0, double* L, double* m_st, double* S_st, double* E_st,
                       double* A_st, double* B_st) {
  __shared__ double sw[kRowThreads];
  __shared__ uint32_t sc[kRowThreads];
  const int64_t r = blockIdx.x;
  const int64_t nc = count[r];
  if (nc == 0 || nc > cap) return;  // the dense pass's rows
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const T* y = rows + r * d;
  const uint32_t* cr = cand + r * cap;
  double* Lr = L + r * cap;
  for (int64_t c = warp; c < nc; c += kRowThreads / 32) {
    const double s = warp_dist2(y, mu + static_cast<int64_t>(cr[c]) * d, d);
    if (lane == 0) Lr[c] = -s * inv2v;
  }
  __syncthreads();  // the logits, written by lane 0 of each warp, are read by all
  double mx = neg_inf();
  for (int64_t c = threadIdx.x; c < nc; c += kRowThreads) mx = fmax(mx, Lr[c]);
  mx = block_reduce(mx, true);
  // Below this a weight is certified negligible, as the pruned ones.
  const double skip = mx - margin;
  double S = 0.0, E = 0.0;
  for (int64_t c = threadIdx.x; c < nc; c += kRowThreads) {
    const double l = Lr[c];
    double w = 0.0;
    if (l >= skip) {
      const T x = static_cast<T>(l - mx);
      const T p = exp_nonpositive<T>(x);
      S += static_cast<double>(p);
      E += static_cast<double>(entropy_term<T>(p, x));
      w = static_cast<double>(p);
    }
    Lr[c] = w;  // each thread rewrites only the entries it read
  }
  S = block_reduce(S, false);
  E = block_reduce(E, false);
  const double scale = 2.0 * inv2v, B = S * scale;  // w / v with v = t
  // A: each thread a coordinate, the candidates in order, a block of them
  // staged in shared memory at a time.
  for (int64_t e0 = 0; e0 < d; e0 += kRowThreads) {
    const int64_t e = e0 + threadIdx.x;
    double a = 0.0;
    for (int64_t c0 = 0; c0 < nc; c0 += kRowThreads) {
      __syncthreads();  // the previous block of sw / sc is no longer read (and Lr holds weights)
      if (c0 + threadIdx.x < nc) {
        sw[threadIdx.x] = Lr[c0 + threadIdx.x];
        sc[threadIdx.x] = cr[c0 + threadIdx.x];
      }
      __syncthreads();
      const int64_t nb = nc - c0 < kRowThreads ? nc - c0 : kRowThreads;
      if (e < d)
        for (int64_t u = 0; u < nb; ++u)
          if (sw[u] != 0.0) a = fma(sw[u], static_cast<double>(mu[static_cast<int64_t>(sc[u]) * d + e]), a);
    }
    if (e < d) A_st[r * d + e] = a * scale - static_cast<double>(y[e]) * B;
  }
  if (threadIdx.x == 0) {
    m_st[r] = mx + c0;
    S_st[r] = S;
    E_st[r] = E;
    B_st[r] = B;
  }
}

template <class T>
__global__ void gather_rows_kernel(const T* __restrict__ rows, const int64_t* __restrict__ idx, int64_t count,
                                   int64_t d, T* out) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= count * d) return;
  out[e] = rows[idx[e / d] * d + e % d];
}

// The dense pass's states of the gathered rows back into the pass's states.
__global__ void scatter_states_kernel(const int64_t* __restrict__ idx, int64_t count, int64_t d,
                                      PartialState from, PartialState to) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= count * d) return;
  const int64_t r = e / d, c = e % d, i = idx[r];
  to.A[i * d + c] = from.A[e];
  if (c != 0) return;
  to.m[i] = from.m[r];
  to.S[i] = from.S[r];
  to.E[i] = from.E[r];
  to.B[i] = from.B[r];
}

}  // namespace

}  // namespace ledkde::cuda
