// The random stream of ledkde (SPEC section 3), host and device.
//
// Every random number comes from Philox4x32-10 keyed by the user's 64-bit
// seed, with a 128-bit counter that names what the number is for:
//
//     key     = (seed mod 2^32, seed div 2^32)
//     counter = (block, index, step, purpose << 24 | draw)
//
//   block   : coordinate block; one Philox call gives 4 numbers, for
//             coordinates 4*block .. 4*block+3
//   index   : the sample (sampler) or the query row (smoothed score)
//   step    : the sampler step, or the score-evaluation number
//   purpose : Purpose below; draw: the kernel draw (< 2^24)
//
// Normals: u_k = (x_k + 0.5) / 2^32 in (0, 1), then Box-Muller on (u0, u1)
// and (u2, u3): z0 = r cos(2 pi u1), z1 = r sin(2 pi u1), r = sqrt(-2 ln u0).
// Because a number depends only on its counter, the same seed gives the same
// samples whatever the thread count and whichever device ran the code; the
// NumPy reference (ledkde.reference.philox_normals) follows the same rule.
#pragma once

#include <cmath>
#include <cstdint>

#include "tile_math.h"  // LEDKDE_HD

namespace ledkde {

enum Purpose : uint32_t {
  kNoise = 1,       // Euler-Maruyama noise z_k: step = k, index = sample
  kInitNoise = 2,   // starting point noise: step = 0, index = sample
  kInitIndex = 3,   // training point drawn for init="empirical": block = 0
  kKernel = 4,      // kernel draw u_m: step = evaluation number, draw = m
};

struct Philox4 {
  uint32_t v[4];
};

LEDKDE_HD void mulhilo32(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

LEDKDE_HD Philox4 philox4x32_10(Philox4 c, uint32_t k0, uint32_t k1) {
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo32(0xD2511F53u, c.v[0], hi0, lo0);
    mulhilo32(0xCD9E8D57u, c.v[2], hi1, lo1);
    c = Philox4{{hi1 ^ c.v[1] ^ k0, lo1, hi0 ^ c.v[3] ^ k1, lo0}};
    k0 += 0x9E3779B9u;  // Weyl key schedule
    k1 += 0xBB67AE85u;
  }
  return c;
}

LEDKDE_HD Philox4 stream_bits(uint64_t seed, uint32_t block, uint32_t index, uint32_t step,
                              uint32_t purpose, uint32_t draw) {
  return philox4x32_10(Philox4{{block, index, step, (purpose << 24) | (draw & 0xFFFFFFu)}},
                       static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

LEDKDE_HD double bits_to_unit(uint32_t x) { return (static_cast<double>(x) + 0.5) * 2.3283064365386963e-10; }

// Four standard normals for one counter.
LEDKDE_HD void stream_normals4(uint64_t seed, uint32_t block, uint32_t index, uint32_t step,
                               uint32_t purpose, uint32_t draw, double z[4]) {
  const Philox4 b = stream_bits(seed, block, index, step, purpose, draw);
  const double two_pi = 6.283185307179586;
  for (int p = 0; p < 2; ++p) {
    const double r = std::sqrt(-2.0 * std::log(bits_to_unit(b.v[2 * p])));
    const double a = two_pi * bits_to_unit(b.v[2 * p + 1]);
    z[2 * p] = r * std::cos(a);
    z[2 * p + 1] = r * std::sin(a);
  }
}

// d standard normals for (index, step, purpose, draw): coordinate c comes from
// block c / 4, position c % 4.
template <class T>
LEDKDE_HD void stream_normal_vector(uint64_t seed, uint32_t index, uint32_t step, uint32_t purpose,
                                    uint32_t draw, int64_t d, T* out) {
  double z[4];
  for (int64_t c0 = 0; c0 < d; c0 += 4) {
    stream_normals4(seed, static_cast<uint32_t>(c0 / 4), index, step, purpose, draw, z);
    for (int64_t c = c0; c < d && c < c0 + 4; ++c) out[c] = static_cast<T>(z[c - c0]);
  }
}

// One uniform in (0, 1) from the block just past the coordinates (used for
// the radius of the uniform-ball kernel): block = ceil(d / 4), word 0.
LEDKDE_HD double stream_uniform_after(uint64_t seed, int64_t d, uint32_t index, uint32_t step,
                                      uint32_t purpose, uint32_t draw) {
  return bits_to_unit(
      stream_bits(seed, static_cast<uint32_t>((d + 3) / 4), index, step, purpose, draw).v[0]);
}

// A training-point index in [0, n) for init="empirical":
// ((word1 << 32) | word0) mod n, from counter (0, sample, 0, kInitIndex, 0).
LEDKDE_HD uint64_t stream_index(uint64_t seed, uint32_t sample, uint64_t n) {
  const Philox4 b = stream_bits(seed, 0, sample, 0, kInitIndex, 0);
  return ((static_cast<uint64_t>(b.v[1]) << 32) | b.v[0]) % n;
}

// Kernel draws (SPEC section 1): u = h * g for the Gaussian kernel;
// u = h * U^(1/d) * g / |g| for the uniform ball. Antithetic pairs use the
// base draw m / 2 with the sign of m's parity, so draws 2k and 2k+1 are (u, -u).
enum KernelKind : int { kGaussian = 0, kUniformBall = 1 };

// The stream draw and sign that kernel draw m uses.
LEDKDE_HD uint32_t kernel_base(uint32_t m, bool antithetic) { return antithetic ? (m >> 1) : m; }

// Factor that turns the draw's standard normals g into u: h * sign for the
// Gaussian kernel, h * sign * U^(1/d) / |g| for the uniform ball (norm2 = |g|^2).
LEDKDE_HD double kernel_scale(uint64_t seed, uint32_t index, uint32_t eval, uint32_t m,
                              bool antithetic, int kind, double h, int64_t d, double norm2) {
  const double sign = (antithetic && (m & 1u)) ? -1.0 : 1.0;
  double scale = h * sign;
  if (kind == kUniformBall) {
    const double U = stream_uniform_after(seed, d, index, eval, kKernel, kernel_base(m, antithetic));
    scale *= std::pow(U, 1.0 / static_cast<double>(d)) / std::sqrt(norm2);
  }
  return scale;
}

// Kernel draw m for one query: u has d entries, computed in double whatever
// the working precision.
LEDKDE_HD void kernel_draw(uint64_t seed, uint32_t index, uint32_t eval, uint32_t m, bool antithetic,
                           int kind, double h, int64_t d, double* u) {
  stream_normal_vector(seed, index, eval, kKernel, kernel_base(m, antithetic), d, u);
  double norm2 = 0.0;
  if (kind == kUniformBall)
    for (int64_t c = 0; c < d; ++c) norm2 += u[c] * u[c];
  const double scale = kernel_scale(seed, index, eval, m, antithetic, kind, h, d, norm2);
  for (int64_t c = 0; c < d; ++c) u[c] *= scale;
}

}  // namespace ledkde
