// The two built-in tile products alone, one thread: tile_gemm::dot_tiles (the
// first product, G = rows mu_tile^T) against tile_gemm::accumulate (the second,
// A += diag(scale) P mu_tile) on the same sizes, for one kernel set. Both do
// 2 q nb d flops per tile; the ratio of their times says how far the second
// product is from the first. Built and run by bench/kernels.sh.
//
//   tile_products_<isa> [q=128] [d=784] [rounds=10]
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "tile_gemm.h"

namespace ledkde::tile_gemm::BENCH_ISA {
void dot_tiles(const float*, int64_t, int64_t, const float*, int64_t, float*, int64_t);
void accumulate(const float*, int64_t, int64_t, int64_t, const float*, int64_t, int64_t, const double*, double*,
                const int64_t*, const uint8_t*, int64_t);
}  // namespace ledkde::tile_gemm::BENCH_ISA

namespace tg = ledkde::tile_gemm;

int main(int argc, char** argv) {
  const int64_t q = argc > 1 ? std::atoll(argv[1]) : 128, d = argc > 2 ? std::atoll(argv[2]) : 784;
  const int rounds = argc > 3 ? std::atoi(argv[3]) : 10;
  const int64_t nb = 512, n = 60000, ntile = n / nb;
  // The components on huge pages, as the engine keeps them (BigVector).
  const size_t huge = size_t(2) << 20, bytes = ((n * d + tg::kRowTail) * sizeof(float) + huge - 1) / huge * huge;
  float* mu = static_cast<float*>(std::aligned_alloc(huge, bytes));
  madvise(mu, bytes, MADV_HUGEPAGE);
  std::mt19937 gen(1);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  for (int64_t i = 0; i < n * d + tg::kRowTail; ++i) mu[i] = u(gen);
  const int64_t rows_alloc = q + tg::kRowPad;
  std::vector<float> rows(rows_alloc * d), P(rows_alloc * nb), G(rows_alloc * nb);
  for (auto& v : rows) v = u(gen);
  for (auto& v : P) v = u(gen);
  const int64_t panels = (n + tg::kPanel - 1) / tg::kPanel;
  std::vector<float> packed(panels * d * tg::kPanel);
  tg::pack(mu, n, d, 0, panels, packed.data());
  std::vector<double> A(q * d), scale(q, 1.0);
  std::vector<int64_t> slot(rows_alloc, 0);
  for (int64_t i = 0; i < q; ++i) slot[i] = i;
  double first = 1e30, second = 1e30;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t t = 0; t < ntile; ++t)
      tg::BENCH_ISA::dot_tiles(rows.data(), q, d, packed.data() + t * (nb / tg::kPanel) * d * tg::kPanel, nb,
                               G.data(), nb);
    const auto t1 = std::chrono::steady_clock::now();
    for (int64_t t = 0; t < ntile; ++t)
      tg::BENCH_ISA::accumulate(P.data(), nb, q, nb, mu + t * nb * d, d, d, scale.data(), A.data(), slot.data(),
                                nullptr, 0);
    const auto t2 = std::chrono::steady_clock::now();
    first = std::min(first, std::chrono::duration<double>(t1 - t0).count());
    second = std::min(second, std::chrono::duration<double>(t2 - t1).count());
  }
  const double flops = 2.0 * q * nb * d * ntile;
  std::printf("q=%lld d=%lld: first product %.1f GFLOP/s, second %.1f GFLOP/s, second / first time %.3f\n",
              static_cast<long long>(q), static_cast<long long>(d), flops / first / 1e9, flops / second / 1e9,
              second / first);
  std::free(mu);
}
