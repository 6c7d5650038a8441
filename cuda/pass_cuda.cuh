// Helpers of the CUDA operations: error checks, device buffers, the per-row
// states of a score pass, warp reductions, and the kernel that builds the
// (perturbed, centred) rows of a pass. The pass itself is in pass_cuda.cu.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_api.h"
#include "ledkde/philox.h"
#include "ledkde/tile_math.h"
#include "device_helpers.cuh"

namespace ledkde::cuda {

inline void check(cudaError_t e, const char* what) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string("ledkde CUDA: ") + what + ": " + cudaGetErrorString(e));
}

// Owning device buffer.
template <class U>
class Buffer {
 public:
  explicit Buffer(size_t count) : n_(count) {
    if (n_) check(cudaMalloc(&p_, n_ * sizeof(U)), "cudaMalloc");
  }
  ~Buffer() {
    if (p_) cudaFree(p_);
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  U* get() const { return p_; }
  void upload(const U* host, size_t count) {
    if (count) check(cudaMemcpy(p_, host, count * sizeof(U), cudaMemcpyHostToDevice), "upload");
  }
  void download(U* host, size_t count) const {
    if (count) check(cudaMemcpy(host, p_, count * sizeof(U), cudaMemcpyDeviceToHost), "download");
  }
  void zero() {
    if (n_) check(cudaMemset(p_, 0, n_ * sizeof(U)), "cudaMemset");
  }

 private:
  U* p_ = nullptr;
  size_t n_ = 0;
};

// Device scratch that grows on demand and is reused by later passes.
class Scratch {
 public:
  Scratch() = default;
  ~Scratch() {
    if (p_) cudaFree(p_);
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  void* get(size_t bytes) {
    if (bytes > size_) {
      if (p_) cudaFree(p_);
      p_ = nullptr;
      size_ = 0;
      check(cudaMalloc(&p_, bytes), "cudaMalloc (pass scratch)");
      size_ = bytes;
    }
    return p_;
  }

 private:
  void* p_ = nullptr;
  size_t size_ = 0;
};

// A Scratch lent from a small per-device pool for the lifetime of the lease,
// so that the large tile buffers of a pass (hundreds of MB) are allocated once
// rather than on every call (pass_cuda.cu).
class ScratchLease {
 public:
  ScratchLease();
  ~ScratchLease();
  ScratchLease(const ScratchLease&) = delete;
  ScratchLease& operator=(const ScratchLease&) = delete;
  void* get(size_t bytes) { return s_->get(bytes); }

