// Device helpers shared by the CUDA kernels: warp and block reductions and the
// float64 distance of the exact logits. Device code only (no runtime calls),
// so that tests/cuda_emulation can run the kernels that use them on the CPU.
#pragma once

#include <cstdint>

namespace ledkde::cuda {

constexpr int kWarps = 8;    // rows per block, one warp each (row-wise helper kernels)
constexpr unsigned kFull = 0xFFFFFFFFu;

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ double warp_max(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// |row - muj|^2 by coordinate differences in float64, summed over the warp
// (every lane must call it; every lane gets the result).
template <class T>
__device__ __forceinline__ double warp_dist2(const T* __restrict__ row, const T* __restrict__ muj, int64_t d) {
  double s = 0.0;
  for (int64_t c = threadIdx.x % 32; c < d; c += 32) {
    const double diff = static_cast<double>(row[c]) - static_cast<double>(muj[c]);
    s = fma(diff, diff, s);
  }
  return warp_sum(s);
}

constexpr int kRowThreads = 128;  // threads of the one-block-per-row kernels

// Sum or maximum over a block of kRowThreads threads, in a fixed order; every
// thread gets the result.
__device__ __forceinline__ double block_reduce(double v, bool is_max) {
  __shared__ double part[kRowThreads / 32];
  __syncthreads();  // part may still be read by a previous reduction
  for (int o = 16; o > 0; o >>= 1) {
    const double w = __shfl_xor_sync(kFull, v, o);
    v = is_max ? fmax(v, w) : v + w;
  }
  if (threadIdx.x % 32 == 0) part[threadIdx.x / 32] = v;
  __syncthreads();
  v = part[0];
  for (int w = 1; w < kRowThreads / 32; ++w) v = is_max ? fmax(v, part[w]) : v + part[w];
  return v;
}

}  // namespace ledkde::cuda
