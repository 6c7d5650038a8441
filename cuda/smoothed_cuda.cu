// Kernel-smoothed score and LED-KDE log-density on the GPU: the kernel draws
// of every query (and, when the estimator needs it, one unperturbed pilot row
// per query) are the rows of one pass over the data; the estimators of
// smooth_estimator.h (the same functions as the CPU's) turn the rows' states
// into the means and their standard errors.
#include "pass_cuda.cuh"

namespace ledkde::cuda {

namespace {

// The orthogonal draws of each query (one thread per query, q x draws x d).
__global__ void draws_kernel(int64_t q, int64_t draws, int64_t d, uint64_t seed, uint32_t index0, uint32_t eval,
                             bool antithetic, int kind, double h, double* u) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= q) return;
  kernel_draws(seed, index0 + static_cast<uint32_t>(i), eval, draws, antithetic, true, kind, h, d, u + i * draws * d);
}

// The parameters of the estimate common to all queries of an evaluation.
struct EstimateParams {
  int64_t q, copies, draws, d;
  double h, t;
  int estimator;
  bool antithetic, per_variance, pilot;
};

// One thread per (query, coordinate): the score estimate and the variance of its mean.
template <class T>
__global__ void score_kernel(EstimateParams p, const double* __restrict__ S, const double* __restrict__ A,
                             const double* __restrict__ B, const T* __restrict__ rows, const double* __restrict__ y,
                             const double* __restrict__ centre, double* score, double* se2) {
  const int64_t e = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (e >= p.q * p.d) return;
  const int64_t i = e / p.d, k = e % p.d;
  const int64_t r0 = i * p.copies, rp = r0 + p.draws;
  const double beta = control_beta(p.h, p.estimator, p.per_variance, p.t, p.pilot, p.pilot ? B[rp] : 0.0,
                                   p.pilot ? S[rp] : 1.0);
  const ScoreDraws<T> f{A + r0 * p.d, S + r0, rows + r0 * p.d, p.d, k, y[e] - centre[k], beta};
  unit_mean_se2(p.draws, p.antithetic, f, score[e], se2[e]);
}

// One thread per query: the score's standard error and relative error, the
// log-density estimate and its standard error.
template <class T>
__global__ void query_kernel(EstimateParams p, const double* __restrict__ mx, const double* __restrict__ S,
                             const double* __restrict__ A, const T* __restrict__ rows, const double* __restrict__ y,
                             const double* __restrict__ centre, const double* __restrict__ score,
                             const double* __restrict__ se2, SmoothRowOutputs out) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= p.q) return;
  const int64_t r0 = i * p.copies, rp = r0 + p.draws, d = p.d;
  if (out.score && (out.score_se || out.relative_se)) {
    double v = 0.0, n2 = 0.0;
    for (int64_t k = 0; k < d; ++k) {
      v += se2[i * d + k];
      n2 += score[i * d + k] * score[i * d + k];
    }
    if (out.score_se) out.score_se[i] = sqrt(v);
    if (out.relative_se) out.relative_se[i] = relative_error(sqrt(v), sqrt(n2));
  }
  if (out.log_density) {
    const LogDensityDraws<T> f{mx + r0, S + r0, p.pilot ? A + rp * d : nullptr, p.pilot ? S[rp] : 1.0,
                               rows + r0 * d, y + i * d, centre, d};
    double mean, v;
    unit_mean_se2(p.draws, p.antithetic, f, mean, v);
    out.log_density[i] = mean;
    if (out.log_density_se) out.log_density_se[i] = sqrt(v);
  }
}


}  // namespace