 private:
  int device_ = 0;
  Scratch* s_ = nullptr;
};

// Per-row reduction states in device memory, and the pass's scratch; state()
// is their PartialState view, the convention of every pass (finish_rows.h).
struct RowStates {
  Buffer<double> m, S, E, A;  // (rows,), (rows,), (rows,), (rows, d)
  Buffer<double> B, ny, delta, alpha, gamma;  // (rows,) each: pass bookkeeping
  ScratchLease work;  // logit and weight tiles, partial products
  Scratch params;     // per-component constants
  RowStates(int64_t rows, int64_t d)
      : m(rows), S(rows), E(rows), A(static_cast<size_t>(rows * d)), B(rows), ny(rows), delta(rows),
        alpha(rows), gamma(rows) {}
  PartialState state() const { return PartialState{m.get(), S.get(), E.get(), A.get(), B.get()}; }
};

// The score pass (pass_cuda.cu): rows_dev (nrows x d, centred like the
// components) against every component of mix. On return st holds, per row,
// m (the largest logit), S, E and A = sum_j exp(l_j - m)(mu_j - row)/v_j.
template <class T>
void run_pass(const DeviceMixture<T>& mix, const T* rows_dev, int64_t nrows, double t, RowStates& st);

// The same by the dense route only (every distance computed).
template <class T>
void dense_pass(const DeviceMixture<T>& mix, const T* rows_dev, int64_t nrows, double t, RowStates& st);

// The pruned route (prune_cuda.cu): false, having left st unspecified, when
// pruning is off, does not apply to mix (no projection, weights, variances,
// d <= 8, too few components) or would not pay (most rows of the probe near
// many components: large t); the caller then runs dense_pass.
template <class T>
bool pruned_pass(const DeviceMixture<T>& mix, const T* rows_dev, int64_t nrows, double t, RowStates& st);

// rows[r] = y[r / copies] + u(r) - centre, u the kernel draw (r % copies) of
// query index0 + r / copies at evaluation `eval`; zero when h = 0 and for the
// pilot rows (r % copies >= draws, smooth_estimator.h). u_pre (orthogonal
// draws, made by kernel_draws beforehand; q x draws x d) or the stream: one
// warp per row, two passes over the stream for the uniform ball's norm.
template <class T>
__global__ void rows_kernel(const double* __restrict__ y, int64_t q, int64_t copies, int64_t draws, int64_t d,
                            const double* __restrict__ centre, double h, int kind, bool antithetic,
                            uint64_t seed, uint32_t index0, uint32_t eval, const double* __restrict__ u_pre,
                            T* rows) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (r >= q * copies) return;
  const int64_t i = r / copies;
  const uint32_t m = static_cast<uint32_t>(r % copies), index = index0 + static_cast<uint32_t>(i);
  const bool perturbed = h > 0.0 && m < draws;
  if (u_pre) {
    const double* u = u_pre + (i * draws + (perturbed ? m : 0)) * d;
    for (int64_t c = lane; c < d; c += 32)
      rows[r * d + c] = static_cast<T>(y[i * d + c] + (perturbed ? u[c] : 0.0) - centre[c]);
    return;
  }
  const uint32_t base = kernel_base(m, antithetic);
  const int64_t nb = (d + 3) / 4;
  double scale = 0.0;
  if (perturbed) {
    double norm2 = 0.0;
    if (kind == kUniformBall) {
      for (int64_t b = lane; b < nb; b += 32) {
        double z[4];
        stream_normals4(seed, static_cast<uint32_t>(b), index, eval, kKernel, base, z);
        for (int k = 0; k < 4 && 4 * b + k < d; ++k) norm2 += z[k] * z[k];
      }
      norm2 = warp_sum(norm2);
    }
    scale = kernel_scale(seed, index, eval, m, antithetic, kind, h, d, norm2);
  }
  for (int64_t b = lane; b < nb; b += 32) {
    double z[4] = {0.0, 0.0, 0.0, 0.0};
    if (perturbed) stream_normals4(seed, static_cast<uint32_t>(b), index, eval, kKernel, base, z);
    for (int k = 0; k < 4 && 4 * b + k < d; ++k) {
      const int64_t c = 4 * b + k;
      rows[r * d + c] = static_cast<T>(y[i * d + c] + scale * z[k] - centre[c]);
    }
  }
}

inline unsigned blocks_for(int64_t rows) { return static_cast<unsigned>((rows + kWarps - 1) / kWarps); }

// Blocks of `threads` threads that cover `count` items.
inline unsigned grid_of(int64_t count, int threads) {
  return static_cast<unsigned>((count + threads - 1) / threads);
}

// A size rounded up to 256 bytes, where scratch buffers are laid out one after another.
inline size_t aligned_bytes(size_t bytes) { return (bytes + 255) / 256 * 256; }

// Scratch of smoothed evaluations of up to q points with `copies` rows each
// (draws plus the pilot row) and `draws` kernel draws.
template <class T>
struct SmoothScratch {
  Buffer<T> rows;       // (q * copies, d)
  RowStates st;         // q * copies rows
  Buffer<double> se2;   // (q, d) variance of the mean per coordinate
  Buffer<double> u;     // (q, draws, d) orthogonal draws (empty otherwise)
  SmoothScratch(int64_t q, int64_t copies, int64_t draws, int64_t d, bool orthogonal)
      : rows(static_cast<size_t>(q * copies * d)), st(q * copies, d), se2(static_cast<size_t>(q * d)),
        u(orthogonal ? static_cast<size_t>(q * draws * d) : 0) {}
};

// smoothed_cuda.cu: the (smoothed) score of float64 device points y_dev
// (q x d) with stream indices index0.., at evaluation sm.eval, into the
// device outputs of out (cpu.h SmoothRowOutputs); shared with the sampler.
template <class T>
void smoothed_rows_cuda(const DeviceMixture<T>& mix, const double* y_dev, int64_t q, double t,
                        const SmoothOptions& sm, uint32_t index0, SmoothScratch<T>& scratch, SmoothRowOutputs out);

}  // namespace ledkde::cuda
