// Fused outputs and partial states of the plain score pass on the GPU.
#include "ledkde/finish_rows.h"
#include "pass_cuda.cuh"

namespace ledkde::cuda {

namespace {

// Centred rows of the queries in the working precision.
template <class T>
void centred_rows(const DeviceMixture<T>& mix, const T* y, int64_t q, Buffer<T>& rows) {
  std::vector<T> tmp(static_cast<size_t>(q * mix.d));
  for (int64_t i = 0; i < q; ++i)
    for (int64_t c = 0; c < mix.d; ++c)
      tmp[i * mix.d + c] = static_cast<T>(static_cast<double>(y[i * mix.d + c]) - mix.centre[c]);
  rows.upload(tmp.data(), tmp.size());
}

template <class T>
void run(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, std::vector<double>& m,
         std::vector<double>& S, std::vector<double>& E, std::vector<double>& A) {
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  Buffer<T> rows(static_cast<size_t>(q * mix.d));
  centred_rows(mix, y, q, rows);
  RowStates st(q, mix.d);
  run_pass(mix, rows.get(), q, t, st);
  check(cudaDeviceSynchronize(), "score pass");
  m.resize(q);
  S.resize(q);
  E.resize(q);
  A.resize(static_cast<size_t>(q * mix.d));
  st.m.download(m.data(), q);
  st.S.download(S.data(), q);
  st.E.download(E.data(), q);
  st.A.download(A.data(), A.size());
}

}  // namespace

template <class T>
void evaluate_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, PassOutputs<T> out) {
  if (q == 0) return;
  std::vector<double> m, S, E, A;
  run(mix, y, q, t, m, S, E, A);
  std::vector<LseScalars> st(q);
  for (int64_t i = 0; i < q; ++i) st[i] = LseScalars{m[i], S[i], E[i]};
  finish_rows(st.data(), A.data(), y, q, mix.d, t, 0.0, out);
}

template <class T>
void partial_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, PartialState out) {
  if (q == 0) return;
  std::vector<double> m, S, E, A;
  run(mix, y, q, t, m, S, E, A);
  for (int64_t i = 0; i < q; ++i) {
    out.m[i] = m[i] + mix.log_mass;  // un-normalized weights, as partial_cpu
    out.S[i] = S[i];
    out.E[i] = E[i];
  }
  std::copy(A.begin(), A.end(), out.A);
}

template void evaluate_cuda(const DeviceMixture<float>&, const float*, int64_t, double, PassOutputs<float>);
template void evaluate_cuda(const DeviceMixture<double>&, const double*, int64_t, double, PassOutputs<double>);
template void partial_cuda(const DeviceMixture<float>&, const float*, int64_t, double, PartialState);
template void partial_cuda(const DeviceMixture<double>&, const double*, int64_t, double, PartialState);

}  // namespace ledkde::cuda
