// The CUDA score pass: every row of a block of (centred) points against every
// component of a device-resident mixture, reduced to the per-row states of
// tile_math.h (m, S, E and the float64 sums A, B). The score, the smoothed
// score and the samplers all call run_pass().
//
// Logits l_ij = c'_j - |y_i - mu_j|^2 inv2v_j (+ c0 at the end), with the
// per-component constants of logit_params.h, the same as the CPU pass.
//
// d <= kDirectMaxDim (direct_kernel): one thread per row, components staged in
// shared memory; distances by coordinate differences in float64 (exact on the
// values as given), the state moved onto each new maximum as it appears, and
// A summed as p (mu - y) / v directly (exact differences of nearby points).
//
// d > kDirectMaxDim, per chunk of components (as the CPU's tiles, larger):
//  1. logits_kernel: G = Y M^T on the float64 tensor cores (WMMA) and the
//     expansion l = c' - (|y|^2 + |mu|^2 - 2G) inv2v in float64 into a (rows x
//     chunk) buffer L (bounded: the chunk shrinks as the rows grow);
//  2. weights_kernel (one block per row): the chunk's maximum; where the
//     expansion's error bound delta exceeds the tolerance (CPU rule, 64 eps),
//     every logit within log(delta/tol) + 3 + 2 delta of it is recomputed by
//     coordinate differences in float64 (never needed for float data, whose
//     products are summed in float64); then the weights P = exp(l - m_c) / v,
//     the chunk's S, E, B, and the merge into the running state (lse_merge),
//     which yields each row's rescale factors alpha (old sums) and gamma (chunk);
//  3. accumulate_kernel: C = P M by the register-blocked SIMT product
//     (gemm_tiles.cuh; with set_tf32(true) and float data, accumulate_tf32_kernel
//     on the TF32 tensor cores), split over k so that the GPU fills; the
//     slices are summed in fixed order, so results do not depend on
//     scheduling; combine_kernel: A = alpha A + gamma C in float64.
// Finally A -= y B and m += c0 (finish_kernel).
//
// At small t, with pruning on (set_prune), run_pass first tries the pruned
// pass of prune_cuda.cu, which skips the components that provably carry no
// weight and sends only the rows it cannot prune through this one.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>
#include <type_traits>
#include <utility>
#include <vector>

#include <mma.h>

#include "gemm_tiles.cuh"
#include "ledkde/logit_params.h"
#include "pass_cuda.cuh"

