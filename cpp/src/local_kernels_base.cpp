// The LS kernels for the baseline instruction set.
#define LEDKDE_ROWS_ISA base
#include "local_kernels_impl.h"
