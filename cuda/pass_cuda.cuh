// The CUDA score pass and the small kernels the operations share.
//
// pass_kernel: one warp per query row, one lane per component of a 32-wide
// tile. The block stages each (32 components x 64 coordinates) chunk of the
// data in shared memory, every warp measures its row's squared distances by
// coordinate differences (accumulated in float64, so no cancellation at small
// t or far from the origin), and the row state is updated with the online
// log-sum-exp of tile_math.h (lse_move_to), the same functions the CPU pass
// calls. The weighted sums A = sum p (mu - y) / v stay in global memory, one
// (rows x d) float64 buffer: no (rows x N) buffer exists.
#pragma once

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "cuda_api.h"
#include "ledkde/philox.h"
#include "ledkde/tile_math.h"

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

// Per-row reduction states in device memory.
struct RowStates {
  Buffer<double> m, S, E, A;  // (rows,), (rows,), (rows,), (rows, d)
  RowStates(int64_t rows, int64_t d) : m(rows), S(rows), E(rows), A(static_cast<size_t>(rows * d)) {}
};

constexpr int kWarps = 8;    // rows per block, one warp each
constexpr int kTileN = 32;   // components per tile, one per lane
constexpr int kTileD = 64;   // coordinates per staged chunk
constexpr unsigned kFull = 0xFFFFFFFFu;

__device__ __forceinline__ double warp_sum(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(kFull, v, o);
  return v;
}
__device__ __forceinline__ double warp_max(double v) {
  for (int o = 16; o > 0; o >>= 1) v = fmax(v, __shfl_xor_sync(kFull, v, o));
  return v;
}

// rows: (nrows, d) centred points; on return the states hold, per row,
// m (the largest logit), S, E and A = sum_j exp(l_j - m)(mu_j - row)/v_j.
template <class T>
__global__ void pass_kernel(const T* __restrict__ mu, const double* __restrict__ logw,
                            const double* __restrict__ var, int64_t n, int64_t d, double t,
                            const T* __restrict__ rows, int64_t nrows, double* m_out,
                            double* S_out, double* E_out, double* A) {
  __shared__ T tile[kTileN][kTileD + 1];  // +1: lanes reading one column hit distinct banks
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  const bool active = r < nrows;
  const T* y = rows + (active ? r : 0) * d;
  double* Ar = A + (active ? r : 0) * d;
  const double log_n = log(static_cast<double>(n));
  const double half_d = 0.5 * static_cast<double>(d);
  const double log2pi = 1.8378770664093453;
  LseScalars st = lse_init();
  double B = 0.0;  // sum p / v
  for (int64_t n0 = 0; n0 < n; n0 += kTileN) {
    const int64_t j = n0 + lane;
    double d2 = 0.0;
    for (int64_t c0 = 0; c0 < d; c0 += kTileD) {
      __syncthreads();
      for (int e = threadIdx.x; e < kTileN * kTileD; e += blockDim.x) {
        const int jj = e / kTileD, cc = e % kTileD;
        const int64_t gj = n0 + jj, gc = c0 + cc;
        tile[jj][cc] = (gj < n && gc < d) ? mu[gj * d + gc] : T(0);
      }
      __syncthreads();
      const int64_t cmax = d - c0 < kTileD ? d - c0 : kTileD;
      for (int64_t cc = 0; cc < cmax; ++cc) {
        const double diff = static_cast<double>(y[c0 + cc]) - static_cast<double>(tile[lane][cc]);
        d2 += diff * diff;
      }
    }
    double l = neg_inf(), v = 1.0;
    if (j < n) {
      v = t + (var ? var[j] : 0.0);
      const double lw = logw ? logw[j] : -log_n;
      l = lw - 0.5 * d2 / v - half_d * (log2pi + log(v));
    }
    const double m_new = fmax(st.m, warp_max(l));
    // Nothing but zero-weight components so far: no state to move.
    if (m_new == neg_inf()) continue;
    const double a = lse_move_to(st, m_new);
    // exp(-inf) = 0 for padding lanes and zero weights; keep 0 * -inf out of E.
    const double p = l == neg_inf() ? 0.0 : exp(l - m_new);
    st.S += warp_sum(p);
    st.E += warp_sum(p > 0.0 ? p * (l - m_new) : 0.0);
    const double pv = p / v;
    B = B * a + warp_sum(pv);
    if (!active) continue;
    // Every lane runs the same number of iterations: the shuffles need the whole warp.
    for (int64_t c0 = 0; c0 < d; c0 += 32) {
      const int64_t c = c0 + lane;
      double acc = 0.0;
      for (int jj = 0; jj < kTileN; ++jj) {
        const double w = __shfl_sync(kFull, pv, jj);
        if (w != 0.0 && c < d) acc += w * static_cast<double>(mu[(n0 + jj) * d + c]);
      }
      if (c < d) Ar[c] = Ar[c] * a + acc;
    }
  }
  if (!active) return;
  for (int64_t c = lane; c < d; c += 32) Ar[c] -= static_cast<double>(y[c]) * B;
  if (lane == 0) {
    m_out[r] = st.m;
    S_out[r] = st.S;
    E_out[r] = st.E;
  }
}

