// The LS kernels' entry points: each forwards to the build for the best
// instruction set this CPU supports (cpu_isa.h), chosen once at load time.
#include "local_kernels.h"

#include "cpu_isa.h"

namespace ledkde::local_kernels {

#if defined(LEDKDE_ROWS_X86)
namespace avx512 {
#include "local_kernels_decl.h"
}  // namespace avx512
namespace avx2 {
#include "local_kernels_decl.h"
}  // namespace avx2
#endif
namespace base {
#include "local_kernels_decl.h"
}  // namespace base

const Isa kIsa = row_kernels_isa();

#define LEDKDE_DISPATCH(call) LEDKDE_ISA_DISPATCH(kIsa, call)

int64_t ls_scratch(int64_t h, int64_t w, int64_t r) { LEDKDE_DISPATCH(ls_scratch(h, w, r)); }
void ls_group(const double* y, const float* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
              bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  LEDKDE_DISPATCH(ls_group(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A));
}
void ls_group(const double* y, const double* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
              bool circular, double inv2t, double* scratch, double* m, double* S, double* A) {
  LEDKDE_DISPATCH(ls_group(y, xg, lw, h, w, c, r, circular, inv2t, scratch, m, S, A));
}

#undef LEDKDE_DISPATCH

}  // namespace ledkde::local_kernels