namespace ledkde::cuda {

namespace {

constexpr int kStage = 128;     // direct path: rows per block, components staged per step
constexpr int kStash = 4;       // weights_kernel: exact logits kept in registers per thread
constexpr int64_t kTileElems = int64_t(1) << 25;  // elements of the L and P buffers (256 + 128 MiB in float)
constexpr int64_t kMaxSliceK = 4096;  // components summed in the working precision before float64

// Per-component constants on the device: c'_j and inv2v_j (null: c' = 0 and
// inv2v_j = inv2v for every j, the empirical case).
template <class T>
struct DeviceLogits {
  LogitParams<T> lp;
  double inv2v = 0.0;  // 1/(2t) in float64 when the variances are equal
  const T* cprime = nullptr;
  const T* inv2v_j = nullptr;
};

template <class T>
DeviceLogits<T> device_logits(const DeviceMixture<T>& mix, double t, Scratch& params) {
  DeviceLogits<T> dl;
  dl.lp = make_logit_params(mix.params, t);
  dl.inv2v = 0.5 / t;
  if (dl.lp.per_component) {
    T* p = static_cast<T*>(params.get(2 * static_cast<size_t>(mix.n) * sizeof(T)));
    check(cudaMemcpy(p, dl.lp.cprime.data(), mix.n * sizeof(T), cudaMemcpyHostToDevice), "upload c'");
    check(cudaMemcpy(p + mix.n, dl.lp.inv2v_j.data(), mix.n * sizeof(T), cudaMemcpyHostToDevice),
          "upload 1/(2v)");
    dl.cprime = p;
    dl.inv2v_j = p + mix.n;
  }
  return dl;
}

// ------------------------------------------------------------------ d <= 8
template <class T, int D>
__global__ void __launch_bounds__(kStage)
    direct_kernel(const T* __restrict__ mu, const T* __restrict__ cprime, const T* __restrict__ inv2v_j,
                  double inv2v, int64_t n, const T* __restrict__ rows, int64_t nrows, double c0, double* m_out,
                  double* S_out, double* E_out, double* A_out, double* B_out) {
  __shared__ double smu[kStage][D];
  __shared__ double sc[kStage], sk[kStage];
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kStage + threadIdx.x;
  const bool active = r < nrows;
  double y[D], A[D];
#pragma unroll
  for (int k = 0; k < D; ++k) {
    y[k] = active ? static_cast<double>(rows[r * D + k]) : 0.0;
    A[k] = 0.0;
  }
  LseScalars st = lse_init();
  double B = 0.0;  // sum p / v (smooth_estimator.h needs it per row)
  for (int64_t n0 = 0; n0 < n; n0 += kStage) {
    __syncthreads();
    {
      const int64_t j = n0 + threadIdx.x;
      const bool ok = j < n;
#pragma unroll
      for (int k = 0; k < D; ++k) smu[threadIdx.x][k] = ok ? static_cast<double>(mu[j * D + k]) : 0.0;
      // Padding components get logit -inf: weight 0.
      sc[threadIdx.x] = !ok ? neg_inf() : cprime ? static_cast<double>(cprime[j]) : 0.0;
      sk[threadIdx.x] = inv2v_j && ok ? static_cast<double>(inv2v_j[j]) : inv2v;
    }
    __syncthreads();
    if (!active) continue;
#pragma unroll 4
    for (int u = 0; u < kStage; ++u) {
      double d2 = 0.0;
#pragma unroll
      for (int k = 0; k < D; ++k) {
        const double diff = y[k] - smu[u][k];
        d2 = fma(diff, diff, d2);
      }
      const double l = sc[u] - d2 * sk[u];
      // A new maximum (a few times per row once the nearest components are
      // seen): move the state onto it.
      if (l > st.m) {
        const double a = lse_move_to(st, l);
        B *= a;
#pragma unroll
        for (int k = 0; k < D; ++k) A[k] *= a;
      }
      // l = m = -inf (zero weights so far) gives x = NaN, which exp_nonpositive
      // and entropy_term map to 0.
      const T x = static_cast<T>(l - st.m);
      const T p = exp_nonpositive<T>(x);
      st.S += static_cast<double>(p);
      st.E += static_cast<double>(entropy_term<T>(p, x));
      const double pv = static_cast<double>(p) * 2.0 * sk[u];
      B += pv;
#pragma unroll
      for (int k = 0; k < D; ++k) A[k] = fma(pv, smu[u][k] - y[k], A[k]);
    }
  }
  if (!active) return;
#pragma unroll
  for (int k = 0; k < D; ++k) A_out[r * D + k] = A[k];
  m_out[r] = st.m == neg_inf() ? st.m : st.m + c0;
  S_out[r] = st.S;
  B_out[r] = B;
  E_out[r] = st.E;
}

template <class T, int D>
void launch_direct(const DeviceMixture<T>& mix, const DeviceLogits<T>& dl, const T* rows, int64_t nrows,
                   RowStates& st) {
  const unsigned blocks = static_cast<unsigned>((nrows + kStage - 1) / kStage);
  direct_kernel<T, D><<<blocks, kStage>>>(mix.mu_dev, dl.cprime, dl.inv2v_j, dl.inv2v, mix.n, rows, nrows,
                                          dl.lp.c0, st.m.get(), st.S.get(), st.E.get(), st.A.get(), st.B.get());
  check(cudaGetLastError(), "direct_kernel launch");
}

template <class T>
void run_direct(const DeviceMixture<T>& mix, const DeviceLogits<T>& dl, const T* rows, int64_t nrows,
                RowStates& st) {
  switch (mix.d) {
    case 1: return launch_direct<T, 1>(mix, dl, rows, nrows, st);
    case 2: return launch_direct<T, 2>(mix, dl, rows, nrows, st);
    case 3: return launch_direct<T, 3>(mix, dl, rows, nrows, st);
    case 4: return launch_direct<T, 4>(mix, dl, rows, nrows, st);
    case 5: return launch_direct<T, 5>(mix, dl, rows, nrows, st);
    case 6: return launch_direct<T, 6>(mix, dl, rows, nrows, st);
    case 7: return launch_direct<T, 7>(mix, dl, rows, nrows, st);
    case 8: return launch_direct<T, 8>(mix, dl, rows, nrows, st);
    default: throw std::logic_error("ledkde CUDA: direct path asked for d > 8");
  }
}

// ------------------------------------------------------------------ d > 8
// Row norms, the expansion's error bound per row (CPU rule), empty states.
template <class T>
__global__ void prepare_rows_kernel(const T* __restrict__ rows, int64_t nrows, int64_t d, double kappa_eps,
                                    double norm2_max, double inv2v_max, double cprime_abs_max, double* ny,
                                    double* delta, double* m, double* S, double* E, double* B) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (r >= nrows) return;
  double s = 0.0;
  for (int64_t c = lane; c < d; c += 32) {
    const double v = static_cast<double>(rows[r * d + c]);
    s += v * v;
  }
  s = warp_sum(s);
  if (lane != 0) return;
  ny[r] = s;
  delta[r] = expansion_error(kappa_eps, s, norm2_max, inv2v_max, cprime_abs_max);
  m[r] = neg_inf();
  S[r] = 0.0;
  E[r] = 0.0;
  B[r] = 0.0;
}

// L[r][j] = c'_j - (|y_r|^2 + |mu_j|^2 - 2 y_r . mu_j) inv2v_j for the chunk's
// components. The dot products run on the float64 tensor cores (WMMA 8x8x4,
// IEEE double fused multiply-adds: float data are multiplied exactly and
// summed in float64, so for float data the expansion's rounding stays far
// below the tolerance and needs no recompute). Block tile 128 x 64, 8 warps of
// 32 x 32, k staged 8 at a time in shared memory (double-buffered through
// registers); the epilogue goes through a per-warp 8 x 8 staging tile.
constexpr int kLM = 128, kLN = 64, kLK = 8;
constexpr int kLKP = kLK + 2;  // padded row: 80 bytes, so every fragment start is 32-byte aligned
constexpr int kLWM = kLM / 4, kLWN = kLN / 2;  // warp tile (8 warps as 4 x 2)
constexpr int kLFM = kLWM / 8, kLFN = kLWN / 8;  // 8 x 8 fragments per warp tile

template <class T>
__global__ void __launch_bounds__(kGemmThreads, 2)
    logits_kernel(const T* __restrict__ rows, int64_t nrows, int64_t d, const T* __restrict__ mu, int64_t nc,
                  const double* __restrict__ norm2, const T* __restrict__ cprime, const T* __restrict__ inv2v_j,
                  double inv2v, const double* __restrict__ ny, double* L, int64_t ldL) {
  namespace wmma = nvcuda::wmma;
  __shared__ __align__(32) double As[2][kLM][kLKP];
  __shared__ __align__(32) double Bs[2][kLN][kLKP];
  __shared__ __align__(32) double Cw[kGemmThreads / 32][64];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / 2, wn = warp % 2;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kLM, n0 = static_cast<int64_t>(blockIdx.x) * kLN;
  wmma::fragment<wmma::accumulator, 8, 8, 4, double> acc[kLFM][kLFN];
#pragma unroll
  for (int i = 0; i < kLFM; ++i)
#pragma unroll
    for (int j = 0; j < kLFN; ++j) wmma::fill_fragment(acc[i][j], 0.0);
  constexpr int kPerA = kLM * kLK / kGemmThreads, kPerB = kLN * kLK / kGemmThreads;
  T ra[kPerA], rb[kPerB];
  auto load = [&](int64_t k0) {
#pragma unroll
    for (int u = 0; u < kPerA; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      const int64_t r = e / kLK, k = k0 + e % kLK;
      ra[u] = (m0 + r < nrows && k < d) ? rows[(m0 + r) * d + k] : T(0);
    }
#pragma unroll
    for (int u = 0; u < kPerB; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      const int64_t r = e / kLK, k = k0 + e % kLK;
      rb[u] = (n0 + r < nc && k < d) ? mu[(n0 + r) * d + k] : T(0);
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int u = 0; u < kPerA; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      As[buf][e / kLK][e % kLK] = static_cast<double>(ra[u]);
    }
#pragma unroll
    for (int u = 0; u < kPerB; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      Bs[buf][e / kLK][e % kLK] = static_cast<double>(rb[u]);
    }
  };
  load(0);
  store(0);
  __syncthreads();
  int buf = 0;
  for (int64_t k0 = 0; k0 < d; k0 += kLK) {
    const bool more = k0 + kLK < d;
    if (more) load(k0 + kLK);
#pragma unroll
    for (int kk = 0; kk < kLK; kk += 4) {
      wmma::fragment<wmma::matrix_a, 8, 8, 4, double, wmma::row_major> a[kLFM];
      wmma::fragment<wmma::matrix_b, 8, 8, 4, double, wmma::col_major> b[kLFN];
#pragma unroll
      for (int i = 0; i < kLFM; ++i) wmma::load_matrix_sync(a[i], &As[buf][wm * kLWM + i * 8][kk], kLKP);
#pragma unroll
      for (int j = 0; j < kLFN; ++j) wmma::load_matrix_sync(b[j], &Bs[buf][wn * kLWN + j * 8][kk], kLKP);
#pragma unroll
      for (int i = 0; i < kLFM; ++i)
#pragma unroll
        for (int j = 0; j < kLFN; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    // The other buffer was last read in the previous step, before its barrier.
    if (more) store(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }
#pragma unroll
  for (int i = 0; i < kLFM; ++i)
#pragma unroll
    for (int j = 0; j < kLFN; ++j) {
      wmma::store_matrix_sync(Cw[warp], acc[i][j], 8, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 64; e += 32) {
        const int64_t r = m0 + wm * kLWM + i * 8 + e / 8, c = n0 + wn * kLWN + j * 8 + e % 8;
        if (r >= nrows || c >= nc) continue;
        const double d2 = ny[r] + norm2[c] - 2.0 * Cw[warp][e];
        const double k = inv2v_j ? static_cast<double>(inv2v_j[c]) : inv2v;
        const double cp = cprime ? static_cast<double>(cprime[c]) : 0.0;
        L[r * ldL + c] = cp - d2 * k;
      }
      __syncwarp();
    }
}

// Exact logit of component j for the row (every lane must call it).
template <class T>
__device__ double exact_logit(const T* __restrict__ row, const T* __restrict__ muj, int64_t d, double cp,
                              double k) {
  return cp - warp_dist2(row, muj, d) * k;
}

// One block per row: the chunk's weights P (from its logits L), the chunk's
// sums, and the merge into the row's running state.
template <class T>
__global__ void __launch_bounds__(kRowThreads)
    weights_kernel(const double* __restrict__ L, T* P, int64_t ldL, int64_t nc, const T* __restrict__ rows,
                   int64_t d, const T* __restrict__ mu, const T* __restrict__ cprime,
                   const T* __restrict__ inv2v_j, double inv2v, bool per_var, double tol,
                   const double* __restrict__ delta, double* m_st, double* S_st, double* E_st, double* B_st,
                   double* alpha, double* gamma) {
  const int64_t r = blockIdx.x;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const double* Lr = L + r * ldL;
  T* Pr = P + r * ldL;
  const T* row = rows + r * d;
  auto cp_of = [&](int64_t j) { return cprime ? static_cast<double>(cprime[j]) : 0.0; };
  auto k_of = [&](int64_t j) { return inv2v_j ? static_cast<double>(inv2v_j[j]) : inv2v; };

  double lmax = neg_inf();
  for (int64_t e = threadIdx.x; e < nc; e += kRowThreads) lmax = fmax(lmax, Lr[e]);
  const double m_approx = block_reduce(lmax, true);

  double m_c = m_approx, S = 0.0, E = 0.0, B = 0.0;
  if (m_approx != neg_inf()) {
    // Candidates: logits that could carry weight above the tolerance once exact.
    const double dlt = delta[r];
    const bool exact = dlt > tol;
    const double cut = exact ? m_approx - candidate_margin(dlt, tol) : 0.0;
    int64_t stash_at[kStash];
    double stash_val[kStash];
    int stashed = 0;
    if (exact) {
      double emax = neg_inf();
      // Each warp walks its own 32-wide groups, so every lane of a warp takes
      // part in every cooperative recompute.
      for (int64_t base = 32 * warp; base < nc; base += kRowThreads) {
        const int64_t e = base + lane;
        unsigned mask = __ballot_sync(kFull, e < nc && Lr[e] >= cut);
        while (mask) {
          const int b = __ffs(mask) - 1;
          mask &= mask - 1;
          const int64_t j = base + b;
          const double lx = exact_logit(row, mu + j * d, d, cp_of(j), k_of(j));
          emax = fmax(emax, lx);
          if (lane == b && stashed < kStash) {
            stash_at[stashed] = j;
            stash_val[stashed++] = lx;
          }
        }
      }
      m_c = block_reduce(emax, true);
    }
    int used = 0;
    for (int64_t base = 32 * warp; base < nc; base += kRowThreads) {
      const int64_t e = base + lane;
      const bool in = e < nc;
      const double approx = in ? Lr[e] : neg_inf();
      const bool cand = exact && in && Lr[e] >= cut;
      double val = approx;
      const bool from_stash = cand && used < stashed && stash_at[used] == e;
      if (from_stash) val = stash_val[used++];
      // Candidates beyond the stash (many comparable logits): recompute, the
      // whole warp together.
      unsigned mask = __ballot_sync(kFull, cand && !from_stash);
      while (mask) {
        const int b = __ffs(mask) - 1;
        mask &= mask - 1;
        const int64_t j = base + b;
        const double lx = exact_logit(row, mu + j * d, d, cp_of(j), k_of(j));
        if (lane == b) val = lx;
      }
      if (!in) continue;
      const T x = static_cast<T>(val - m_c);
      const T p = exp_nonpositive<T>(x);
      S += static_cast<double>(p);
      E += static_cast<double>(entropy_term<T>(p, x));
      const T w = per_var ? static_cast<T>(p * T(2) * static_cast<T>(k_of(e))) : p;
      B += static_cast<double>(w);
      Pr[e] = w;
    }
  } else {
    for (int64_t e = threadIdx.x; e < nc; e += kRowThreads) Pr[e] = T(0);
  }
  S = block_reduce(S, false);
  E = block_reduce(E, false);
  B = block_reduce(B, false);
  if (threadIdx.x != 0) return;
  LseScalars run{m_st[r], S_st[r], E_st[r]};
  const MergeScales f = lse_merge(run, LseScalars{m_c, S, E});
  // Equal variances: 1/v is applied here rather than per column.
  const double scale = per_var ? 1.0 : 2.0 * inv2v;
  m_st[r] = run.m;
  S_st[r] = run.S;
  E_st[r] = run.E;
  B_st[r] = B_st[r] * f.fa + B * f.fb * scale;
  alpha[r] = f.fa;
  gamma[r] = f.fb * scale;
}

// part[z] = P M over the z-th slice of the chunk's components.
template <class T>
__global__ void __launch_bounds__(kGemmThreads)
    accumulate_kernel(const T* __restrict__ P, int64_t ldP, int64_t nrows, int64_t nc, const T* __restrict__ mu,
                      int64_t d, int64_t slice, T* part) {
  using C = GemmCfg<T>;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * C::BM, n0 = static_cast<int64_t>(blockIdx.x) * C::BN;
  const int64_t k0 = static_cast<int64_t>(blockIdx.z) * slice, k1 = nc < k0 + slice ? nc : k0 + slice;
  GemmTile<T> tile;
  gemm_block<T, true>(P, ldP, mu, d, nrows, d, k0, k1, m0, n0, tile);
  T* out = part + static_cast<int64_t>(blockIdx.z) * nrows * d;
#pragma unroll
  for (int i = 0; i < C::TM; ++i) {
    const int64_t r = m0 + GemmTile<T>::row(i);
    if (r >= nrows) continue;
#pragma unroll
    for (int j = 0; j < C::TN; ++j) {
      const int64_t c = n0 + GemmTile<T>::col(j);
      if (c < d) out[r * d + c] = tile.acc[i][j];
    }
  }
}

// The same product on the TF32 tensor cores (opt-in, float only: set_tf32):
// P and M rounded to TF32 (10-bit mantissa), sums in float32. Block tile
// 128 x 128 as the SIMT kernel (same slicing), 8 warps of 32 x 64, k staged
// 16 at a time; the epilogue goes through a per-warp 16 x 16 staging tile.
constexpr int kTM = 128, kTN = 128, kTK = 16, kTKP = kTK + 4, kTNP = kTN + 4;

__global__ void __launch_bounds__(kGemmThreads)
    accumulate_tf32_kernel(const float* __restrict__ P, int64_t ldP, int64_t nrows, int64_t nc,
                           const float* __restrict__ mu, int64_t d, int64_t slice, float* part) {
  namespace wmma = nvcuda::wmma;
  __shared__ __align__(32) float As[2][kTM][kTKP];
  __shared__ __align__(32) float Bs[2][kTK][kTNP];
  __shared__ __align__(32) float Cw[kGemmThreads / 32][256];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int wm = warp / 2, wn = warp % 2;
  const int64_t m0 = static_cast<int64_t>(blockIdx.y) * kTM, n0 = static_cast<int64_t>(blockIdx.x) * kTN;
  const int64_t kb = static_cast<int64_t>(blockIdx.z) * slice, ke = nc < kb + slice ? nc : kb + slice;
  wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc[2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  constexpr int kPer = kTM * kTK / kGemmThreads;
  float ra[kPer], rb[kPer];
  auto load = [&](int64_t k0) {
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      const int64_t r = m0 + e / kTK, k = k0 + e % kTK;
      ra[u] = (r < nrows && k < ke) ? P[r * ldP + k] : 0.0f;
      const int64_t kr = k0 + e / kTN, c = n0 + e % kTN;
      rb[u] = (kr < ke && c < d) ? mu[kr * d + c] : 0.0f;
    }
  };
  auto store = [&](int buf) {
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      As[buf][e / kTK][e % kTK] = ra[u];
      Bs[buf][e / kTN][e % kTN] = rb[u];
    }
  };
  load(kb);
  store(0);
  __syncthreads();
  int buf = 0;
  for (int64_t k0 = kb; k0 < ke; k0 += kTK) {
    const bool more = k0 + kTK < ke;
    if (more) load(k0 + kTK);
#pragma unroll
    for (int kk = 0; kk < kTK; kk += 8) {
      wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major> b[4];
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        wmma::load_matrix_sync(a[i], &As[buf][wm * 32 + i * 16][kk], kTKP);
#pragma unroll
        for (int x = 0; x < a[i].num_elements; ++x) a[i].x[x] = wmma::__float_to_tf32(a[i].x[x]);
      }
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        wmma::load_matrix_sync(b[j], &Bs[buf][kk][wn * 64 + j * 16], kTNP);
#pragma unroll
        for (int x = 0; x < b[j].num_elements; ++x) b[j].x[x] = wmma::__float_to_tf32(b[j].x[x]);
      }
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    if (more) store(buf ^ 1);
    __syncthreads();
    buf ^= 1;
  }
  float* out = part + static_cast<int64_t>(blockIdx.z) * nrows * d;
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      wmma::store_matrix_sync(Cw[warp], acc[i][j], 16, wmma::mem_row_major);
      __syncwarp();
      for (int e = lane; e < 256; e += 32) {
        const int64_t r = m0 + wm * 32 + i * 16 + e / 16, c = n0 + wn * 64 + j * 16 + e % 16;
        if (r < nrows && c < d) out[r * d + c] = Cw[warp][e];
      }
      __syncwarp();
    }
}

// A = alpha A + gamma (sum of the slices, in fixed order).
template <class T>
__global__ void combine_kernel(double* A, const T* __restrict__ part, int slices, int64_t nrows, int64_t d,
                               const double* __restrict__ alpha, const double* __restrict__ gamma) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= nrows * d) return;
  const int64_t r = e / d;
  double s = 0.0;
  for (int z = 0; z < slices; ++z) s += static_cast<double>(part[z * nrows * d + e]);
  A[e] = A[e] * alpha[r] + gamma[r] * s;
}

