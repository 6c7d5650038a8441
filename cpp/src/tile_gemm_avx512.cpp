// tile_gemm kernels for AVX-512 (compiled with -mavx512f -mfma).
#define LEDKDE_TG_NS avx512
#define LEDKDE_TG_W 16
#include "tile_gemm_impl.h"