// Launches pass_kernel over rows_dev (nrows x d, centred) into states.
template <class T>
void run_pass(const DeviceMixture<T>& mix, const T* rows_dev, int64_t nrows, double t,
              RowStates& st) {
  if (nrows == 0) return;
  st.A.zero();
  const int64_t blocks = (nrows + kWarps - 1) / kWarps;
  pass_kernel<T><<<static_cast<unsigned>(blocks), kWarps * 32>>>(
      mix.mu_dev, mix.logw_dev, mix.var_dev, mix.n, mix.d, t, rows_dev, nrows, st.m.get(),
      st.S.get(), st.E.get(), st.A.get());
  check(cudaGetLastError(), "pass_kernel launch");
}

// rows[r] = y[r / copies] + u(r) - centre, u the kernel draw (r % copies) of
// query index0 + r / copies at evaluation `eval` (zero when h = 0): one warp
// per row, two passes over the stream for the uniform ball's norm.
template <class T>
__global__ void rows_kernel(const double* __restrict__ y, int64_t q, int64_t copies, int64_t d,
                            const double* __restrict__ centre, double h, int kind, bool antithetic,
                            uint64_t seed, uint32_t index0, uint32_t eval, T* rows) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (r >= q * copies) return;
  const int64_t i = r / copies;
  const uint32_t m = static_cast<uint32_t>(r % copies), index = index0 + static_cast<uint32_t>(i);
  const uint32_t base = kernel_base(m, antithetic);
  const int64_t nb = (d + 3) / 4;
  double scale = 0.0;
  if (h > 0.0) {
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
    if (h > 0.0) stream_normals4(seed, static_cast<uint32_t>(b), index, eval, kKernel, base, z);
    for (int k = 0; k < 4 && 4 * b + k < d; ++k) {
      const int64_t c = 4 * b + k;
      rows[r * d + c] = static_cast<T>(y[i * d + c] + scale * z[k] - centre[c]);
    }
  }
}

// Upload y (host, q x d) as float64 device rows.
template <class T>
void upload_as_double(const T* y, int64_t q, int64_t d, Buffer<double>& out) {
  std::vector<double> tmp(static_cast<size_t>(q * d));
  for (int64_t e = 0; e < q * d; ++e) tmp[e] = static_cast<double>(y[e]);
  out.upload(tmp.data(), tmp.size());
}

inline unsigned blocks_for(int64_t rows) { return static_cast<unsigned>((rows + kWarps - 1) / kWarps); }

// smoothed_cuda.cu: the (smoothed) score of float64 device points, shared with the sampler.
template <class T>
void smoothed_rows_cuda(const DeviceMixture<T>& mix, const double* y_dev, int64_t q, double t,
                        const SmoothOptions& sm, uint32_t index0, Buffer<T>& rows, RowStates& st,
                        double* score_dev, double* log_density_dev);

}  // namespace ledkde::cuda