// A -= y B (A held sum p mu / v); m += c0.
template <class T>
__global__ void finish_kernel(double* A, const T* __restrict__ rows, const double* __restrict__ B, double* m,
                              int64_t nrows, int64_t d, double c0) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= nrows * d) return;
  const int64_t r = e / d;
  A[e] -= static_cast<double>(rows[e]) * B[r];
  if (e % d == 0 && m[r] != neg_inf()) m[r] += c0;
}


template <class T>
void run_expansion(const DeviceMixture<T>& mix, const DeviceLogits<T>& dl, const T* rows, int64_t nrows,
                   RowStates& st) {
  using C2 = GemmCfg<T>;       // the weighted sums
  const int64_t d = mix.d, n = mix.n;
  const LogitParams<T>& lp = dl.lp;
  // Error bound of the expansion (CPU rule), for float64 accumulation.
  const double eps = std::numeric_limits<double>::epsilon();
  const double kappa = expansion_kappa(d);
  prepare_rows_kernel<T><<<grid_of(nrows, kWarps), kWarps * 32>>>(
      rows, nrows, d, kappa * eps, mix.params.norm2_max, lp.inv2v_max, lp.cprime_abs_max, st.ny.get(),
      st.delta.get(), st.m.get(), st.S.get(), st.E.get(), st.B.get());
  check(cudaGetLastError(), "prepare_rows_kernel launch");
  st.A.zero();

  // Chunk of components: the L and P buffers stay within kTileElems elements.
  const int64_t nc_max = std::clamp<int64_t>((kTileElems / nrows) / C2::BN * C2::BN, C2::BN, 16384);
  const int64_t chunk = std::min(nc_max, n);
  // Split the product P M over k so that its blocks fill whole waves of the
  // GPU: the number of slices s minimizing waves(tiles * s) / s.
  int sms = 0, per_sm = 0;
  check(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, mix.device), "device attribute");
  const bool tf32 = std::is_same_v<T, float> && tf32_enabled();
  if (tf32)
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, accumulate_tf32_kernel, kGemmThreads, 0),
          "occupancy");
  else
    check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, accumulate_kernel<T>, kGemmThreads, 0),
          "occupancy");
  const int64_t slots = std::max<int64_t>(1, static_cast<int64_t>(sms) * per_sm);
  const int64_t tiles = ((nrows + C2::BM - 1) / C2::BM) * ((d + C2::BN - 1) / C2::BN);
  const int64_t s_lo = (chunk + kMaxSliceK - 1) / kMaxSliceK;
  const int64_t s_hi = std::max<int64_t>(s_lo, std::min<int64_t>(16, chunk / 256));
  int64_t slices = s_lo;
  double best = 1e300;
  for (int64_t sl = s_lo; sl <= s_hi; ++sl) {
    const double cost = static_cast<double>((tiles * sl + slots - 1) / slots) / static_cast<double>(sl);
    if (cost < best * 0.98) {  // more slices only for a clear gain (each costs a partial sum)
      best = cost;
      slices = sl;
    }
  }
  int64_t slice = (chunk + slices - 1) / slices;
  slice = (slice + C2::BK - 1) / C2::BK * C2::BK;
  slices = (chunk + slice - 1) / slice;
  const size_t l_bytes = aligned_bytes(static_cast<size_t>(nrows * chunk) * sizeof(double));
  const size_t p_bytes = aligned_bytes(static_cast<size_t>(nrows * chunk) * sizeof(T));
  const size_t part_bytes = static_cast<size_t>(slices * nrows * d) * sizeof(T);
  char* work = static_cast<char*>(st.work.get(l_bytes + p_bytes + part_bytes));
  double* L = reinterpret_cast<double*>(work);
  T* P = reinterpret_cast<T*>(work + l_bytes);
  T* part = reinterpret_cast<T*>(work + l_bytes + p_bytes);
  const double tol = logit_tolerance<T>(mix.params.logit_tol);
  const bool per_var = !mix.params.var.empty();

  for (int64_t n0 = 0; n0 < n; n0 += chunk) {
    const int64_t nc = std::min(chunk, n - n0);
    const T* mu = mix.mu_dev + n0 * d;
    const T* cp = dl.cprime ? dl.cprime + n0 : nullptr;
    const T* kj = dl.inv2v_j ? dl.inv2v_j + n0 : nullptr;
    const dim3 g1(grid_of(nc, kLN), grid_of(nrows, kLM));
    logits_kernel<T><<<g1, kGemmThreads>>>(rows, nrows, d, mu, nc, mix.norm2_dev + n0, cp, kj, dl.inv2v,
                                           st.ny.get(), L, chunk);
    check(cudaGetLastError(), "logits_kernel launch");
    weights_kernel<T><<<static_cast<unsigned>(nrows), kRowThreads>>>(
        L, P, chunk, nc, rows, d, mu, cp, kj, dl.inv2v, per_var, tol, st.delta.get(), st.m.get(), st.S.get(),
        st.E.get(), st.B.get(), st.alpha.get(), st.gamma.get());
    check(cudaGetLastError(), "weights_kernel launch");
    const int64_t nslices = (nc + slice - 1) / slice;
    const dim3 g2(grid_of(d, C2::BN), grid_of(nrows, C2::BM), static_cast<unsigned>(nslices));
    if constexpr (std::is_same_v<T, float>) {
      if (tf32) accumulate_tf32_kernel<<<g2, kGemmThreads>>>(P, chunk, nrows, nc, mu, d, slice, part);
      else accumulate_kernel<T><<<g2, kGemmThreads>>>(P, chunk, nrows, nc, mu, d, slice, part);
    } else {
      accumulate_kernel<T><<<g2, kGemmThreads>>>(P, chunk, nrows, nc, mu, d, slice, part);
    }
    check(cudaGetLastError(), "accumulate_kernel launch");
    combine_kernel<T><<<grid_of(nrows * d, 256), 256>>>(st.A.get(), part, static_cast<int>(nslices), nrows, d,
                                                        st.alpha.get(), st.gamma.get());
    check(cudaGetLastError(), "combine_kernel launch");
  }
  finish_kernel<T><<<grid_of(nrows * d, 256), 256>>>(st.A.get(), rows, st.B.get(), st.m.get(), nrows, d, lp.c0);
  check(cudaGetLastError(), "finish_kernel launch");
}

}  // namespace

