// The tile products of tile_gemm.h for one vector width; included by
// tile_gemm_avx512.cpp and tile_gemm_avx2.cpp, each compiled for its
// instruction set. GCC vector extensions: a vector of W floats is one
// register, and the accumulators of a micro-tile are small fixed arrays that
// the compiler keeps in registers. Everything here has internal linkage or
// lives in the per-ISA namespace (no shared inline functions that the linker
// could take from the wrong instruction set).
#include <cstdint>
#include <cstring>
#include <vector>

#include <immintrin.h>

#include "tile_gemm.h"

#if !defined(LEDKDE_TG_NS) || !defined(LEDKDE_TG_W)
#error "define LEDKDE_TG_NS and LEDKDE_TG_W before including tile_gemm_impl.h"
#endif

namespace ledkde::tile_gemm::LEDKDE_TG_NS {
namespace {

constexpr int W = LEDKDE_TG_W;                 // floats per vector register
constexpr int NV = static_cast<int>(kPanel) / W;  // vectors per row panel (dot_tiles)
// Micro-tiles of both products: MR rows x 2 vectors, 2 MR accumulators. AVX2
// has 16 vector registers: 12 accumulators, the 2 loaded vectors and the
// broadcast factor; AVX-512 has 32: 24 + 3.
constexpr int MR = W == 16 ? 12 : 6;
constexpr int NR = 2;
constexpr int64_t kMaxLiveBlocks = 64;  // tiles of up to 4096 components skip dead blocks
static_assert(MR <= kRowPad, "micro-tile taller than the row padding");
static_assert(NV % NR == 0, "micro-tile width must divide the row panel");


typedef float vf __attribute__((vector_size(W * sizeof(float))));

inline vf load(const float* p) {
  vf v;
  __builtin_memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, vf v) { __builtin_memcpy(p, &v, sizeof v); }
inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// One rank-1 update of an MR x NR register tile, the step of both products:
// acc[i][v] += a[i * lda] * b[v * bstride + [0, W)] for i < MR, v < NR.
inline __attribute__((always_inline)) void rank1_update(vf (&acc)[MR][NR], const float* a,
                                                        int64_t lda, const float* b,
                                                        int64_t bstride) {
  vf bv[NR];
#pragma GCC unroll 4
  for (int v = 0; v < NR; ++v) bv[v] = load(b + v * bstride);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
    const float ai = a[i * lda];
#pragma GCC unroll 4
    for (int v = 0; v < NR; ++v) acc[i][v] += ai * bv[v];
  }
}

// G rows [0, MR) x columns [0, NR W) from MR rows r (stride d) and NR W
// columns of a row panel pk (stride kPanel). All columns are stored: G's rows
// hold whole panels, and columns past the tile's end are never read. (Keep
// this function plain: a conditional start or a partial store made GCC spill
// the accumulators and halved its speed.)
inline void dot_block(const float* r, int64_t d, const float* pk, float* g, int64_t ldg) {
  vf acc[MR][NR] = {};
  for (int64_t k = 0; k < d; ++k) rank1_update(acc, r + k, d, pk + k * kPanel, W);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NR; ++v) store(g + i * ldg + v * W, acc[i][v]);
}

// Asks for the NR W floats at p (whole cache lines) to be brought into L2.
inline void prefetch_to_l2(const float* p) {
#pragma GCC unroll 2
  for (int e = 0; e < NR * W; e += 16) __builtin_prefetch(p + e, 0, 2);
}

// A[row[i]] columns [0, ncols) += scale[i] * (P rows x nb) * (nb x NR W
// columns of the components' rows, component j's at b + j * ldb) for i < rows,
// the sums in float, added in float64 (row stride lda); only the blocks of
// kLiveBlock components marked in live (null: all) are visited. kPrefetch:
// also asks for the same components' next NR W columns (at b + NR W), one
// component per step, so that the next block finds them in L2.
template <bool kPrefetch>
inline void accumulate_block(const float* p, int64_t ldp, int64_t nb, const float* b, int64_t ldb,
                             int64_t rows, int64_t ncols, const double* scale, double* A,
                             const int64_t* row, int64_t lda, const uint8_t* live) {
  // The rows of A this block adds to, asked for (to write) before the sums
  // that take thousands of cycles: A (q x d doubles) does not stay in L2, and
  // the additions at the end waited on it (a fifth of this function's samples
  // with the AVX2 kernels on Fashion-MNIST, Q = 256, t = 1).
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t c = 0; c < ncols; c += 8) __builtin_prefetch(A + row[i] * lda + c, 1, 3);
  vf acc[MR][NR] = {};
  for (int64_t j0 = 0; j0 < nb; j0 += kLiveBlock) {
    if (live && !live[j0 / kLiveBlock]) continue;
    const int64_t j1 = min64(nb, j0 + kLiveBlock);
    for (int64_t j = j0; j < j1; ++j) {
      rank1_update(acc, p + j, ldp, b + j * ldb, W);
      if constexpr (kPrefetch) prefetch_to_l2(b + j * ldb + NR * W);
    }
  }
  for (int64_t i = 0; i < rows; ++i) {
    float tmp[NR * W];
#pragma GCC unroll 4
    for (int v = 0; v < NR; ++v) store(tmp + v * W, acc[i][v]);
    const double s = scale[i];
    double* a = A + row[i] * lda;
    for (int64_t c = 0; c < ncols; ++c) a[c] += s * static_cast<double>(tmp[c]);
  }
}

