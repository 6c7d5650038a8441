// Monte Carlo estimators of the kernel-smoothed score and of the LED-KDE
// log-density (SPEC section 1, "Estimating it"), host and device: the CPU
// driver (cpp/src/smoothed_cpu.cpp) and the CUDA kernels
// (cuda/smoothed_cuda.cu) both call these functions.
//
// One query y has M draws u_m of a symmetric kernel, evaluated as the rows
// r_m = y - c + u_m (rounded to the working type; c the mixture's centre).
// The pass gives, per row, S, A = S sum_i w_i (mu_i - r) / v_i and
// B = S sum_i w_i / v_i (w the posterior weights at r). Then:
//
//   naive    x_m = s_t(r_m) = A / S
//   control  x_m = A / S + beta (r_m - y_c),   y_c = y - c in float64
//
// Since s_t(y + u) = sum_i w_i (mu_i - y) / v_i - u sum_i w_i / v_i, the term
// -u sum_i w_i / v_i is mostly linear in u and, at small t, much longer than
// the score (|u| / t = h sqrt(d) / t in the empirical case). Adding beta u
// with a beta that does not depend on u_m keeps the mean (E u = 0 for a
// symmetric kernel) and removes that term:
//   - equal variances (empirical, v_i = t): beta = 1 / t, and
//     x_m = (m_t(r_m) - y_c) / t exactly: the denoiser is averaged, not the score;
//   - per-component variances: beta = b(y) = sum_i w_i(y) / v_i at the
//     unperturbed query, from one more row per query (the "pilot", u = 0);
//     what is left, u (b(y + u) - b(y)), is of second order in u.
// The LED-KDE log-density's linear term s_t(y) . u is removed the same way,
// from the pilot's score: z_m = log p_t(r_m) - s_t(y) . (r_m - y_c).
// Antithetic pairs (u, -u) cancel the linear terms by themselves: no pilot.
//
// Standard errors: the draws (or antithetic pairs) are the independent units;
// the error of the mean is sqrt(sample variance / units). For the score it is
// the root of the summed per-coordinate variances of the mean, i.e. the
// expected length of the error vector. Orthogonal draws are not independent
// (negatively correlated along a smooth function): there the same formula is
// an estimate that tends to overstate the error.
#pragma once

#include <cmath>
#include <cstdint>

#include "philox.h"
#include "tile_math.h"

