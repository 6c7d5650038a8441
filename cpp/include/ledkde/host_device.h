// LEDKDE_HD: a function that the CPU code and the CUDA kernels both call
// (host and device under nvcc, inline otherwise).
#pragma once

#if defined(__CUDACC__)
#define LEDKDE_HD __host__ __device__ __forceinline__
#elif defined(__GNUC__)
// Forced: the vectorized loops that call these must see their bodies (an
// out-of-line call stops GCC from vectorizing the loop).
#define LEDKDE_HD inline __attribute__((always_inline))
#else
#define LEDKDE_HD inline
#endif
