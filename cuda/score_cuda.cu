// Fused outputs and partial states of the plain score pass on the GPU. The
// queries are centred and the outputs finished on the device; the host
// entry points only move y in and the results out.
#include "ledkde/finish_rows.h"
#include "pass_cuda.cuh"

namespace ledkde::cuda {

namespace {

// rows = y - centre in the working precision (as the CPU pass).
template <class T>
__global__ void centre_kernel(const T* __restrict__ y, const double* __restrict__ centre, int64_t q, int64_t d,
                              T* rows) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < q * d) rows[e] = static_cast<T>(static_cast<double>(y[e]) - centre[e % d]);
}

// The outputs of finish_rows.h, one thread per element of y.
template <class T>
__global__ void finish_outputs_kernel(PartialState st, const T* __restrict__ y, int64_t q, int64_t d, double t,
                                      PassOutputs<T> out) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e < q * d) finish_element(st, y, d, t, 0.0, e, out);
}

unsigned grid256(int64_t count) { return static_cast<unsigned>((count + 255) / 256); }

// The pass over device queries y_dev into states st.
template <class T>
void run_on_device(const DeviceMixture<T>& mix, const T* y_dev, int64_t q, double t, Buffer<T>& rows,
                   RowStates& st) {
  centre_kernel<T><<<grid256(q * mix.d), 256>>>(y_dev, mix.centre_dev, q, mix.d, rows.get());
  check(cudaGetLastError(), "centre_kernel launch");
  run_pass(mix, rows.get(), q, t, st);
}

}  // namespace

template <class T>
void evaluate_device(const DeviceMixture<T>& mix, const T* y_dev, int64_t q, double t, PassOutputs<T> out) {
  if (q == 0) return;
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  Buffer<T> rows(static_cast<size_t>(q * mix.d));
  RowStates st(q, mix.d);
  run_on_device(mix, y_dev, q, t, rows, st);
  finish_outputs_kernel<T><<<grid256(q * mix.d), 256>>>(st.state(), y_dev, q, mix.d, t, out);
  check(cudaGetLastError(), "finish_outputs_kernel launch");
  check(cudaDeviceSynchronize(), "score pass");
}

template <class T>
void evaluate_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, PassOutputs<T> out) {
  if (q == 0) return;
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  const size_t qd = static_cast<size_t>(q * mix.d);
  Buffer<T> y_dev(qd);
  y_dev.upload(y, qd);
  // Device outputs for the requested host outputs, copied back after the pass.
  Buffer<T> ld(out.log_density ? q : 0), sc(out.score ? qd : 0), dn(out.denoise ? qd : 0),
      en(out.entropy ? q : 0), mw(out.max_weight ? q : 0);
  PassOutputs<T> dev{out.log_density ? ld.get() : nullptr, out.score ? sc.get() : nullptr,
                     out.denoise ? dn.get() : nullptr, out.entropy ? en.get() : nullptr,
                     out.max_weight ? mw.get() : nullptr};
  evaluate_device(mix, y_dev.get(), q, t, dev);
  if (out.log_density) ld.download(out.log_density, q);
  if (out.score) sc.download(out.score, qd);
  if (out.denoise) dn.download(out.denoise, qd);
  if (out.entropy) en.download(out.entropy, q);
  if (out.max_weight) mw.download(out.max_weight, q);
}

template <class T>
void partial_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, PartialState out) {
  if (q == 0) return;
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  const size_t qd = static_cast<size_t>(q * mix.d);
  Buffer<T> y_dev(qd), rows(qd);
  y_dev.upload(y, qd);
  RowStates st(q, mix.d);
  run_on_device(mix, y_dev.get(), q, t, rows, st);
  check(cudaDeviceSynchronize(), "partial pass");
  std::vector<double> m(q);
  st.m.download(m.data(), q);
  st.S.download(out.S, q);
  st.E.download(out.E, q);
  st.A.download(out.A, qd);
  if (out.B) st.B.download(out.B, q);
  for (int64_t i = 0; i < q; ++i) out.m[i] = m[i] + mix.log_mass;  // un-normalized weights, as partial_cpu
}

#define LEDKDE_INSTANTIATE(T)                                                                        \
  template void evaluate_device(const DeviceMixture<T>&, const T*, int64_t, double, PassOutputs<T>); \
  template void evaluate_cuda(const DeviceMixture<T>&, const T*, int64_t, double, PassOutputs<T>);   \
  template void partial_cuda(const DeviceMixture<T>&, const T*, int64_t, double, PartialState);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde::cuda
