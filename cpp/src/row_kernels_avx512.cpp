// The row kernels for AVX512 (compiled with -mavx512f -mfma, see CMakeLists.txt).
#define LEDKDE_ROWS_ISA avx512
#include "row_kernels_impl.h"
