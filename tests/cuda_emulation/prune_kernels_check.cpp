// Runs the kernels of the GPU's pruned pass (cuda/prune_kernels.cuh, as written) on the CPU under
// cuda_emu.h and checks each one's output against a direct computation on the host: the rows'
// projections, the references, the candidate lists (probe and full, in order, capped), the pruned
// rows' states against the whole sum in float64, and the gather / scatter of the dense rows.
// Built and run by tests/test_cuda_emulation.py; prints "all checks passed" and exits 0 when so.
#include "cuda_emu.h"  // first: the CUDA keywords and intrinsics for the headers below

#include <algorithm>
#include <cstdio>
#include <random>
#include <type_traits>
#include <vector>

#include "prune_kernels.cuh"

using namespace ledkde;
using namespace ledkde::cuda;
static int failures = 0;
#define CHECK(c, ...) do { if (!(c)) { ++failures; if (failures < 20) { std::printf("FAIL %s:%d: ", __FILE__, __LINE__); std::printf(__VA_ARGS__); std::printf("\n"); } } } while (0)

template <class T>
void run(int64_t n, int64_t d, int k, int64_t q, double t, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> N01;
  // Low-rank data (k directions) plus small noise; n / 4 + 50 rows (every other one) are copies of row 0.
  std::vector<double> B(k * d), mu64(n * d);
  for (auto& v : B) v = N01(g);
  // Gram-Schmidt: basis rows orthonormal in float64.
  for (int a = 0; a < k; ++a) {
    for (int b = 0; b < a; ++b) {
      double dot = 0; for (int64_t e = 0; e < d; ++e) dot += B[a * d + e] * B[b * d + e];
      for (int64_t e = 0; e < d; ++e) B[a * d + e] -= dot * B[b * d + e];
    }
    double nn = 0; for (int64_t e = 0; e < d; ++e) nn += B[a * d + e] * B[a * d + e];
    for (int64_t e = 0; e < d; ++e) B[a * d + e] /= std::sqrt(nn);
  }
  for (int64_t j = 0; j < n; ++j) {
    std::vector<double> c(k); for (auto& v : c) v = 3 * N01(g);
    for (int64_t e = 0; e < d; ++e) {
      double v = 0.05 * N01(g); for (int a = 0; a < k; ++a) v += c[a] * B[a * d + e];
      mu64[j * d + e] = v;
    }
  }
  const int64_t copies = n / 4 + 50;  // more than the cap: rows near them go dense
  for (int64_t j = 1; j < copies; ++j) std::copy_n(&mu64[0], d, &mu64[2 * j * d]);
  std::vector<T> mu(n * d);
  for (int64_t i = 0; i < n * d; ++i) mu[i] = T(mu64[i]);
  // The projection as the host Mixture keeps it (engine.h Projection).
  std::vector<float> z(n * k), zn2(n), zn2p(n), rz(n);
  double norm2_max = 0;
  for (int64_t j = 0; j < n; ++j) {
    double m2 = 0, p2 = 0, f2 = 0, fp = 0;
    for (int64_t e = 0; e < d; ++e) m2 += double(mu[j * d + e]) * double(mu[j * d + e]);
    for (int a = 0; a < k; ++a) {
      double s = 0; for (int64_t e = 0; e < d; ++e) s += B[a * d + e] * double(mu[j * d + e]);
      z[j * k + a] = float(s); p2 += s * s; f2 += double(z[j * k + a]) * z[j * k + a];
      if (a < std::max(1, k / 2)) fp += double(z[j * k + a]) * z[j * k + a];
    }
    zn2[j] = float(f2); zn2p[j] = float(fp); rz[j] = float(std::sqrt(std::max(0.0, m2 - p2)));
    norm2_max = std::max(norm2_max, m2);
  }
  // Rows: near components (small t), 3 near the copies, 2 far away.
  std::vector<T> rows(q * d);
  std::vector<int64_t> src(q);
  for (int64_t i = 0; i < q; ++i) {
    src[i] = i < 3 ? 0 : int64_t(g() % n);
    const double s = i >= q - 2 ? 5.0 : std::sqrt(t);
    for (int64_t e = 0; e < d; ++e) rows[i * d + e] = T(mu64[src[i] * d + e] + s * N01(g));
  }
  const double inv2v = 0.5 / t, margin = prune_rule::margin<T>(n), md2 = margin / inv2v;
  const int64_t cap = std::min<int64_t>(n / prune_rule::kMaxKeptPart, 2048);

  // 1. projections
  std::vector<float> yp(q * k), ypn2(q), ry(q), slack(q);
  launch(dim3((q + kWarps - 1) / kWarps), dim3(kWarps * 32), project_rows_kernel<T>, rows.data(), q, d,
         (const double*)B.data(), k, std::sqrt(norm2_max), yp.data(), ypn2.data(), ry.data(), slack.data());
  for (int64_t i = 0; i < q; ++i) {
    double y2 = 0, p2 = 0;
    for (int64_t e = 0; e < d; ++e) y2 += double(rows[i * d + e]) * double(rows[i * d + e]);
    for (int a = 0; a < k; ++a) {
      double s = 0; for (int64_t e = 0; e < d; ++e) s += B[a * d + e] * double(rows[i * d + e]);
      CHECK(std::abs(yp[i * k + a] - float(s)) <= 1e-6 * (1 + std::abs(s)), "yp %lld %d: %g vs %g", (long long)i, a, yp[i * k + a], s);
      p2 += s * s;
    }
    CHECK(std::abs(ry[i] - std::sqrt(std::max(0.0, y2 - p2))) <= 1e-4 * (1 + std::sqrt(y2)), "ry %lld", (long long)i);
    CHECK(slack[i] > 0, "slack");
  }
  // 2. references
  const int k1 = std::max(1, k / 2);
  std::vector<double> ref(q);
  std::vector<float> thr(q);
  launch(dim3((q + kGroup - 1) / kGroup), dim3(kBoundThreads), references_kernel<T>, (const T*)rows.data(), q, d,
         (const T*)mu.data(), (const float*)z.data(), k, k1, (const float*)zn2p.data(), n, (const float*)yp.data(), md2,
         ref.data(), thr.data());
  for (int64_t i = 0; i < q; ++i) {
    // The host's choice by the same float formula; the kernel's must score as low.
    float best = INFINITY; int64_t bj = 0;
    for (int64_t j = 0; j < n; ++j) {
      float acc = 0; for (int c = 0; c < k1; ++c) acc = fmaf(yp[i * k + c], z[j * k + c], acc);
      const float v = zn2p[j] - 2.0f * acc;
      if (v < best) { best = v; bj = j; }
    }
    double dd = 0; for (int64_t e = 0; e < d; ++e) { double df = double(rows[i * d + e]) - double(mu[bj * d + e]); dd += df * df; }
    CHECK(std::abs(ref[i] - dd) <= 1e-9 * (1 + dd), "ref %lld: %g vs %g (host j %lld)", (long long)i, ref[i], dd, (long long)bj);
    CHECK(thr[i] == float(ref[i] + md2), "thr");
  }
  // 3. candidates: probe (counts only) and full lists, against the host's brute force.
  std::vector<int64_t> count(q);
  std::vector<uint32_t> cand(q * cap, 0xFFFFFFFFu);
  auto host_lists = [&](int64_t lo, int64_t hi) {
    std::vector<std::vector<uint32_t>> L(q);
    for (int64_t i = 0; i < q; ++i)
      for (int64_t j = lo; j < hi; ++j) {
        float acc = 0; for (int c = 0; c < k; ++c) acc = fmaf(yp[i * k + c], z[j * k + c], acc);
        const float lb = prune_rule::lower_bound(ypn2[i], zn2[j], acc, ry[i], rz[j], slack[i]);
        if (lb <= thr[i]) L[i].push_back(uint32_t(j - lo));
      }
    return L;
  };
  const int64_t nb = std::min<int64_t>(prune_rule::kLbTile, n);
  launch(dim3((q + kGroup - 1) / kGroup), dim3(kBoundThreads), candidates_kernel, (const float*)z.data(), k,
         (const float*)zn2.data(), (const float*)rz.data(), int64_t(0), nb, q, (const float*)yp.data(),
         (const float*)ypn2.data(), (const float*)ry.data(), (const float*)slack.data(), (const float*)thr.data(), cap,
         (uint32_t*)nullptr, count.data());
  auto probe = host_lists(0, nb);
  for (int64_t i = 0; i < q; ++i) CHECK(count[i] == int64_t(probe[i].size()), "probe count %lld: %lld vs %zu", (long long)i, (long long)count[i], probe[i].size());
  launch(dim3((q + kGroup - 1) / kGroup), dim3(kBoundThreads), candidates_kernel, (const float*)z.data(), k,
         (const float*)zn2.data(), (const float*)rz.data(), int64_t(0), n, q, (const float*)yp.data(),
         (const float*)ypn2.data(), (const float*)ry.data(), (const float*)slack.data(), (const float*)thr.data(), cap,
         cand.data(), count.data());
  auto full = host_lists(0, n);
  int64_t dense_rows = 0, kept = 0;
  for (int64_t i = 0; i < q; ++i) {
    CHECK(count[i] == int64_t(full[i].size()), "count %lld: %lld vs %zu", (long long)i, (long long)count[i], full[i].size());
    for (int64_t c = 0; c < std::min(count[i], cap); ++c) CHECK(cand[i * cap + c] == full[i][c], "cand %lld %lld", (long long)i, (long long)c);
    // The true nearest is always a candidate (the bound holds).
    int64_t nj = 0; double nd = 1e300;
    for (int64_t j = 0; j < n; ++j) { double dd = 0; for (int64_t e = 0; e < d; ++e) { double df = double(rows[i * d + e]) - double(mu[j * d + e]); dd += df * df; } if (dd < nd) { nd = dd; nj = j; } }
    CHECK(std::find(full[i].begin(), full[i].end(), uint32_t(nj)) != full[i].end(), "nearest not a candidate %lld", (long long)i);
    dense_rows += count[i] == 0 || count[i] > cap;
    kept += count[i];
  }
  // 4. the pruned rows' states against the whole sum in float64.
  std::vector<double> L(q * cap), m(q, -7), S(q, -7), E(q, -7), A(q * d, -7), Bs(q, -7);
  const double c0 = -1.234;
  launch(dim3(q), dim3(kRowThreads), pruned_rows_kernel<T>, (const T*)rows.data(), d, (const T*)mu.data(),
         (const uint32_t*)cand.data(), cap, (const int64_t*)count.data(), inv2v, margin, c0, L.data(), m.data(), S.data(),
         E.data(), A.data(), Bs.data());
  const double tol = std::is_same_v<T, float> ? 1e-5 : 1e-11;
  int64_t checked = 0;
  for (int64_t i = 0; i < q; ++i) {
    if (count[i] == 0 || count[i] > cap) { CHECK(m[i] == -7, "dense row written"); continue; }
    ++checked;
    std::vector<double> l(n); double mx = -1e300;
    for (int64_t j = 0; j < n; ++j) { double dd = 0; for (int64_t e = 0; e < d; ++e) { double df = double(rows[i * d + e]) - double(mu[j * d + e]); dd += df * df; } l[j] = -dd * inv2v; mx = std::max(mx, l[j]); }
    double s = 0, en = 0; std::vector<double> a(d, 0.0);
    for (int64_t j = 0; j < n; ++j) { double p = std::exp(l[j] - mx); s += p; en += p * (l[j] - mx); for (int64_t e = 0; e < d; ++e) a[e] += p * 2 * inv2v * (double(mu[j * d + e]) - double(rows[i * d + e])); }
    CHECK(std::abs(m[i] - (mx + c0)) <= 1e-9 * (1 + std::abs(mx)), "m %lld: %g vs %g", (long long)i, m[i], mx + c0);
    CHECK(std::abs(S[i] - s) <= tol * s, "S %lld: %.17g vs %.17g", (long long)i, S[i], s);
    CHECK(std::abs(E[i] - en) <= tol * (1 + std::abs(en)) + tol * s, "E %lld: %g vs %g", (long long)i, E[i], en);
    CHECK(std::abs(Bs[i] - s * 2 * inv2v) <= tol * s * 2 * inv2v, "B %lld", (long long)i);
    double amax = 0; for (int64_t e = 0; e < d; ++e) amax = std::max(amax, std::abs(a[e]));
    for (int64_t e = 0; e < d; ++e) CHECK(std::abs(A[i * d + e] - a[e]) <= tol * (amax + s * 2 * inv2v * 10), "A %lld %lld: %g vs %g", (long long)i, (long long)e, A[i * d + e], a[e]);
  }
  // 5. gather / scatter
  std::vector<int64_t> idx = {q - 1, 0, 2};
  std::vector<T> sub(3 * d);
  launch(dim3((3 * d + 255) / 256), dim3(256), gather_rows_kernel<T>, (const T*)rows.data(), (const int64_t*)idx.data(), int64_t(3), d, sub.data());
  for (int r = 0; r < 3; ++r) for (int64_t e = 0; e < d; ++e) CHECK(sub[r * d + e] == rows[idx[r] * d + e], "gather");
  std::vector<double> fm(3, 1), fS(3, 2), fE(3, 3), fB(3, 4), fA(3 * d, 5);
  for (int r = 0; r < 3; ++r) { fm[r] += r; fA[r * d + 1] = 10 + r; }
  launch(dim3((3 * d + 255) / 256), dim3(256), scatter_states_kernel, (const int64_t*)idx.data(), int64_t(3), d,
         PartialState{fm.data(), fS.data(), fE.data(), fA.data(), fB.data()}, PartialState{m.data(), S.data(), E.data(), A.data(), Bs.data()});
  for (int r = 0; r < 3; ++r) { CHECK(m[idx[r]] == 1 + r && S[idx[r]] == 2 && E[idx[r]] == 3 && Bs[idx[r]] == 4, "scatter scalars"); CHECK(A[idx[r] * d + 1] == 10 + r && A[idx[r] * d] == 5, "scatter A"); }
  std::printf("%s n=%lld d=%lld k=%d q=%lld t=%g: candidates %lld of %lld pairs, %lld dense rows, %lld rows checked, failures so far %d\n",
              std::is_same_v<T, float> ? "float" : "double", (long long)n, (long long)d, k, (long long)q, t, (long long)kept,
              (long long)(q * n), (long long)dense_rows, (long long)checked, failures);
}

int main() {
  run<float>(3000, 40, 8, 37, 1e-3, 1);
  run<double>(3000, 40, 8, 37, 1e-3, 2);
  run<float>(2500, 200, 64, 20, 0.05, 3);
  run<double>(1100, 33, 5, 9, 0.3, 4);
  std::printf("%s\n", failures ? "FAILED" : "all checks passed");
  return failures != 0;
}
