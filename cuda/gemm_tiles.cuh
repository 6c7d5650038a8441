// Register-blocked tile product for the CUDA score pass (SIMT, exact float32
// or float64 arithmetic; no tensor cores): the weighted sums P M.
//
// One block of 256 threads computes a BM x BN tile of C = A B over a range of
// k: A is row-major with k contiguous (query rows, or the weights P), B is
// either row-major with k contiguous ("NT": the components, for the dot
// products G = Y M^T) or with n contiguous ("NN": the components, for the
// weighted sums P M). Tiles of BK columns of k are staged in shared memory,
// double-buffered through registers (the next tile is loaded from global
// memory while the current one is multiplied); each thread holds a TM x TN
// block of C in registers as two halves in each direction, so that its
// shared-memory reads are 16-byte vectors without bank conflicts.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

namespace ledkde::cuda {

template <class T>
struct GemmCfg;
template <>
struct GemmCfg<float> {
  static constexpr int BM = 128, BN = 128, BK = 8, TM = 8, TN = 8, PAD = 4;
  using Vec = float4;  // TM / 2 consecutive values
};
template <>
struct GemmCfg<double> {
  static constexpr int BM = 64, BN = 64, BK = 8, TM = 4, TN = 4, PAD = 2;
  using Vec = double2;
};
constexpr int kGemmThreads = 256;

template <class T>
struct GemmTile {
  using C = GemmCfg<T>;
  T acc[C::TM][C::TN];
  // Row and column (within the block tile) of the thread's acc[i][j].
  __device__ static int row(int i) {
    const int ty = threadIdx.x / (C::BN / C::TN);
    return (i / (C::TM / 2)) * (C::BM / 2) + ty * (C::TM / 2) + i % (C::TM / 2);
  }
  __device__ static int col(int j) {
    const int tx = threadIdx.x % (C::BN / C::TN);
    return (j / (C::TN / 2)) * (C::BN / 2) + tx * (C::TN / 2) + j % (C::TN / 2);
  }
};

// Loads the block's slice [k0, k0 + BK) of A (rows m0..) and B (columns n0..)
// into registers; outside the matrices the values are 0.
template <class T, bool kNN>
struct GemmLoader {
  using C = GemmCfg<T>;
  static constexpr int kA = C::BM * C::BK / kGemmThreads, kB = C::BN * C::BK / kGemmThreads;
  T a[kA], b[kB];

  __device__ void load(const T* __restrict__ A, int64_t lda, const T* __restrict__ B, int64_t ldb, int64_t M,
                       int64_t N, int64_t k_end, int64_t m0, int64_t n0, int64_t k0) {
#pragma unroll
    for (int u = 0; u < kA; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      const int64_t r = m0 + e / C::BK, k = k0 + e % C::BK;
      a[u] = (r < M && k < k_end) ? A[r * lda + k] : T(0);
    }
#pragma unroll
    for (int u = 0; u < kB; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      if constexpr (kNN) {
        const int64_t k = k0 + e / C::BN, c = n0 + e % C::BN;
        b[u] = (k < k_end && c < N) ? B[k * ldb + c] : T(0);
      } else {
        const int64_t c = n0 + e / C::BK, k = k0 + e % C::BK;
        b[u] = (c < N && k < k_end) ? B[c * ldb + k] : T(0);
      }
    }
  }

  // Shared layout: As[k][m], Bs[k][n] (k-major, so a thread's values along m
  // or n are contiguous); the padding keeps the transposing stores free of
  // bank conflicts and the rows 16-byte aligned.
  __device__ void store(T (*As)[C::BM + C::PAD], T (*Bs)[C::BN + C::PAD]) const {
#pragma unroll
    for (int u = 0; u < kA; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      As[e % C::BK][e / C::BK] = a[u];
    }
#pragma unroll
    for (int u = 0; u < kB; ++u) {
      const int e = threadIdx.x + u * kGemmThreads;
      if constexpr (kNN) Bs[e / C::BN][e % C::BN] = b[u];
      else Bs[e % C::BK][e / C::BK] = b[u];
    }
  }
};

// acc = sum over k in [k_begin, k_end) of A[m0 + row][k] * B(k, n0 + col).
template <class T, bool kNN>
__device__ void gemm_block(const T* __restrict__ A, int64_t lda, const T* __restrict__ B, int64_t ldb,
                           int64_t M, int64_t N, int64_t k_begin, int64_t k_end, int64_t m0, int64_t n0,
                           GemmTile<T>& tile) {
  using C = GemmCfg<T>;
  using V = typename C::Vec;
  __shared__ __align__(16) T As[2][C::BK][C::BM + C::PAD];
  __shared__ __align__(16) T Bs[2][C::BK][C::BN + C::PAD];
#pragma unroll
  for (int i = 0; i < C::TM; ++i)
#pragma unroll
    for (int j = 0; j < C::TN; ++j) tile.acc[i][j] = T(0);
  const int ty = threadIdx.x / (C::BN / C::TN), tx = threadIdx.x % (C::BN / C::TN);
  GemmLoader<T, kNN> ld;
  ld.load(A, lda, B, ldb, M, N, k_end, m0, n0, k_begin);
  ld.store(As[0], Bs[0]);
  __syncthreads();
  int buf = 0;
  for (int64_t k0 = k_begin; k0 < k_end; k0 += C::BK) {
    const bool more = k0 + C::BK < k_end;
    if (more) ld.load(A, lda, B, ldb, M, N, k_end, m0, n0, k0 + C::BK);
#pragma unroll
    for (int k = 0; k < C::BK; ++k) {
      T a[C::TM], b[C::TN];
      *reinterpret_cast<V*>(&a[0]) = *reinterpret_cast<const V*>(&As[buf][k][ty * (C::TM / 2)]);
      *reinterpret_cast<V*>(&a[C::TM / 2]) =
          *reinterpret_cast<const V*>(&As[buf][k][C::BM / 2 + ty * (C::TM / 2)]);
      *reinterpret_cast<V*>(&b[0]) = *reinterpret_cast<const V*>(&Bs[buf][k][tx * (C::TN / 2)]);
      *reinterpret_cast<V*>(&b[C::TN / 2]) =
          *reinterpret_cast<const V*>(&Bs[buf][k][C::BN / 2 + tx * (C::TN / 2)]);
#pragma unroll
      for (int i = 0; i < C::TM; ++i)
#pragma unroll
        for (int j = 0; j < C::TN; ++j) tile.acc[i][j] = fma(a[i], b[j], tile.acc[i][j]);
    }
    // The other buffer was last read in the previous step, before its barrier.
    if (more) ld.store(As[buf ^ 1], Bs[buf ^ 1]);
    __syncthreads();
    buf ^= 1;
  }
}

}  // namespace ledkde::cuda
