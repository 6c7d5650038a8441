// Runs the GPU's whole pruned pass (cuda/prune_cuda.cu, its launches rewritten by
// tests/test_cuda_emulation.py as calls of cuda_emu.h's launch(), into prune_cuda_gen.cu) and the
// DeviceMixture of cuda/mixture_cuda.cu on the CPU: device memory is host memory (cuda_runtime.h
// here), the dense pass is a direct float64 sum (dense_pass below). Checks every row's state
// against that sum: rows pruned and rows sent dense in one call, the probe's dense route at large
// t, pruning off, a mixture without a projection, and the pruned-pair counts. Prints "all checks
// passed" and exits 0 when so.
#include "cuda_emu.h"  // first: the CUDA keywords and intrinsics

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <type_traits>
#include <vector>

#include "mixture_cuda.cu"
#include "prune_cuda_gen.cu"

namespace ledkde::cuda {

ScratchLease::ScratchLease() : s_(new Scratch()) {}
ScratchLease::~ScratchLease() { delete s_; }

int g_dense_rows = 0;

// The states of the rows by the whole sum in float64 (what the dense pass computes to rounding).
template <class T>
void direct_states(const DeviceMixture<T>& mix, const T* rows, int64_t nrows, double t, double* m, double* S,
                   double* E, double* A, double* B) {
  const int64_t n = mix.n, d = mix.d;
  const double inv2v = 0.5 / t, c0 = make_logit_params(mix.params, t).c0;
  std::vector<double> l(n);
  for (int64_t i = 0; i < nrows; ++i) {
    double mx = -INFINITY;
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t e = 0; e < d; ++e) {
        const double df = double(rows[i * d + e]) - double(mix.mu_dev[j * d + e]);
        s += df * df;
      }
      l[j] = -s * inv2v;
      mx = std::max(mx, l[j]);
    }
    double s = 0, en = 0;
    std::vector<double> a(d, 0.0);
    for (int64_t j = 0; j < n; ++j) {
      const double p = std::exp(l[j] - mx);
      s += p;
      en += p * (l[j] - mx);
      for (int64_t e = 0; e < d; ++e) a[e] += p * 2 * inv2v * (double(mix.mu_dev[j * d + e]) - double(rows[i * d + e]));
    }
    m[i] = mx + c0;
    S[i] = s;
    E[i] = en;
    B[i] = s * 2 * inv2v;
    std::copy(a.begin(), a.end(), A + i * d);
  }
}

template <class T>
void dense_pass(const DeviceMixture<T>& mix, const T* rows, int64_t nrows, double t, RowStates& st) {
  g_dense_rows += static_cast<int>(nrows);
  direct_states(mix, rows, nrows, t, st.m.get(), st.S.get(), st.E.get(), st.A.get(), st.B.get());
}

}  // namespace ledkde::cuda

using namespace ledkde;
using namespace ledkde::cuda;
static int failures = 0;
#define CHECK(c, ...)                                            \
  do {                                                           \
    if (!(c)) {                                                  \
      if (++failures < 20) {                                     \
        std::printf("FAIL %s:%d: ", __FILE__, __LINE__);         \
        std::printf(__VA_ARGS__);                                \
        std::printf("\n");                                       \
      }                                                          \
    }                                                            \
  } while (0)

// A host Mixture as Python's Mixture(prune=True) leaves it: centred low-rank data with copies of
// one row, its projection onto the k directions (Projection's fields as mixture_cpu.cpp fills them).
template <class T>
Mixture<T> make_mixture(int64_t n, int64_t d, int k, bool projection, std::mt19937_64& g) {
  std::normal_distribution<double> N01;
  std::vector<double> B(k * d);
  for (auto& v : B) v = N01(g);
  for (int a = 0; a < k; ++a) {
    for (int b = 0; b < a; ++b) {
      double dot = 0;
      for (int64_t e = 0; e < d; ++e) dot += B[a * d + e] * B[b * d + e];
      for (int64_t e = 0; e < d; ++e) B[a * d + e] -= dot * B[b * d + e];
    }
    double nn = 0;
    for (int64_t e = 0; e < d; ++e) nn += B[a * d + e] * B[a * d + e];
    for (int64_t e = 0; e < d; ++e) B[a * d + e] /= std::sqrt(nn);
  }
  Mixture<T> mix;
  mix.n = n;
  mix.d = d;
  mix.centre.assign(d, 0.0);
  mix.mu.resize(n * d);
  mix.norm2.resize(n);
  mix.log_mass = std::log(double(n));
  for (int64_t j = 0; j < n; ++j) {
    std::vector<double> c(k);
    for (auto& v : c) v = 3 * N01(g);
    for (int64_t e = 0; e < d; ++e) {
      double v = 0.05 * N01(g);
      for (int a = 0; a < k; ++a) v += c[a] * B[a * d + e];
      mix.mu[j * d + e] = T(v);
    }
  }
  for (int64_t j = 1; j < n / 4 + 50; ++j) std::copy_n(&mix.mu[0], d, &mix.mu[2 * j * d]);
  for (int64_t j = 0; j < n; ++j) {
    double m2 = 0;
    for (int64_t e = 0; e < d; ++e) m2 += double(mix.mu[j * d + e]) * double(mix.mu[j * d + e]);
    mix.norm2[j] = T(m2);
    mix.norm2_max = std::max(mix.norm2_max, m2);
  }
  if (!projection) return mix;
  Projection& p = mix.proj;
  p.k = k;
  p.basis = B;
  p.z.resize(n * k);
  p.zn2.resize(n);
  p.resid.resize(n);
  p.zn2f.resize(n);
  p.residf.resize(n);
  p.zn2_prefix.resize(n);
  for (int64_t j = 0; j < n; ++j) {
    double p2 = 0, f2 = 0, fp = 0;
    for (int a = 0; a < k; ++a) {
      double s = 0;
      for (int64_t e = 0; e < d; ++e) s += B[a * d + e] * double(mix.mu[j * d + e]);
      p.z[j * k + a] = float(s);
      p2 += s * s;
      f2 += double(p.z[j * k + a]) * p.z[j * k + a];
      if (a < std::max(1, k / 2)) fp += double(p.z[j * k + a]) * p.z[j * k + a];
    }
    p.zn2[j] = f2;
    p.zn2f[j] = float(f2);
    p.zn2_prefix[j] = float(fp);
    p.resid[j] = std::sqrt(std::max(0.0, double(mix.norm2[j]) - p2));
    p.residf[j] = float(p.resid[j]);
    p.resid_max = std::max(p.resid_max, p.resid[j]);
  }
  return mix;
}

