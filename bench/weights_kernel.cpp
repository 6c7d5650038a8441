// rows::expansion_weights alone, one thread: the weights of a tile of 512
// components for 128 rows (logits from the first product's dot products,
// their maximum and count, exponentials and sums; every block live), in ns per
// pair, for one kernel set. Built and run by bench/kernels.sh.
//
//   weights_kernel_<isa> [rounds=200]
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

namespace ledkde::rows::BENCH_ISA {
void expansion_weights(const float* norm2, const float* g, float ny, const float* cprime, const float* k, float k0,
                       int64_t nb, float shift, float cut, float skip, bool entropy, float* p, double* sums,
                       uint8_t* live);
}  // namespace ledkde::rows::BENCH_ISA

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::atoi(argv[1]) : 200;
  const int64_t nb = 512, rows = 128;
  std::mt19937 gen(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  // Logits spread over a few units below the shift, as at large t.
  std::vector<float> norm2(nb), g(rows * nb), p(rows * nb);
  for (auto& v : norm2) v = 21.0f + 0.5f * nd(gen);
  for (auto& v : g) v = 0.3f * nd(gen);
  std::vector<uint8_t> live(nb / 64);
  double sums[4] = {};
  double best = 1e30, total = 0.0;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = 0; i < rows; ++i) {
      ledkde::rows::BENCH_ISA::expansion_weights(norm2.data(), g.data() + i * nb, 300.0f, nullptr, nullptr, 0.1f, nb,
                                                 -32.0f, -5.0f, -80.0f, false, p.data() + i * nb, sums, live.data());
      total += sums[0];
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::printf("expansion_weights: %.3f ns per pair (%.2f G pairs/s; checksum %.6g)\n", best / (rows * nb) * 1e9,
              rows * nb / best / 1e9, total / rounds);
}
