// The row kernels for AVX2 (compiled with -mavx2 -mfma, see CMakeLists.txt).
#define LEDKDE_ROWS_ISA avx2
#include "row_kernels_impl.h"
