// The row kernels for the baseline instruction set.
#define LEDKDE_ROWS_ISA base
#include "row_kernels_impl.h"
