// Load-time choice of the instruction set for the kernels that are built
// several times (row kernels, tile products): the best one the CPU supports,
// found with __builtin_cpu_supports (GCC's target_clones resolver was seen
// choosing the baseline on an AVX2 machine), optionally lowered through an
// environment variable, never raised.
#pragma once

#include <cstdlib>
#include <cstring>

namespace ledkde {

enum class Isa { base, avx2, avx512 };

// built: whether the AVX2 / AVX-512 builds exist (x86-64). env_name: the
// variable that lowers the choice to "avx2" or to `lowest` (the baseline's name).
inline Isa detect_isa(bool built, const char* env_name, const char* lowest) {
  Isa best = Isa::base;
#if defined(__x86_64__) || defined(__i386__)
  if (built) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) best = Isa::avx2;
    if (__builtin_cpu_supports("avx512f")) best = Isa::avx512;
  }
#endif
  if (const char* want = std::getenv(env_name)) {
    if (std::strcmp(want, lowest) == 0) best = Isa::base;
    else if (std::strcmp(want, "avx2") == 0 && best == Isa::avx512) best = Isa::avx2;
  }
  return best;
}

// The set of the row kernels and the local kernels (both built where LEDKDE_ROWS_X86
// is defined; LEDKDE_ROW_KERNELS=avx2|baseline lowers it), found once.
inline Isa row_kernels_isa() {
#if defined(LEDKDE_ROWS_X86)
  static const Isa isa = detect_isa(true, "LEDKDE_ROW_KERNELS", "baseline");
#else
  static const Isa isa = detect_isa(false, "LEDKDE_ROW_KERNELS", "baseline");
#endif
  return isa;
}

inline const char* isa_name(Isa isa, const char* lowest) {
  switch (isa) {
    case Isa::avx512: return "avx512";
    case Isa::avx2: return "avx2";
    default: return lowest;
  }
}

}  // namespace ledkde

// The entry point of a kernel set built for several instruction sets (the
// namespaces avx512, avx2 and base of the including file): return the call
// of the set `isa` chose.
#if defined(LEDKDE_ROWS_X86)
#define LEDKDE_ISA_DISPATCH(isa, call)               \
  switch (isa) {                                     \
    case ::ledkde::Isa::avx512: return avx512::call; \
    case ::ledkde::Isa::avx2: return avx2::call;     \
    default: return base::call;                      \
  }
#else
#define LEDKDE_ISA_DISPATCH(isa, call) return base::call
#endif
