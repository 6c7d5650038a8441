// The tile products of tile_gemm.h for one vector width; included by
// tile_gemm_avx512.cpp and tile_gemm_avx2.cpp, each compiled for its
// instruction set. GCC vector extensions: a vector of W floats is one
// register, and the accumulators of a micro-tile are small fixed arrays that
// the compiler keeps in registers. Everything here has internal linkage or
// lives in the per-ISA namespace (no shared inline functions that the linker
// could take from the wrong instruction set).
#include <cstdint>
#include <cstring>

#include "tile_gemm.h"

#if !defined(LEDKDE_TG_NS) || !defined(LEDKDE_TG_W)
#error "define LEDKDE_TG_NS and LEDKDE_TG_W before including tile_gemm_impl.h"
#endif

namespace ledkde::tile_gemm::LEDKDE_TG_NS {
namespace {

constexpr int W = LEDKDE_TG_W;                 // floats per vector register
// Accumulator registers per micro-tile: AVX-512 has 32 vector registers,
// AVX2 16; the rest hold the loaded components and the broadcast factor.
constexpr int kRegs = W == 16 ? 24 : 12;
constexpr int NV = static_cast<int>(kPanel) / W;  // vectors per panel row
constexpr int MR = kRegs / NV;                 // rows per micro-tile of the first product
static_assert(MR <= kRowPad, "micro-tile taller than the row padding");

typedef float vf __attribute__((vector_size(W * sizeof(float))));

inline vf load(const float* p) {
  vf v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// One rank-1 update of an M x N register tile, the step of both products:
// acc[i][v] += a[i * lda] * b[v * W, (v + 1) * W) for i < M, v < N.
template <int M, int N>
inline __attribute__((always_inline)) void rank1_update(vf (&acc)[M][N], const float* a,
                                                        int64_t lda, const float* b) {
  vf bv[N];
#pragma GCC unroll 16
  for (int v = 0; v < N; ++v) bv[v] = load(b + v * W);
#pragma GCC unroll 16
  for (int i = 0; i < M; ++i) {
    const float ai = a[i * lda];
#pragma GCC unroll 16
    for (int v = 0; v < N; ++v) acc[i][v] += ai * bv[v];
  }
}

// One MR x kPanel block of G: the panel (d x kPanel) stays in L1 while the
// row groups stream past it.
inline void dot_block(const float* r, int64_t d, const float* pk, float* g, int64_t ldg,
                      int64_t ncols) {
  vf acc[MR][NV] = {};
  for (int64_t k = 0; k < d; ++k) rank1_update(acc, r + k, d, pk + k * kPanel);
  if (ncols == kPanel) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) store(g + i * ldg + v * W, acc[i][v]);
  } else {
    // Last, partial panel of the tile: only ncols columns belong to G.
    float tmp[kPanel];
    for (int i = 0; i < MR; ++i) {
      for (int v = 0; v < NV; ++v) store(tmp + v * W, acc[i][v]);
      __builtin_memcpy(g + i * ldg, tmp, static_cast<size_t>(ncols) * sizeof(float));
    }
  }
}

// R rows x DV vectors of A per micro-tile; the components stream through.
// Columns [0, ncols) of A (row stride lda) from mu's columns [0, ncols)
// (mu readable for DV * W columns per row).
template <int DV>
void accumulate_dv(const float* P, int64_t ldp, int64_t q, int64_t nb, const float* mu,
                   int64_t ldm, int64_t ncols, int64_t lda, const double* scale, double* A) {
  constexpr int R0 = kRegs / DV;
  constexpr int R = R0 < 1 ? 1 : (R0 > 12 ? 12 : R0);
  for (int64_t i0 = 0; i0 < q; i0 += R) {
    vf acc[R][DV] = {};
    const float* p = P + i0 * ldp;
    for (int64_t j = 0; j < nb; ++j) rank1_update(acc, p + j, ldp, mu + j * ldm);
    const int64_t rows = min64(R, q - i0);
    float tmp[DV * W];
    for (int64_t r = 0; r < rows; ++r) {
      for (int c = 0; c < DV; ++c) store(tmp + c * W, acc[r][c]);
      const double s = scale[i0 + r];
      double* a = A + (i0 + r) * lda;
      for (int64_t c = 0; c < ncols; ++c) a[c] += s * static_cast<double>(tmp[c]);
    }
  }
}

}  // namespace

void dot_tiles(const float* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
               float* G, int64_t ldg) {
  for (int64_t j0 = 0; j0 < nb; j0 += kPanel) {
    const float* pk = packed + (j0 / kPanel) * d * kPanel;
    const int64_t ncols = min64(kPanel, nb - j0);
    for (int64_t i0 = 0; i0 < q; i0 += MR)
      dot_block(rows + i0 * d, d, pk, G + i0 * ldg + j0, ldg, ncols);
  }
}

void accumulate(const float* P, int64_t ldp, int64_t q, int64_t nb, const float* mu,
                int64_t ldm, int64_t d, const double* scale, double* A) {
  // Rows of A narrow enough for a micro-tile of at least 3 rows (8 vectors
  // on AVX-512, 4 on AVX2) are done whole; wider rows go in blocks of 4
  // vectors, 3 or more rows each (the P tile is then read once per block,
  // from L2): fewer rows per micro-tile would make the loads outnumber the
  // FMAs. ldm is a multiple of 16, so ceil(columns / W) vectors never
  // read past it.
  const int64_t row_vectors = (d + W - 1) / W;
  constexpr int64_t kBlock = 4 * W;
  for (int64_t c0 = 0; c0 < d; c0 += kBlock) {
    const int64_t ncols = row_vectors <= kRegs / 3 ? d : (d - c0 < kBlock ? d - c0 : kBlock);
    switch ((ncols + W - 1) / W) {
#define LEDKDE_DV(n) \
  case n: accumulate_dv<n>(P, ldp, q, nb, mu + c0, ldm, ncols, d, scale, A + c0); break;
      LEDKDE_DV(1) LEDKDE_DV(2) LEDKDE_DV(3) LEDKDE_DV(4)
      LEDKDE_DV(5) LEDKDE_DV(6) LEDKDE_DV(7) LEDKDE_DV(8)
#undef LEDKDE_DV
      default: break;
    }
    if (ncols == d) break;
  }
}

}  // namespace ledkde::tile_gemm::LEDKDE_TG_NS
