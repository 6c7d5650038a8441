// The element-wise work of the local (LS) denoiser, one query against
// groups of training images, one image per vector lane: compiled for
// AVX-512, AVX2 + FMA and baseline x86-64 (local_kernels_impl.h built three
// times), the best one the CPU supports
// picked at load time (local_kernels.cpp; LEDKDE_ROW_KERNELS lowers it, as
// for the row kernels).
#pragma once

#include <cstdint>

namespace ledkde::local_kernels {
#include "local_kernels_decl.h"  // IWYU pragma: export
}  // namespace ledkde::local_kernels
