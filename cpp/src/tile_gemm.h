// The two matrix products of a score tile for moderate dimensions
// (kDirectMaxDim < d <= kMaxDim, float): G = rows * mu_tile^T and
// A += diag(scale) * P * mu_tile. Written here instead of called from BLAS
// because at these sizes a general matrix product spends a large share of
// its time packing both operands and clearing and reloading C on every call;
// here the components are packed once (when the mixture is prepared), the
// rows are read in place and the second product adds straight into the
// float64 accumulators.
//
// The kernels are compiled twice, for AVX-512 and for AVX2 + FMA, from one
// template (tile_gemm_impl.h), and the best is picked at load time; on other
// CPUs available() is false and the pass calls BLAS instead.
#pragma once

#include <cstdint>

namespace ledkde::tile_gemm {

constexpr int64_t kPanel = 32;    // components per packed panel
// Largest d packed when a mixture is prepared: above it one pass with BLAS
// measured as fast as packing plus the built-in products.
constexpr int64_t kMaxDim = 512;
constexpr int64_t kRowPad = 24;   // rows beyond q that the kernels may read or write

// Name of the kernel set in use: "avx512", "avx2" or "none". The environment
// variable LEDKDE_TILE_GEMM=avx2|none, read at load, can lower the choice
// (for tests and comparisons).
const char* isa();
// Whether this CPU has the kernels (else every pass uses BLAS).
inline bool available() { return isa()[0] != 'n'; }

// packed[(p * d + k) * kPanel + jj] = mu[(p * kPanel + jj) * d + k], zero past n,
// for the panels p in [p_begin, p_end); packed holds ceil(n / kPanel) * d *
// kPanel floats.
void pack(const float* mu, int64_t n, int64_t d, int64_t p_begin, int64_t p_end,
          float* packed);

// G[i * ldg + j] = sum_k rows[i * d + k] * mu_j[k] for i < q, j < nb, where
// packed points at the panel of component 0 of the tile. rows must be
// readable and G writable for kRowPad rows past q (their values are unused).
void dot_tiles(const float* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
               float* G, int64_t ldg);

// A[i * d + c] += scale[i] * sum_{j < nb} P[i * ldp + j] * mu[j * ldm + c] for
// i < q, c < d. ldm is d rounded up to a multiple of 16 (columns past d are
// zero); P must be readable for kRowPad rows past q.
void accumulate(const float* P, int64_t ldp, int64_t q, int64_t nb, const float* mu,
                int64_t ldm, int64_t d, const double* scale, double* A);

}  // namespace ledkde::tile_gemm