template <class T>
void smoothed_rows_cuda(const DeviceMixture<T>& mix, const double* y_dev, int64_t q, double t,
                        const SmoothOptions& sm, uint32_t index0, SmoothScratch<T>& scratch, SmoothRowOutputs out) {
  const int64_t draws = effective_draws(sm), d = mix.d;
  const bool pilot = has_pilot(sm, mix.has_variances, out.log_density != nullptr);
  const int64_t copies = draws + (pilot ? 1 : 0), nrows = q * copies;
  const bool orthogonal = sm.orthogonal && sm.bandwidth > 0.0;
  if (orthogonal) {
    draws_kernel<<<grid_of(q, 64), 64>>>(q, draws, d, sm.seed, index0, sm.eval, sm.antithetic, sm.kernel,
                                         sm.bandwidth, scratch.u.get());
    check(cudaGetLastError(), "draws_kernel launch");
  }
  rows_kernel<T><<<blocks_for(nrows), kWarps * 32>>>(y_dev, q, copies, draws, d, mix.centre_dev, sm.bandwidth,
                                                     sm.kernel, sm.antithetic, sm.seed, index0, sm.eval,
                                                     orthogonal ? scratch.u.get() : nullptr, scratch.rows.get());
  check(cudaGetLastError(), "rows_kernel launch");
  RowStates& st = scratch.st;
  run_pass(mix, scratch.rows.get(), nrows, t, st);
  const EstimateParams p{q, copies, draws, d, sm.bandwidth, t, sm.estimator, sm.antithetic, mix.has_variances, pilot};
  if (out.score) {
    score_kernel<T><<<grid_of(q * d, 256), 256>>>(p, st.S.get(), st.A.get(), st.B.get(), scratch.rows.get(), y_dev,
                                                  mix.centre_dev, out.score, scratch.se2.get());
    check(cudaGetLastError(), "score_kernel launch");
  }
  if (out.log_density || out.score_se || out.relative_se) {
    query_kernel<T><<<grid_of(q, 128), 128>>>(p, st.m.get(), st.S.get(), st.A.get(), scratch.rows.get(), y_dev,
                                              mix.centre_dev, out.score, scratch.se2.get(), out);
    check(cudaGetLastError(), "query_kernel launch");
  }
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
                     SmoothOutputs<T> out_dev) {
  if (q == 0) return;
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  const int64_t d = mix.d, draws = effective_draws(sm);
  const int64_t copies = rows_per_point(sm, mix.has_variances, out_dev.log_density != nullptr);
  Buffer<double> yd(static_cast<size_t>(q * d)), sd(static_cast<size_t>(q * d)), ldd(q), sse(q), lse(q);
  convert(y_dev, q * d, yd.get());
  SmoothScratch<T> scratch(q, copies, draws, d, sm.orthogonal);
  SmoothRowOutputs o;
  if (out_dev.score) o.score = sd.get();
  if (out_dev.score_se) o.score_se = sse.get();
  if (out_dev.log_density) o.log_density = ldd.get();
  if (out_dev.log_density_se) o.log_density_se = lse.get();
  smoothed_rows_cuda(mix, yd.get(), q, t, sm, 0u, scratch, o);
  convert(o.score, q * d, out_dev.score);
  convert(o.score_se, q, out_dev.score_se);
  convert(o.log_density, q, out_dev.log_density);
  convert(o.log_density_se, q, out_dev.log_density_se);
  check(cudaDeviceSynchronize(), "smoothed score");
}

template <class T>
void smoothed_cuda(const DeviceMixture<T>& mix, const T* y, int64_t q, double t, const SmoothOptions& sm,
                   SmoothOutputs<T> out) {
  if (q == 0) return;
  check(cudaSetDevice(mix.device), "cudaSetDevice");
  const size_t qd = static_cast<size_t>(q * mix.d);
  Buffer<T> y_dev(qd), s_dev(out.score ? qd : 0), ld_dev(out.log_density ? q : 0),
      sse_dev(out.score_se ? q : 0), lse_dev(out.log_density_se ? q : 0);
  y_dev.upload(y, qd);
  SmoothOutputs<T> o{out.score ? s_dev.get() : nullptr, out.log_density ? ld_dev.get() : nullptr,
                     out.score_se ? sse_dev.get() : nullptr, out.log_density_se ? lse_dev.get() : nullptr};
  smoothed_device(mix, y_dev.get(), q, t, sm, o);
  if (out.score) s_dev.download(out.score, qd);
  if (out.log_density) ld_dev.download(out.log_density, q);
  if (out.score_se) sse_dev.download(out.score_se, q);
  if (out.log_density_se) lse_dev.download(out.log_density_se, q);
}

#define LEDKDE_INSTANTIATE(T)                                                                          \
  template void smoothed_rows_cuda(const DeviceMixture<T>&, const double*, int64_t, double,            \
                                   const SmoothOptions&, uint32_t, SmoothScratch<T>&, SmoothRowOutputs); \
  template void smoothed_cuda(const DeviceMixture<T>&, const T*, int64_t, double, const SmoothOptions&, \
                              SmoothOutputs<T>);                                                       \
  template void smoothed_device(const DeviceMixture<T>&, const T*, int64_t, double, const SmoothOptions&, \
                                SmoothOutputs<T>);
LEDKDE_INSTANTIATE(float)
LEDKDE_INSTANTIATE(double)
#undef LEDKDE_INSTANTIATE

}  // namespace ledkde::cuda
