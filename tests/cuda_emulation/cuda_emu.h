// A CPU emulation of the CUDA thread model, enough to run ledkde's pruning kernels as written:
// one OS thread per CUDA thread, blocks one at a time (so `static` is block-shared memory),
// __syncthreads and the warp primitives through std::barrier.
#pragma once
#include <barrier>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  dim3(unsigned a = 1, unsigned b = 1, unsigned c = 1) : x(a), y(b), z(c) {}
};
inline thread_local dim3 threadIdx, blockIdx;
inline dim3 blockDim, gridDim;
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(x)
#define __restrict__
#define __shared__ static

inline std::barrier<>* g_block_bar = nullptr;
inline std::vector<std::unique_ptr<std::barrier<>>> g_warp_bar;
inline unsigned char g_slot[64][32][8];

inline void __syncthreads() { g_block_bar->arrive_and_wait(); }

template <class V>
V __shfl_xor_sync(unsigned, V v, int o) {
  static_assert(sizeof(V) <= 8);
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  std::memcpy(g_slot[w][l], &v, sizeof(V));
  g_warp_bar[w]->arrive_and_wait();
  V r;
  std::memcpy(&r, g_slot[w][l ^ o], sizeof(V));
  g_warp_bar[w]->arrive_and_wait();
  return r;
}

inline unsigned __ballot_sync(unsigned, int pred) {
  const int w = threadIdx.x / 32, l = threadIdx.x % 32;
  g_slot[w][l][0] = pred ? 1 : 0;
  g_warp_bar[w]->arrive_and_wait();
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= unsigned(g_slot[w][i][0]) << i;
  g_warp_bar[w]->arrive_and_wait();
  return r;
}
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(unsigned x) { return __builtin_ffs(x); }

template <class K, class... A>
void launch(dim3 grid, dim3 block, K kernel, A... args) {
  blockDim = block;
  gridDim = grid;
  const unsigned nt = block.x;
  for (unsigned bx = 0; bx < grid.x; ++bx) {
    std::barrier<> bb(nt);
    g_block_bar = &bb;
    g_warp_bar.clear();
    for (unsigned w = 0; w < (nt + 31) / 32; ++w) g_warp_bar.emplace_back(new std::barrier<>(32));
    std::vector<std::thread> th;
    for (unsigned t = 0; t < nt; ++t)
      th.emplace_back([=] {
        threadIdx = dim3(t);
        blockIdx = dim3(bx);
        kernel(args...);
        g_warp_bar[t / 32]->arrive_and_drop();
        g_block_bar->arrive_and_drop();
      });
    for (auto& x : th) x.join();
  }
}