namespace {
std::atomic<bool> tf32_flag{false};
}  // namespace

bool set_tf32(bool enabled) { return tf32_flag.exchange(enabled); }
bool tf32_enabled() { return tf32_flag.load(); }

namespace {
constexpr size_t kPoolKeep = 2;  // scratches kept per device
std::mutex pool_mutex;
std::vector<std::pair<int, Scratch*>> pool;  // (device, scratch) not lent out
}  // namespace

ScratchLease::ScratchLease() {
  check(cudaGetDevice(&device_), "cudaGetDevice");
  std::lock_guard<std::mutex> lock(pool_mutex);
  for (auto it = pool.begin(); it != pool.end(); ++it)
    if (it->first == device_) {
      s_ = it->second;
      pool.erase(it);
      return;
    }
  s_ = new Scratch();
}

ScratchLease::~ScratchLease() {
  std::lock_guard<std::mutex> lock(pool_mutex);
  size_t kept = 0;
  for (const auto& e : pool) kept += e.first == device_;
  if (kept < kPoolKeep) pool.emplace_back(device_, s_);
  else delete s_;  // (at exit the kept ones are left to the driver's teardown)
}

template <class T>
void dense_pass(const DeviceMixture<T>& mix, const T* rows_dev, int64_t nrows, double t, RowStates& st) {
  if (nrows == 0) return;
  const DeviceLogits<T> dl = device_logits(mix, t, st.params);
  if (mix.d <= kDirectMaxDim) run_direct(mix, dl, rows_dev, nrows, st);
  else run_expansion(mix, dl, rows_dev, nrows, st);
}

template <class T>
void run_pass(const DeviceMixture<T>& mix, const T* rows_dev, int64_t nrows, double t, RowStates& st) {
  if (nrows == 0) return;
  // Small t with pruning on: most components skipped (prune_cuda.cu); false when
  // it does not apply or would not pay (the probe), and the dense pass runs.
  if (pruned_pass(mix, rows_dev, nrows, t, st)) return;
  dense_pass(mix, rows_dev, nrows, t, st);
}

template void dense_pass(const DeviceMixture<float>&, const float*, int64_t, double, RowStates&);
template void dense_pass(const DeviceMixture<double>&, const double*, int64_t, double, RowStates&);
template void run_pass(const DeviceMixture<float>&, const float*, int64_t, double, RowStates&);
template void run_pass(const DeviceMixture<double>&, const double*, int64_t, double, RowStates&);

}  // namespace ledkde::cuda
