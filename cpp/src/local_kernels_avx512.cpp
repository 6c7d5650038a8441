// The LS kernels for AVX-512 (compiled with -mavx512f -mfma, see CMakeLists.txt).
#define LEDKDE_ROWS_ISA avx512
#include "local_kernels_impl.h"
