// The tile math of ledkde, written once for host and device code.
//
// Under nvcc every function here is __host__ __device__; under a plain C++
// compiler it is an ordinary inline function. The CPU loops (cpp/src) and the
// CUDA kernels (cuda/) both call these functions, so the online log-sum-exp
// rules live in exactly one place.
//
// A score pass is a reduction over mixture components of, per query,
//     m : the running maximum logit
//     S : sum_j exp(l_j - m)
//     E : sum_j exp(l_j - m) * (l_j - m)           (for the weight entropy)
//     A : sum_j exp(l_j - m) * (mu_j - y) / v_j     (d-vector, the score numerator)
// The reduction is defined as init / merge / finalize (the KeOps breakdown):
// a tile, a thread, a shard of the data or a whole machine each produce one
// such state, and states merge associatively.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>

#include "ledkde/host_device.h"
#include "ledkde/exactness.h"

namespace ledkde {

// -infinity usable in host and device code (std::numeric_limits is host-only under nvcc).
LEDKDE_HD double neg_inf() { return -static_cast<double>(INFINITY); }

// Scalar part of the per-query reduction state (A lives beside it, d wide).
struct LseScalars {
  double m;  // running maximum logit, -inf when nothing has been seen
  double S;  // sum of exp(l - m)
  double E;  // sum of exp(l - m) * (l - m)
};

LEDKDE_HD LseScalars lse_init() {
  return LseScalars{neg_inf(), 0.0, 0.0};
}

// Factor that moves a partial state with maximum `m_old` onto the common
// maximum `m_new >= m_old`.
LEDKDE_HD double lse_rescale_factor(double m_old, double m_new) {
  // An empty state (m_old = -inf) contributes nothing; exp(-inf - -inf) would be NaN.
  if (m_old == neg_inf()) return 0.0;
  return std::exp(m_old - m_new);
}

// Moves one state onto the maximum m_new: returns the scale for its vector
// accumulator A, and updates its S and E in place (E picks up (m_old - m_new) * S).
LEDKDE_HD double lse_move_to(LseScalars& s, double m_new) {
  const double a = lse_rescale_factor(s.m, m_new);
  // a == 0 means the state was empty: S = E = 0 stay 0 (avoids -inf * 0).
  s.E = (a == 0.0) ? 0.0 : a * (s.E + (s.m - m_new) * s.S);
  s.S = a * s.S;
  s.m = m_new;
  return a;
}

// Merge state b into a. Returns the pair of scales (for a's and b's A vectors):
// A_merged = fa * A_a + fb * A_b.
struct MergeScales {
  double fa, fb;
};
LEDKDE_HD MergeScales lse_merge(LseScalars& a, LseScalars b) {
  const double m = a.m > b.m ? a.m : b.m;
  // Both empty: the merge is empty too, and no scale is needed.
  if (m == neg_inf()) return MergeScales{0.0, 0.0};
  const double fa = lse_move_to(a, m);
  const double fb = lse_move_to(b, m);
  a.S += b.S;
  a.E += b.E;
  return MergeScales{fa, fb};
}

// Final per-query quantities (SPEC section 1). The score is A / S; the
// denoiser is y + t * score (Tweedie), computed by the caller from the score.
LEDKDE_HD double lse_log_density(const LseScalars& s) { return s.m + std::log(s.S); }
LEDKDE_HD double lse_entropy(const LseScalars& s) { return std::log(s.S) - s.E / s.S; }
// m is the largest logit seen, so the largest weight is exp(m - log p) = 1 / S.
LEDKDE_HD double lse_max_weight(const LseScalars& s) { return 1.0 / s.S; }


// ---------------------------------------------------------------------------
// Vectorizable exponential for arguments x <= 0 (shifted logits l - m).
// exp(x) = 2^n * exp(r), r = x - n ln2 in [-ln2/2, ln2/2], and a polynomial
// for exp(r). Float: r by one FMA with ln2 rounded to float, whose error
// (about 1e-9 relative) grows the error with |n|, and a degree-6 fit of
// relative error (1.3 ulp alone): at most 1.8 ulp over [-20, 0] and 4.5 ulp
// over [-87, 0] (where the weights are below 2e-9), measured against float64
// exp on a 3-million-point grid.
// Double: ln2 split in two parts (Cody-Waite) and the degree-12 Taylor
// polynomial, about 2 ulp. No table,
// no branch, no clamp: the arithmetic runs unconditionally and one select at
// the end returns 0 below `lo` (and for -inf and NaN), so GCC and nvcc
// vectorize the loops that call it into a straight run of FMAs.
template <class T>
struct ExpConsts;
template <>
struct ExpConsts<float> {
  static constexpr float lo = -87.0f;  // below this exp underflows: return 0
  static constexpr bool split_ln2 = false;
  static constexpr int degree = 6;
  // exp(r) ~ sum_k coef(k) r^k on |r| <= ln2/2, coef(0) = coef(1) = 1. (A
  // constexpr function, not a static array: device code cannot read host
  // arrays; exp_poly evaluates it at compile time.)
  static constexpr LEDKDE_HD float coef(int k) {
    constexpr float c[7] = {1.0f, 1.0f, 0.4999999403953552f, 0.16666431725025177f,
                            0.04166800156235695f, 0.00837415549904108f, 0.0013843653723597527f};
    return c[k];
  }
  using Bits = uint32_t;
  static constexpr int mant = 23;
  static constexpr float shifter = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
};
template <>
struct ExpConsts<double> {
  static constexpr double lo = -708.0;
  static constexpr bool split_ln2 = true;
  static constexpr int degree = 12;
  // 1 / k!
  static constexpr LEDKDE_HD double coef(int k) {
    constexpr double c[13] = {1.0, 1.0, 1.0 / 2, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720,
                              1.0 / 5040, 1.0 / 40320, 1.0 / 362880, 1.0 / 3628800,
                              1.0 / 39916800, 1.0 / 479001600};
    return c[k];
  }
  using Bits = uint64_t;
  static constexpr int mant = 52;
  static constexpr double shifter = 6755399441055744.0;  // 1.5 * 2^52
};

// Float's accuracy in double lanes: the float polynomial (its coefficients
// exact in double) on double arguments, with double's range and exponent
// field. For kernels whose data are float but whose logits are float64: the
// weights come out as accurate as float's exponential gives them, without
// converting each vector to float and back.
struct ExpConstsFloatInDouble {
  static constexpr double lo = -708.0;
  static constexpr bool split_ln2 = false;
  static constexpr int degree = ExpConsts<float>::degree;
  static constexpr LEDKDE_HD double coef(int k) { return ExpConsts<float>::coef(k); }
  using Bits = uint64_t;
  static constexpr int mant = 52;
  static constexpr double shifter = ExpConsts<double>::shifter;
};

// The scalar type of T and the unsigned integer type of its bits: T itself,
// or for a vector type of a host compiler (GCC's vector_size), its lanes'
// (a specialization beside the code that uses the vector type).
template <class T>
struct ExpLanes {
  using Scalar = T;
  using Bits = typename ExpConsts<T>::Bits;
};

// sum_k coef(k) r^k by Horner's rule, each coefficient a compile-time
// constant (a loop over a coefficient array stopped GCC from vectorizing the
// callers' loops for AVX2).
template <class T, class C, int K>
LEDKDE_HD T exp_poly(T r) {
  using S = typename ExpLanes<T>::Scalar;
  constexpr S ck = C::coef(K);
  if constexpr (K == C::degree) return T{} + ck;
  else return exp_poly<T, C, K + 1>(r) * r + ck;
}

// C: the constants (ExpConsts of T's lanes by default, or
// ExpConstsFloatInDouble for double lanes).
template <class T, class C = ExpConsts<typename ExpLanes<T>::Scalar>>
LEDKDE_HD T exp_nonpositive(T x) {
  using S = typename ExpLanes<T>::Scalar;
  const S log2e = S(1.4426950408889634);
  const S ln2 = S(0.69314718055994530942);
  const S ln2_hi = S(0.693145751953125);        // exact in float: 12 significant bits
  const S ln2_lo = S(1.4286068203094172321e-6);  // ln2 - ln2_hi
  // n = round(x / ln2): adding the shifter rounds to an integer, which then
  // sits in kf's low mantissa bits (two's complement); |x / ln2| < 2^22 here.
  const T kf = x * log2e + C::shifter;
  const T n = kf - C::shifter;
  T r;
  if constexpr (C::split_ln2) r = (x - n * ln2_hi) - n * ln2_lo;
  else r = x - n * ln2;
  const T p = exp_poly<T, C, 0>(r);
  // Times 2^n by adding n to p's exponent field: shifting kf's bits by the
  // mantissa width drops the shifter's bits and leaves n << mant. p lies in
  // [0.7, 1.5] and n >= -126 for x >= lo (and n = -126 only with p > 1), so
  // the result stays a normal number.
  typename ExpLanes<T>::Bits b, pb;
  std::memcpy(&b, &kf, sizeof(T));
  std::memcpy(&pb, &p, sizeof(T));
  pb += b << C::mant;
  T result;
  std::memcpy(&result, &pb, sizeof(T));
  return x >= C::lo ? result : T{};
}

// p * z for p = exp_nonpositive(z): 0, not 0 * -inf = NaN, where z = -inf
// (p is exactly 0 below lo, so clamping z there changes nothing else).
template <class T>
LEDKDE_HD T entropy_term(T p, T z) {
  return p * (z > ExpConsts<T>::lo ? z : ExpConsts<T>::lo);
}

}  // namespace ledkde
