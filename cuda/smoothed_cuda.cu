// Kernel-smoothed score and LED-KDE log-density on the GPU: the n_kernel
// perturbed copies of every query are the rows of one pass over the data.
#include "pass_cuda.cuh"

namespace ledkde::cuda {

namespace {

// score[i] = mean over copies of A / S; log_density[i] = mean of m + log S.
__global__ void average_kernel(const double* __restrict__ S, const double* __restrict__ m,
                               const double* __restrict__ A, int64_t q, int64_t copies, int64_t d,
                               double* score, double* log_density) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= q * d) return;
  const int64_t i = e / d, c = e % d;
  double s = 0.0, ld = 0.0;
  for (int64_t k = 0; k < copies; ++k) {
    const int64_t r = i * copies + k;
    s += A[r * d + c] / S[r];  // division, as on the CPU: h = 0 gives the plain score exactly
    ld += m[r] + log(S[r]);
  }
  score[e] = s / static_cast<double>(copies);
  if (log_density && c == 0) log_density[i] = ld / static_cast<double>(copies);
}

}  // namespace


// Shared with the sampler: the (smoothed) score of q points y_dev (float64,
// q x d) with stream indices index0.. at evaluation sm.eval, into score_dev
// (q x d) and, when not null, log_density_dev (q,). rows/states are scratch
// sized for q * copies rows.
template <class T>
void smoothed_rows_cuda(const DeviceMixture<T>& mix, const double* y_dev, int64_t q, double t,
                        const SmoothOptions& sm, uint32_t index0, Buffer<T>& rows, RowStates& st,
                        double* score_dev, double* log_density_dev) {
  const int64_t copies = effective_draws(sm), d = mix.d;
  const int64_t nrows = q * copies;
  rows_kernel<T><<<blocks_for(nrows), kWarps * 32>>>(y_dev, q, copies, d, mix.centre_dev, sm.bandwidth,
                                                     sm.kernel, sm.antithetic, sm.seed, index0, sm.eval,
                                                     rows.get());
  check(cudaGetLastError(), "rows_kernel launch");
  run_pass(mix, rows.get(), nrows, t, st);
  const int64_t total = q * d;
  average_kernel<<<static_cast<unsigned>((total + 255) / 256), 256>>>(st.S.get(), st.m.get(), st.A.get(), q,
                                                                      copies, d, score_dev, log_density_dev);
  check(cudaGetLastError(), "average_kernel launch");
}

namespace {

template <class From, class To>
__global__ void convert_kernel(const From* __restrict__ in, int64_t count, To* out) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < count) out[e] = static_cast<To>(in[e]);
}

template <class From, class To>
void convert(const From* in, int64_t count, To* out) {
  if (count == 0 || !out) return;
  convert_kernel<From, To><<<static_cast<unsigned>((count + 255) / 256), 256>>>(in, count, out);
  check(cudaGetLastError(), "convert_kernel launch");
}

}  // namespace

template <class T>
void smoothed_device(const DeviceMixture<T>& mix, const T* y_dev, int64_t q, double t, const SmoothOptions& sm,
                     T* score_dev, T* log_density_dev) {
  if (q == 0) return;
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  const int64_t d = mix.d, copies = effective_draws(sm);
  Buffer<double> yd(static_cast<size_t>(q * d)), sd(static_cast<size_t>(q * d)), ldd(q);
  convert(y_dev, q * d, yd.get());
  Buffer<T> rows(static_cast<size_t>(q * copies * d));
  RowStates st(q * copies, d);
  smoothed_rows_cuda(mix, yd.get(), q, t, sm, 0u, rows, st, sd.get(), ldd.get());
  convert(sd.get(), q * d, score_dev);
  convert(ldd.get(), q, log_density_dev);
  check(cudaDeviceSynchronize(), "smoothed score");
}

template <class T>
void smoothed_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, const SmoothOptions& sm,
                   T* score, T* log_density) {
  if (q == 0) return;
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  const size_t qd = static_cast<size_t>(q * mix.d);
  Buffer<T> y_dev(qd), s_dev(score ? qd : 0), ld_dev(log_density ? q : 0);
  y_dev.upload(y, qd);
  smoothed_device(mix, y_dev.get(), q, t, sm, score ? s_dev.get() : nullptr,
                  log_density ? ld_dev.get() : nullptr);
  if (score) s_dev.download(score, qd);
  if (log_density) ld_dev.download(log_density, q);
}

#define LEDKDE_INSTANTIATE(T)                                                                      \
  template void smoothed_rows_cuda(const DeviceMixture<T>&, const double*, int64_t, double,        \
                                   const SmoothOptions&, uint32_t, Buffer<T>&, RowStates&, double*, \
                                   double*);                                                         \
  template void smoothed_cuda(const DeviceMixture<T>&, const T*, int64_t, double,                  \
                              const SmoothOptions&, T*, T*);                                       \
  template void smoothed_device(const DeviceMixture<T>&, const T*, int64_t, double,                \
                                const SmoothOptions&, T*, T*);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde::cuda
