// The certified pruning rule, written once for the CPU's pruned pass
// (cpp/src/prune_cpu.cpp) and the GPU's (cuda/prune_cuda.cu): when pruning can
// pay, the margin beyond which a component's weight is negligible, the slack
// of the float lower bounds and the bound itself. Both passes bound
//   |y - mu|^2 >= |P y - P mu|^2 + (r(y) - r(mu))^2
// with the Mixture's projection P (engine.h Projection) and residual norms r.
#pragma once

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>

#include "ledkde/host_device.h"

namespace ledkde::prune_rule {

constexpr int64_t kMinComponents = 1024;  // fewer components: the dense pass is as fast
constexpr int64_t kLbTile = 1024;         // components of a tile of bounds (CPU) and of the probe (both)
constexpr int64_t kMaxKeptPart = 4;       // a row keeping more than 1/4 of the components goes dense

// Whether pruning can pay over `range` components in d dimensions with a
// k-dimensional projection: the rows' projections and the probe cost about
// q k (d + kLbTile) whatever the range, worth it only when that is a small
// part (1/16) of a dense pass, q range d. Host code.
inline bool pays(int64_t range, int64_t k, int64_t d) {
  return range >= std::max(kMinComponents, 16 * k * (d + kLbTile) / d);
}

// Weights below exp(-margin) of the reference's are left out: N of them add
// at most e^-6 eps to a sum that holds at least the reference's weight (the
// rule by which the dense CPU pass leaves blocks of weights at zero). Host code.
template <class T>
double margin(int64_t n) {
  return std::log(static_cast<double>(std::max<int64_t>(n, 1))) - std::log(std::numeric_limits<T>::epsilon()) +
         6.0;
}

// The slack of a row's float lower bounds: the float products (a few sqrt(k)
// units of the largest term), the float sums and the float projections of
// the components, generously, in units of (|y| + reach)^2, with y2 = |y|^2 and
// reach the largest |mu|.
LEDKDE_HD double bound_slack(double y2, double reach, int64_t k) {
  const double scale = sqrt(y2) + reach;
  return 16.0 * (sqrt(static_cast<double>(k)) + 8.0) * FLT_EPSILON * scale * scale;
}

// The lower bound of |y - mu|^2 in float, from |P y|^2, |P mu|^2, their dot
// product and the residual norms, less the row's slack.
LEDKDE_HD float lower_bound(float yn2, float zn2, float dot, float ry, float rz, float slack) {
  const float dr = ry - rz;
  return (yn2 + zn2 - 2.0f * dot) + dr * dr - slack;
}

}  // namespace ledkde::prune_rule