namespace ledkde {

enum Estimator : int { kNaive = 0, kControl = 1 };

// Whether a smoothed evaluation adds the unperturbed pilot row per query.
LEDKDE_HD bool smooth_needs_pilot(double h, int estimator, bool antithetic, bool per_variance, bool want_log_density) {
  return h > 0.0 && estimator == kControl && !antithetic && (want_log_density || per_variance);
}

// beta of the control estimator (0: naive, h = 0, or antithetic with
// per-component variances and no pilot).
LEDKDE_HD double control_beta(double h, int estimator, bool per_variance, double t, bool pilot, double B_pilot,
                              double S_pilot) {
  if (h <= 0.0 || estimator != kControl) return 0.0;
  if (!per_variance) return 1.0 / t;
  return pilot ? B_pilot / S_pilot : 0.0;
}

// Running mean and sum of squared deviations (Welford), float64.
struct MeanVar {
  double n, mean, m2;
};
LEDKDE_HD MeanVar mean_var_init() { return MeanVar{0.0, 0.0, 0.0}; }
LEDKDE_HD void mean_var_add(MeanVar& a, double x) {
  a.n += 1.0;
  const double dx = x - a.mean;
  a.mean += dx / a.n;
  a.m2 += dx * (x - a.mean);
}
// Variance of the mean (0 with fewer than two units: no error can be estimated).
LEDKDE_HD double mean_var_se2(const MeanVar& a) { return a.n > 1.0 ? a.m2 / ((a.n - 1.0) * a.n) : 0.0; }

// Adds the units of f(0..M-1) to a, in order: the draws, or the pair means
// (f(2k) + f(2k+1)) / 2 with antithetic draws (a single draw is its own unit).
// Draws that come in chunks of whole units add up to the same a.
template <class F>
LEDKDE_HD void add_units(MeanVar& a, int64_t M, bool antithetic, const F& f) {
  if (antithetic && M > 1)
    for (int64_t k = 0; 2 * k + 1 < M; ++k) mean_var_add(a, 0.5 * (f(2 * k) + f(2 * k + 1)));
  else
    for (int64_t m = 0; m < M; ++m) mean_var_add(a, f(m));
}

// Mean and squared standard error of f(0..M-1) over its units (add_units).
template <class F>
LEDKDE_HD void unit_mean_se2(int64_t M, bool antithetic, const F& f, double& mean, double& se2) {
  MeanVar a = mean_var_init();
  add_units(a, M, antithetic, f);
  mean = a.mean;
  se2 = mean_var_se2(a);
}

// Coordinate k of the score estimate of draw m (see above): A and rows point
// at the query's first draw row (rows of d), S at its first draw's S.
template <class RowT>
struct ScoreDraws {
  const double* A;
  const double* S;
  const RowT* rows;
  int64_t d, k;
  double yc, beta;
  LEDKDE_HD double operator()(int64_t m) const {
    const double s = A[m * d + k] / S[m];  // a division, as in the plain pass: h = 0 is exact
    return beta == 0.0 ? s : s + beta * (static_cast<double>(rows[m * d + k]) - yc);
  }
};

// The log-density estimate of draw m: log p_t(r_m) = mx + log S, minus the
// linear term s_t(y) . (r_m - y_c) with s_t(y) = Ap / Sp from the pilot row
// (Ap null: no linear term). mx, S and rows point at the query's first draw.
template <class RowT>
struct LogDensityDraws {
  const double* mx;
  const double* S;
  const double* Ap;
  double Sp;
  const RowT* rows;
  const double* y;       // (d,) the query
  const double* centre;  // (d,)
  int64_t d;
  LEDKDE_HD double operator()(int64_t m) const {
    const double v = mx[m] + log(S[m]);
    if (!Ap) return v;
    double lin = 0.0;
    for (int64_t k = 0; k < d; ++k)
      lin += (Ap[k] / Sp) * (static_cast<double>(rows[m * d + k]) - (y[k] - centre[k]));
    return v - lin;
  }
};

// Relative standard error |se| / |s| of a score (0 when both are 0).
LEDKDE_HD double relative_error(double se, double norm) {
  if (se == 0.0) return 0.0;
  return norm > 0.0 ? se / norm : static_cast<double>(INFINITY);
}

// All M draws of one query (M x d, float64) at evaluation `eval`. iid: draw
// m is kernel_draw(m). orthogonal: the base draws (M, or M / 2 antithetic
// pairs) come in blocks of d mutually orthogonal directions, each from the
// same stream normals g_j as the iid draw j, orthogonalized (Gram-Schmidt,
// twice) against the earlier directions of its block, with the length of the
// iid draw (h |g_j| for the Gaussian kernel, h U^(1/d) for the uniform ball):
// each draw is still distributed as K_h, but the draws of a block are
// orthogonal (orthogonal random features), which lowers the variance of the
// mean along smooth directions. Antithetic: draw 2k + 1 = -draw 2k.
LEDKDE_HD void kernel_draws_range(uint64_t seed, uint32_t index, uint32_t eval, int64_t m0, int64_t count,
                                  bool antithetic, bool orthogonal, int kind, double h, int64_t d, double* u) {
  // Draws m0 .. m0 + count - 1 into u (count x d). m0 and count must be whole
  // units: pairs with antithetic draws, and blocks of d base draws (d pairs)
  // with orthogonal ones (kernel_draw_unit).
  if (!orthogonal) {
    for (int64_t m = 0; m < count; ++m)
      kernel_draw(seed, index, eval, static_cast<uint32_t>(m0 + m), antithetic, kind, h, d, u + m * d);
    return;
  }
  const int64_t stride = antithetic ? 2 : 1, j0 = m0 / stride, j1 = (m0 + count) / stride;
  for (int64_t j = j0; j < j1; ++j) {
    double* v = u + (j - j0) * stride * d;
    stream_normal_vector(seed, index, eval, kKernel, static_cast<uint32_t>(j), d, v);
    double g2 = 0.0;
    for (int64_t c = 0; c < d; ++c) g2 += v[c] * v[c];
    const double len = kind == kUniformBall
                           ? h * std::pow(stream_uniform_after(seed, d, index, eval, kKernel, static_cast<uint32_t>(j)),
                                          1.0 / static_cast<double>(d))
                           : h * std::sqrt(g2);
    const int64_t first = j - j % d;  // first base draw of this block (>= j0: whole blocks)
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t p = first; p < j; ++p) {
        const double* w = u + (p - j0) * stride * d;
        double vw = 0.0, ww = 0.0;
        for (int64_t c = 0; c < d; ++c) {
          vw += v[c] * w[c];
          ww += w[c] * w[c];
        }
        const double f = vw / ww;
        for (int64_t c = 0; c < d; ++c) v[c] -= f * w[c];
      }
    double n2 = 0.0;
    for (int64_t c = 0; c < d; ++c) n2 += v[c] * v[c];
    const double scale = len / std::sqrt(n2);
    for (int64_t c = 0; c < d; ++c) v[c] *= scale;
  }
  if (antithetic)
    for (int64_t j = 0; j < j1 - j0; ++j)
      for (int64_t c = 0; c < d; ++c) u[(2 * j + 1) * d + c] = -u[2 * j * d + c];
}

// The number of draws that make whole units for kernel_draws_range.
LEDKDE_HD int64_t kernel_draw_unit(bool antithetic, bool orthogonal, int64_t d) {
  return (antithetic ? 2 : 1) * (orthogonal ? d : 1);
}

LEDKDE_HD void kernel_draws(uint64_t seed, uint32_t index, uint32_t eval, int64_t M, bool antithetic, bool orthogonal,
                            int kind, double h, int64_t d, double* u) {
  kernel_draws_range(seed, index, eval, 0, M, antithetic, orthogonal, kind, h, d, u);
}

}  // namespace ledkde