// Vectors of W / 2 doubles, for the float64 kernels over the packed panels.
typedef double vd __attribute__((vector_size(W / 2 * sizeof(double))));

// W / 2 floats widened (exactly) to one vector of doubles. (For AVX2, GCC
// lowers __builtin_convertvector through the stack in halves: the intrinsic.)
inline vd widen(const float* p) {
  vd r;
#if LEDKDE_TG_W == 8
  const __m256d v = _mm256_cvtps_pd(_mm_loadu_ps(p));
  __builtin_memcpy(&r, &v, sizeof r);
#else
  typedef float hf __attribute__((vector_size(W / 2 * sizeof(float))));
  hf m;
  __builtin_memcpy(&m, p, sizeof m);
  r = __builtin_convertvector(m, vd);
#endif
  return r;
}

// The float64 first product: MR64 rows x 4 vectors of W / 2 components
// (AVX2: 3 x 16, AVX-512: 6 x 32) of a row panel pk (stride kPanel), float
// (widened here) or already widened to double; each panel vector shared by
// the rows; 12 or 24 accumulators.
constexpr int MR64 = W == 16 ? 6 : 3;
constexpr int NV64 = 4;
constexpr int64_t kBlock64 = NV64 * (W / 2);
static_assert(MR64 <= kRowPad && kPanel % kBlock64 == 0, "float64 micro-tile must fit");

inline vd panel_vector(const float* p) { return widen(p); }
inline vd panel_vector(const double* p) {
  vd m;
  __builtin_memcpy(&m, p, sizeof m);
  return m;
}

template <class P>
inline void dot_block64(const double* r, int64_t d, const P* pk, double* g, int64_t ldg) {
  vd acc[MR64][NV64] = {};
  for (int64_t k = 0; k < d; ++k) {
    double a[MR64];
#pragma GCC unroll 8
    for (int i = 0; i < MR64; ++i) a[i] = r[i * d + k];
#pragma GCC unroll 4
    for (int v = 0; v < NV64; ++v) {
      const vd m = panel_vector(pk + k * kPanel + v * (W / 2));
#pragma GCC unroll 8
      for (int i = 0; i < MR64; ++i) acc[i][v] += a[i] * m;
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < MR64; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < NV64; ++v)
      __builtin_memcpy(g + i * ldg + v * (W / 2), &acc[i][v], sizeof(vd));
}

// Runs block(its kRows rows, its first column in the row panel, its block of
// G) over a first product: panel by panel (d x kPanel, which stays in L1 while
// the row groups stream past it), kWidth columns at a time.
template <int64_t kWidth, int kRows, class In, class Out, class Block>
inline void over_panels(const In* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
                        Out* G, int64_t ldg, Block block) {
  for (int64_t j0 = 0; j0 < nb; j0 += kPanel) {
    const float* pk = packed + (j0 / kPanel) * d * kPanel;
    for (int64_t h = 0; h < kPanel; h += kWidth)
      for (int64_t i0 = 0; i0 < q; i0 += kRows) block(rows + i0 * d, pk + h, G + i0 * ldg + j0 + h);
  }
}

}  // namespace

void dot_tiles(const float* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
               float* G, int64_t ldg) {
  over_panels<NR * W, MR>(rows, q, d, packed, nb, G, ldg,
                          [&](const float* r, const float* pk, float* g) { dot_block(r, d, pk, g, ldg); });
}

