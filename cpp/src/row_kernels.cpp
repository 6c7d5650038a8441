// The row kernels' entry points: each forwards to the build for the best
// instruction set this CPU supports, chosen once at load time with
// __builtin_cpu_supports. (GCC's target_clones would do the same through an
// ifunc resolver, but that resolver was seen choosing the baseline clones on
// an AMD EPYC that supports AVX2: 20x slower sweeps for d <= 8.)
// LEDKDE_ROW_KERNELS=avx2|baseline lowers the choice (tests compare the sets).
#include "row_kernels.h"

#include "cpu_isa.h"

namespace ledkde::rows {

#if defined(LEDKDE_ROWS_X86)
namespace avx512 {
#include "row_kernels_decl.h"
}  // namespace avx512
namespace avx2 {
#include "row_kernels_decl.h"
}  // namespace avx2
#endif
namespace base {
#include "row_kernels_decl.h"
}  // namespace base

const Isa kIsa = row_kernels_isa();

const char* isa() { return isa_name(kIsa, "baseline"); }

#define LEDKDE_DISPATCH(call) LEDKDE_ISA_DISPATCH(kIsa, call)

float logits_expansion(const float* norm2, const float* g, float ny, const float* cprime,
                       const float* k, float k0, int64_t nb, float* x) {
  LEDKDE_DISPATCH(logits_expansion(norm2, g, ny, cprime, k, k0, nb, x));
}
double logits_expansion(const double* norm2, const double* g, double ny, const double* cprime,
                        const double* k, double k0, int64_t nb, double* x) {
  LEDKDE_DISPATCH(logits_expansion(norm2, g, ny, cprime, k, k0, nb, x));
}
float logits_direct(const float* row, const float* muT, int64_t ld, int64_t d, const float* cprime,
                    const float* k, float k0, int64_t nb, float* d2, float* x) {
  LEDKDE_DISPATCH(logits_direct(row, muT, ld, d, cprime, k, k0, nb, d2, x));
}
double logits_direct(const double* row, const double* muT, int64_t ld, int64_t d,
                     const double* cprime, const double* k, double k0, int64_t nb, double* d2,
                     double* x) {
  LEDKDE_DISPATCH(logits_direct(row, muT, ld, d, cprime, k, k0, nb, d2, x));
}
float direct_max(const float* row, const float* muT, int64_t ld, int64_t d, const float* cprime,
                 const float* k, float k0, int64_t nb) {
  LEDKDE_DISPATCH(direct_max(row, muT, ld, d, cprime, k, k0, nb));
}
double direct_max(const double* row, const double* muT, int64_t ld, int64_t d, const double* cprime,
                  const double* k, double k0, int64_t nb) {
  LEDKDE_DISPATCH(direct_max(row, muT, ld, d, cprime, k, k0, nb));
}
void direct_accumulate(const float* row, const float* muT, int64_t ld, int64_t d,
                       const float* cprime, const float* k, float k0, bool per_var, bool entropy,
                       int64_t nb, float shift, double scale, double* sums, double* acc) {
  LEDKDE_DISPATCH(
      direct_accumulate(row, muT, ld, d, cprime, k, k0, per_var, entropy, nb, shift, scale, sums, acc));
}
void direct_accumulate(const double* row, const double* muT, int64_t ld, int64_t d,
                       const double* cprime, const double* k, double k0, bool per_var, bool entropy,
                       int64_t nb, double shift, double scale, double* sums, double* acc) {
  LEDKDE_DISPATCH(
      direct_accumulate(row, muT, ld, d, cprime, k, k0, per_var, entropy, nb, shift, scale, sums, acc));
}
void expansion_weights(const float* norm2, const float* g, float ny, const float* cprime,
                       const float* k, float k0, int64_t nb, float shift, float cut, float skip,
                       bool entropy, float* p, double* sums, uint8_t* live) {
  LEDKDE_DISPATCH(
      expansion_weights(norm2, g, ny, cprime, k, k0, nb, shift, cut, skip, entropy, p, sums, live));
}
void expansion_weights(const double* norm2, const double* g, double ny, const double* cprime,
                       const double* k, double k0, int64_t nb, double shift, double cut,
                       double skip, bool entropy, double* p, double* sums, uint8_t* live) {
  LEDKDE_DISPATCH(
      expansion_weights(norm2, g, ny, cprime, k, k0, nb, shift, cut, skip, entropy, p, sums, live));
}
int64_t indices_at_least(const float* x, int64_t nb, float cut, int64_t* idx) {
  LEDKDE_DISPATCH(indices_at_least(x, nb, cut, idx));
}
int64_t indices_at_least(const double* x, int64_t nb, double cut, int64_t* idx) {
  LEDKDE_DISPATCH(indices_at_least(x, nb, cut, idx));
}
double logits_f64(const double* n2, const double* g, double ny, const float* cprime, const float* k, double k0,
                  int64_t nb, double* l) {
  LEDKDE_DISPATCH(logits_f64(n2, g, ny, cprime, k, k0, nb, l));
}
double logits_f64(const double* n2, const double* g, double ny, const double* cprime, const double* k,
                  double k0, int64_t nb, double* l) {
  LEDKDE_DISPATCH(logits_f64(n2, g, ny, cprime, k, k0, nb, l));
}
int64_t count_at_least(const double* x, int64_t nb, double cut) { LEDKDE_DISPATCH(count_at_least(x, nb, cut)); }
void shifted(const double* l, int64_t nb, double m, float* x) { LEDKDE_DISPATCH(shifted(l, nb, m, x)); }
void shifted(const double* l, int64_t nb, double m, double* x) { LEDKDE_DISPATCH(shifted(l, nb, m, x)); }
double sum(const float* x, int64_t nb) { LEDKDE_DISPATCH(sum(x, nb)); }
double sum(const double* x, int64_t nb) { LEDKDE_DISPATCH(sum(x, nb)); }
double dot(const float* a, const float* b, int64_t nb) { LEDKDE_DISPATCH(dot(a, b, nb)); }
double dot(const double* a, const double* b, int64_t nb) { LEDKDE_DISPATCH(dot(a, b, nb)); }
void add_scaled(const float* x, int64_t n, double scale, double* acc) {
  LEDKDE_DISPATCH(add_scaled(x, n, scale, acc));
}
void add_scaled(const double* x, int64_t n, double scale, double* acc) {
  LEDKDE_DISPATCH(add_scaled(x, n, scale, acc));
}
void dots(const float* row, const float* mu, int64_t d, const uint32_t* idx, int64_t count, double* out) {
  LEDKDE_DISPATCH(dots(row, mu, d, idx, count, out));
}
void dots(const double* row, const double* mu, int64_t d, const uint32_t* idx, int64_t count, double* out) {
  LEDKDE_DISPATCH(dots(row, mu, d, idx, count, out));
}
double exact_dist2(const float* a, const float* b, int64_t d) {
  LEDKDE_DISPATCH(exact_dist2(a, b, d));
}
double exact_dist2(const double* a, const double* b, int64_t d) {
  LEDKDE_DISPATCH(exact_dist2(a, b, d));
}
void exact_dist2s(const float* row, const float* mu, int64_t d, const int64_t* idx, int64_t count, double* out) {
  LEDKDE_DISPATCH(exact_dist2s(row, mu, d, idx, count, out));
}
void exact_dist2s(const double* row, const double* mu, int64_t d, const int64_t* idx, int64_t count, double* out) {
  LEDKDE_DISPATCH(exact_dist2s(row, mu, d, idx, count, out));
}
void weights(float* x, int64_t nb, float shift, double* s, double* e) {
  LEDKDE_DISPATCH(weights(x, nb, shift, s, e));
}
void weights(double* x, int64_t nb, double shift, double* s, double* e) {
  LEDKDE_DISPATCH(weights(x, nb, shift, s, e));
}
double scale_by_inverse_variance(float* x, const float* k, int64_t nb) {
  LEDKDE_DISPATCH(scale_by_inverse_variance(x, k, nb));
}
double scale_by_inverse_variance(double* x, const double* k, int64_t nb) {
  LEDKDE_DISPATCH(scale_by_inverse_variance(x, k, nb));
}
void weighted_sum_direct(const float* p, const float* row, const float* muT, int64_t ld, int64_t d,
                         int64_t nb, double scale, double* acc) {
  LEDKDE_DISPATCH(weighted_sum_direct(p, row, muT, ld, d, nb, scale, acc));
}
void weighted_sum_direct(const double* p, const double* row, const double* muT, int64_t ld,
                         int64_t d, int64_t nb, double scale, double* acc) {
  LEDKDE_DISPATCH(weighted_sum_direct(p, row, muT, ld, d, nb, scale, acc));
}

#undef LEDKDE_DISPATCH

}  // namespace ledkde::rows