template <class T>
void run(int64_t n, int64_t d, int k, int64_t q, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> N01;
  const Mixture<T> host = make_mixture<T>(n, d, k, true, g);
  DeviceMixture<T> dev(host, 0, 0.0);
  CHECK(dev.proj_k == k && dev.z_dev && dev.basis_dev && dev.resid_dev && dev.zn2p_dev, "projection uploaded");
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-11;
  for (double t : {1e-3, 30.0}) {
    // Rows near components: 3 near the copies of row 0, the others near odd rows (never a
    // copy), the last two far away.
    std::vector<T> rows(q * d);
    for (int64_t i = 0; i < q; ++i) {
      const int64_t src = i < 3 ? 0 : 2 * int64_t(g() % (n / 2)) + 1;
      const double s = i >= q - 2 ? 5.0 : std::sqrt(t);
      for (int64_t e = 0; e < d; ++e) rows[i * d + e] = T(double(host.mu[src * d + e]) + s * N01(g));
    }
    RowStates st(q, d);
    int64_t considered = 0, computed = 0;
    gpu_prune_counts(&considered, &computed, true);
    set_prune(false);
    CHECK(!pruned_pass(dev, rows.data(), q, t, st), "pruning off: the dense route");
    set_prune(true);
    g_dense_rows = 0;
    const bool pruned = pruned_pass(dev, rows.data(), q, t, st);
    set_prune(false);
    gpu_prune_counts(&considered, &computed, true);
    CHECK(considered == q * n, "considered %lld", (long long)considered);
    if (t > 1) {  // far from the data: the probe sends the pass dense, having written nothing
      CHECK(!pruned && computed == considered && g_dense_rows == 0, "large t: dense route");
      continue;
    }
    CHECK(pruned, "small t: pruned");
    CHECK(g_dense_rows >= 3 && g_dense_rows <= 5, "rows sent dense: %d", g_dense_rows);  // crowded, maybe far
    CHECK(computed >= g_dense_rows * n && computed < considered / 2, "computed %lld", (long long)computed);
    std::vector<double> m(q), S(q), E(q), A(q * d), B(q);
    direct_states(dev, rows.data(), q, t, m.data(), S.data(), E.data(), A.data(), B.data());
    for (int64_t i = 0; i < q; ++i) {
      CHECK(std::abs(st.m.get()[i] - m[i]) <= 1e-9 * (1 + std::abs(m[i])), "m %lld: %g vs %g", (long long)i, st.m.get()[i], m[i]);
      CHECK(std::abs(st.S.get()[i] - S[i]) <= tol * S[i], "S %lld: %.17g vs %.17g", (long long)i, st.S.get()[i], S[i]);
      CHECK(std::abs(st.E.get()[i] - E[i]) <= tol * (S[i] + std::abs(E[i])), "E %lld", (long long)i);
      CHECK(std::abs(st.B.get()[i] - B[i]) <= tol * B[i], "B %lld", (long long)i);
      double amax = 0;
      for (int64_t e = 0; e < d; ++e) amax = std::max(amax, std::abs(A[i * d + e]));
      for (int64_t e = 0; e < d; ++e)
        CHECK(std::abs(st.A.get()[i * d + e] - A[i * d + e]) <= tol * (amax + 10 * B[i]), "A %lld %lld", (long long)i, (long long)e);
    }
    std::printf("%s n=%lld d=%lld k=%d q=%lld t=%g: %lld of %lld distances computed, %d rows dense, failures so far %d\n",
                std::is_same_v<T, float> ? "float" : "double", (long long)n, (long long)d, k, (long long)q, t,
                (long long)computed, (long long)considered, g_dense_rows, failures);
  }
  // No projection (Python leaves it out for small or weighted data): never pruned.
  const Mixture<T> plain = make_mixture<T>(n, d, k, false, g);
  DeviceMixture<T> dev_plain(plain, 0, 0.0);
  RowStates st(2, d);
  std::vector<T> two(host.mu.begin(), host.mu.begin() + 2 * d);
  set_prune(true);
  CHECK(!pruned_pass(dev_plain, two.data(), 2, 1e-3, st), "no projection: the dense route");
  set_prune(false);
}

int main() {
  run<float>(4000, 40, 8, 37, 1);
  run<double>(4000, 40, 8, 21, 2);
  std::printf("%s\n", failures ? "FAILED" : "all checks passed");
  return failures != 0;
}