void accumulate(const float* P, int64_t ldp, int64_t q, int64_t nb, const float* mu, int64_t ldb,
                int64_t d, const double* scale, double* A, const int64_t* row, const uint8_t* live,
                int64_t ld_live) {
  // Blocks of NR W columns, read straight from the components' rows (the
  // last block of a row runs into the next row, or into the padding after
  // the last one: those columns are computed and dropped).
  constexpr int64_t kBlock = NR * W;
  static_assert(kBlock <= kRowTail, "the mixture pads its rows for this block");
  const int64_t nblk = (nb + kLiveBlock - 1) / kLiveBlock;
  uint8_t any[kMaxLiveBlocks];
  const bool skip = live && nblk <= kMaxLiveBlocks;
  // Column block by column block: a block of the components (nb strided
  // reads of kBlock floats) stays in L1/L2 while the groups of MR rows of P
  // (MR x nb, from L2) stream past it. (Row groups outer streamed the whole
  // tile of components, 1.6 MB at d = 784, from L3 once per group: the AVX2
  // kernels' 6-row groups spent 1.3x as long as the 12-row AVX-512 ones.)
  // The first group of each block prefetches the next block: one cache line
  // (AVX2) or two per component, strided by ldb, which the hardware
  // prefetchers did not bring in time (the loads waited on memory: a
  // single-thread test of this function at q = 128, d = 784 ran 1.27-1.30x
  // (AVX2) and 1.25-1.27x (AVX-512) as long as dot_tiles on the same sizes
  // without the prefetch, 1.00-1.03x and 1.12-1.15x with it).
  for (int64_t c0 = 0; c0 < d; c0 += kBlock) {
    for (int64_t i0 = 0; i0 < q; i0 += MR) {
      const int64_t rows = min64(MR, q - i0);
      if (skip) {
        for (int64_t k = 0; k < nblk; ++k) any[k] = 0;
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t k = 0; k < nblk; ++k) any[k] |= live[(i0 + r) * ld_live + k];
      }
      const bool prefetch = i0 == 0 && c0 + kBlock < d;
      (prefetch ? accumulate_block<true> : accumulate_block<false>)(
          P + i0 * ldp, ldp, nb, mu + c0, ldb, rows, min64(kBlock, d - c0), scale + i0, A + c0, row + i0, d,
          skip ? any : nullptr);
    }
  }
}

void exact_dist2(const double* row, int64_t d, const float* packed, int64_t nb, double* d2) {
  // One panel at a time: kPanel components, one accumulator vector of W/2
  // doubles per W/2 of them; the panel's floats widen exactly to float64.
  constexpr int NH = static_cast<int>(kPanel) / (W / 2);
  for (int64_t j0 = 0; j0 < nb; j0 += kPanel) {
    const float* pk = packed + (j0 / kPanel) * d * kPanel;
    vd acc[NH] = {};
    for (int64_t k = 0; k < d; ++k) {
      const double yk = row[k];
#pragma GCC unroll 8
      for (int v = 0; v < NH; ++v) {
        const vd diff = yk - widen(pk + k * kPanel + v * (W / 2));
        acc[v] += diff * diff;
      }
    }
    double tmp[kPanel];
#pragma GCC unroll 8
    for (int v = 0; v < NH; ++v) __builtin_memcpy(tmp + v * (W / 2), &acc[v], sizeof(vd));
    const int64_t cols = min64(kPanel, nb - j0);
    for (int64_t c = 0; c < cols; ++c) d2[j0 + c] = tmp[c];
  }
}

void dot_tiles_f64(const double* rows, int64_t q, int64_t d, const float* packed, int64_t nb,
                   double* G, int64_t ldg) {
  if constexpr (W == 8) {
    // AVX2: the panel widened inside the micro-kernel (a float64 copy, read
    // from L2 by each group of 3 rows, measured 13% slower).
    over_panels<kBlock64, MR64>(rows, q, d, packed, nb, G, ldg, [&](const double* r, const float* pk, double* g) {
      dot_block64(r, d, pk, g, ldg);
    });
  } else {
    // AVX-512: each panel widened to float64 once (d x kPanel doubles, in
    // L2) for all the groups of 6 rows; widening it in the micro-kernel took
    // FP slots from the FMAs (Fashion-MNIST t = 10: 5% of the whole pass).
    thread_local std::vector<double> wide;
    wide.resize(static_cast<size_t>(d * kPanel));
    for (int64_t j0 = 0; j0 < nb; j0 += kPanel) {
      const float* pk = packed + (j0 / kPanel) * d * kPanel;
      for (int64_t e = 0; e < d * kPanel; ++e) wide[e] = static_cast<double>(pk[e]);
      for (int64_t h = 0; h < kPanel; h += kBlock64)
        for (int64_t i0 = 0; i0 < q; i0 += MR64)
          dot_block64(rows + i0 * d, d, wide.data() + h, G + i0 * ldg + j0 + h, ldg);
    }
  }
}

}  // namespace ledkde::tile_gemm::LEDKDE_TG_NS
