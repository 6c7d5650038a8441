// The CUDA runtime calls that cuda/pass_cuda.cuh, mixture_cuda.cu and prune_cuda.cu make, on host
// memory (prune_pass_check.cpp): allocations are malloc, copies memcpy, and every call succeeds.
// Found before the real cuda_runtime.h because this folder comes first on the include path.
#pragma once
#include <cstdlib>
#include <cstring>

#include "cuda_emu.h"

enum cudaError_t { cudaSuccess = 0, cudaErrorMemoryAllocation = 2 };
using cudaError = cudaError_t;
enum cudaMemcpyKind { cudaMemcpyHostToDevice = 1, cudaMemcpyDeviceToHost = 2 };
struct cudaDeviceProp {
  char name[256] = "CPU emulation";
};

inline const char* cudaGetErrorString(cudaError_t) { return "emulated error"; }
inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t cudaSetDevice(int) { return cudaSuccess; }
inline cudaError_t cudaGetDeviceCount(int* n) {
  *n = 1;
  return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int) {
  *p = cudaDeviceProp{};
  return cudaSuccess;
}
template <class P>
cudaError_t cudaMalloc(P** p, size_t bytes) {
  *p = static_cast<P*>(std::malloc(bytes ? bytes : 1));
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t cudaFree(void* p) {
  std::free(p);
  return cudaSuccess;
}
inline cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
inline cudaError_t cudaMemset(void* dst, int v, size_t bytes) {
  std::memset(dst, v, bytes);
  return cudaSuccess;
}
