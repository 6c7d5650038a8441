// The element-wise work of one query row against one tile of components.
// Each function is compiled for AVX-512, AVX2+FMA and baseline x86-64
// (row_kernels_impl.h built three times) and the best one the CPU supports
// is picked at load time (row_kernels.cpp), so the installed wheel runs on
// any x86-64 without -march flags. Plain C++ loops that the
// compiler vectorizes; summation order is fixed for a given machine.
#pragma once

#include <cstdint>

namespace ledkde::rows {
#include "row_kernels_decl.h"  // IWYU pragma: export

// The instruction set the kernels run with: "avx512", "avx2" or "baseline".
const char* isa();

}  // namespace ledkde::rows
