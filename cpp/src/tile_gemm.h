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

constexpr int64_t kPanel = 32;     // components per row panel (first product)
// Floats the second product may read past a component's row (the last one's
// included: the mixture pads its rows by this much).
constexpr int64_t kRowTail = 32;
// Blocks of components whose weights a row may have left all zero (see
// rows::expansion_weights); the second product skips them.
constexpr int64_t kLiveBlock = 64;
// Largest d packed when a mixture is prepared (the packs hold two more copies
// of the data). Measured up to d = 784, where the built-in products run at
// OpenBLAS's kernel speed without its per-call packing and skip the blocks
// without weight; larger d keeps BLAS until measured.
constexpr int64_t kMaxDim = 1024;
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

// G[i * ldg + j] = sum_k rows[i * d + k] * mu_j[k] (in float, in order of k)
// for i < q, j < nb, where packed points at the panel of component 0 of the
// tile. rows must be readable and G writable for kRowPad rows past q, and G
// for whole panels (ldg a multiple of kPanel); the values there are unused.
void dot_tiles(const float* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
               float* G, int64_t ldg);

// d2[j] = sum_k (row[k] - mu_j[k])^2 in float64 (the components' floats are
// exact in float64, so is each difference; one rounding per square and sum)
// for j < nb, where packed points at the panel of component 0 of the tile.
void exact_dist2(const double* row, int64_t d, const float* packed, int64_t nb, double* d2);

// G[i * ldg + j] = sum_k rows[i * d + k] * mu_j[k] in float64 (the products of
// the widened floats are exact; one rounding per sum) for i < q, j < nb:
// dot_tiles in float64, with the same padding rules (rows and G in float64).
void dot_tiles_f64(const double* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
                   double* G, int64_t ldg);

// A[row[s] * d + c] += scale[s] * sum_{j < nb} P[s * ldp + j] * mu_j[c] for the
// row slots s < q and c < d, where mu points at component 0 of the tile, its
// rows ldb floats apart and readable for kRowTail floats past the last one.
// P must be readable for kRowPad rows past q. Each sum over j runs in float,
// in order, and is added in float64. live (q x ceil(nb / kLiveBlock), row
// stride ld_live; null: all live) marks the blocks of kLiveBlock components
// where slot s may have nonzero weights: components in blocks that no slot of
// a micro-tile marks are skipped (their zero weights would add nothing).
void accumulate(const float* P, int64_t ldp, int64_t q, int64_t nb, const float* mu, int64_t ldb,
                int64_t d, const double* scale, double* A, const int64_t* row, const uint8_t* live,
                int64_t ld_live);

}  // namespace ledkde::tile_gemm
