// Matrix products for the tiles, from the OpenBLAS build that the
// scipy-openblas32 wheel ships (symbols carry the "scipy_" prefix). Each call
// is single-threaded: ledkde threads over query tiles itself.
#pragma once

#include <cstdint>

#include <cblas.h>

namespace ledkde::blas {

// C (m x n, ldc) = A (m x k, lda) * B^T, B is (n x k, ldb); row-major.
inline void gemm_nt(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B,
                    int64_t ldb, float* C, int64_t ldc) {
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, A, lda, B, ldb, 0.0f,
                    C, ldc);
}
inline void gemm_nt(int64_t m, int64_t n, int64_t k, const double* A, int64_t lda, const double* B,
                    int64_t ldb, double* C, int64_t ldc) {
  scipy_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0, A, lda, B, ldb, 0.0, C,
                    ldc);
}
// C (m x n, ldc) = A (m x k, lda) * B (k x n, ldb); row-major.
inline void gemm_nn(int64_t m, int64_t n, int64_t k, const float* A, int64_t lda, const float* B,
                    int64_t ldb, float* C, int64_t ldc) {
  scipy_cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0f, A, lda, B, ldb, 0.0f,
                    C, ldc);
}
inline void gemm_nn(int64_t m, int64_t n, int64_t k, const double* A, int64_t lda, const double* B,
                    int64_t ldb, double* C, int64_t ldc) {
  scipy_cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1.0, A, lda, B, ldb, 0.0, C,
                    ldc);
}

// OpenBLAS must not start threads of its own inside ledkde's workers.
inline void single_threaded() { scipy_openblas_set_num_threads(1); }

}  // namespace ledkde::blas
