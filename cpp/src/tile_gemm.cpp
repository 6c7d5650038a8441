// Run-time choice of the tile_gemm kernels, and the packing of the components.
#include "tile_gemm.h"

#include <cstdlib>
#include <cstring>

#include "cpu_isa.h"

namespace ledkde::tile_gemm {

#if defined(LEDKDE_TILE_GEMM)
namespace avx512 {
void dot_tiles(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t);
void accumulate(const float*, int64_t, int64_t, int64_t, const float*, int64_t, int64_t,
                const double*, double*, const int64_t*, const uint8_t*, int64_t);
void exact_dist2(const double*, int64_t, const float*, int64_t, double*);
void dot_tiles_f64(const double*, int64_t, int64_t, const float*, int64_t, double*, int64_t);
}  // namespace avx512
namespace avx2 {
void dot_tiles(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t);
void accumulate(const float*, int64_t, int64_t, int64_t, const float*, int64_t, int64_t,
                const double*, double*, const int64_t*, const uint8_t*, int64_t);
void exact_dist2(const double*, int64_t, const float*, int64_t, double*);
void dot_tiles_f64(const double*, int64_t, int64_t, const float*, int64_t, double*, int64_t);
}  // namespace avx2
#endif

namespace {

#if defined(LEDKDE_TILE_GEMM)
constexpr bool kBuilt = true;
#else
constexpr bool kBuilt = false;
#endif
const Isa kIsa = detect_isa(kBuilt, "LEDKDE_TILE_GEMM", "none");

}  // namespace

const char* isa() { return isa_name(kIsa, "none"); }

void pack(const float* mu, int64_t n, int64_t d, int64_t p_begin, int64_t p_end, float* packed) {
  for (int64_t p = p_begin; p < p_end; ++p) {
    float* out = packed + p * d * kPanel;
    const int64_t j0 = p * kPanel;
    const int64_t cols = n - j0 < kPanel ? n - j0 : kPanel;
    if (cols < kPanel)
      for (int64_t i = 0; i < d * kPanel; ++i) out[i] = 0.0f;
    // Contiguous writes; the panel's rows (cols x d) stay in L1 for the reads.
    const float* src = mu + j0 * d;
    for (int64_t k = 0; k < d; ++k)
      for (int64_t jj = 0; jj < cols; ++jj) out[k * kPanel + jj] = src[jj * d + k];
  }
}

void dot_tiles(const float* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
               float* G, int64_t ldg) {
#if defined(LEDKDE_TILE_GEMM)
  if (kIsa == Isa::avx512) return avx512::dot_tiles(rows, q, d, packed, nb, G, ldg);
  if (kIsa == Isa::avx2) return avx2::dot_tiles(rows, q, d, packed, nb, G, ldg);
#endif
  std::abort();  // callers check available() first
}

void accumulate(const float* P, int64_t ldp, int64_t q, int64_t nb, const float* mu,
                int64_t ldb, int64_t d, const double* scale, double* A, const int64_t* row,
                const uint8_t* live, int64_t ld_live) {
#if defined(LEDKDE_TILE_GEMM)
  if (kIsa == Isa::avx512)
    return avx512::accumulate(P, ldp, q, nb, mu, ldb, d, scale, A, row, live, ld_live);
  if (kIsa == Isa::avx2)
    return avx2::accumulate(P, ldp, q, nb, mu, ldb, d, scale, A, row, live, ld_live);
#endif
  std::abort();
}

void exact_dist2(const double* row, int64_t d, const float* packed, int64_t nb, double* d2) {
#if defined(LEDKDE_TILE_GEMM)
  if (kIsa == Isa::avx512) return avx512::exact_dist2(row, d, packed, nb, d2);
  if (kIsa == Isa::avx2) return avx2::exact_dist2(row, d, packed, nb, d2);
#endif
  std::abort();
}

void dot_tiles_f64(const double* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
                   double* G, int64_t ldg) {
#if defined(LEDKDE_TILE_GEMM)
  if (kIsa == Isa::avx512) return avx512::dot_tiles_f64(rows, q, d, packed, nb, G, ldg);
  if (kIsa == Isa::avx2) return avx2::dot_tiles_f64(rows, q, d, packed, nb, G, ldg);
#endif
  std::abort();
}

}  // namespace ledkde::tile_gemm
