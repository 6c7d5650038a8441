// The LS kernels for AVX2 + FMA (compiled with -mavx2 -mfma, see CMakeLists.txt).
#define LEDKDE_ROWS_ISA avx2
#include "local_kernels_impl.h"
