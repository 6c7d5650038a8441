// tile_gemm kernels for AVX2 + FMA (compiled with -mavx2 -mfma).
#define LEDKDE_TG_NS avx2
#define LEDKDE_TG_W 8
#include "tile_gemm_impl.h"
