// The declarations of the row kernels (row_kernels.h), included inside
// ledkde::rows and inside each instruction-set namespace of the dispatcher
// (row_kernels.cpp). No include guard: included once per namespace.
// NOLINT(build/header_guard)

// x_j = c'_j - (ny + |mu_j|^2 - 2 g_j) * k_j (c', k per component, or c' = 0
// and k = k0 when the pointers are null). Returns max_j x_j.
float logits_expansion(const float* norm2, const float* g, float ny, const float* cprime,
                       const float* k, float k0, int64_t nb, float* x);
double logits_expansion(const double* norm2, const double* g, double ny, const double* cprime,
                        const double* k, double k0, int64_t nb, double* x);

// x_j = c'_j - |row - mu_j|^2 * k_j by coordinate differences, with the
// components stored coordinate-major (muT[c * ld + j]); d2 is scratch (nb).
// Returns max_j x_j.
float logits_direct(const float* row, const float* muT, int64_t ld, int64_t d, const float* cprime,
                    const float* k, float k0, int64_t nb, float* d2, float* x);
double logits_direct(const double* row, const double* muT, int64_t ld, int64_t d,
                     const double* cprime, const double* k, double k0, int64_t nb, double* d2,
                     double* x);

// The same logits as logits_direct, without storing them: returns max_j x_j.
float direct_max(const float* row, const float* muT, int64_t ld, int64_t d, const float* cprime,
                 const float* k, float k0, int64_t nb);
double direct_max(const double* row, const double* muT, int64_t ld, int64_t d,
                  const double* cprime, const double* k, double k0, int64_t nb);

// One fused sweep over the tile for d <= kDirectMaxDim: recomputes the logits
// x_j as in logits_direct, and with p_j = exp(x_j - shift) and w_j = p_j (or
// p_j * 2 k_j when per_var) writes
//   sums[0] = sum p,  sums[1] = sum p (x - shift),  sums[2] = sum w,
//   sums[3] = shift + max (x - shift),
//   acc[c] = scale * sum_j w_j (muT[c * ld + j] - row[c])   for c < d
// (sums[1] = 0 unless entropy).
// The shift need not be the maximum: the sums are accurate (and finite)
// while max x - shift stays below about 80 in float, 700 in double.
void direct_accumulate(const float* row, const float* muT, int64_t ld, int64_t d,
                       const float* cprime, const float* k, float k0, bool per_var, bool entropy,
                       int64_t nb,
                       float shift, double scale, double* sums, double* acc);
void direct_accumulate(const double* row, const double* muT, int64_t ld, int64_t d,
                       const double* cprime, const double* k, double k0, bool per_var,
                       bool entropy, int64_t nb,
                       double shift, double scale, double* sums, double* acc);

// The logits of logits_expansion, shifted and exponentiated in one sweep:
// z_j = x_j - shift, p_j = exp(z_j) written to p. Writes sums[0] = sum p,
// sums[1] = sum p z (0 unless entropy), sums[2] = max z, sums[3] = the number
// of z_j >= cut. Accurate while max z stays below about 80 (float). A block
// of kLiveBlock (64) components whose z_j all lie below skip gets p_j = 0
// without the exponential, and live[block] = 0 (else 1); skip = -inf: never.
// The caller picks skip so that all such weights together stay far below
// the rounding of the sums.
void expansion_weights(const float* norm2, const float* g, float ny, const float* cprime,
                       const float* k, float k0, int64_t nb, float shift, float cut, float skip,
                       bool entropy, float* p, double* sums, uint8_t* live);
void expansion_weights(const double* norm2, const double* g, double ny, const double* cprime,
                       const double* k, double k0, int64_t nb, double shift, double cut,
                       double skip, bool entropy, double* p, double* sums, uint8_t* live);

// The indices j (ascending) with x_j >= cut written to idx (which must hold nb
// entries); returns their number.
int64_t indices_at_least(const float* x, int64_t nb, float cut, int64_t* idx);
int64_t indices_at_least(const double* x, int64_t nb, double cut, int64_t* idx);

// Float64 logits of squared distances D_j: l_j = cprime_j - D_j k_j (cprime
// given) or -D_j k0, with D_j = ny + n2_j - 2 g_j when n2 is given, else D_j =
// l_j on entry (in place); returns max_j l_j.
double logits_f64(const double* n2, const double* g, double ny, const float* cprime, const float* k, double k0,
                  int64_t nb, double* l);
double logits_f64(const double* n2, const double* g, double ny, const double* cprime, const double* k,
                  double k0, int64_t nb, double* l);

// The number of j with x_j >= cut.
int64_t count_at_least(const double* x, int64_t nb, double cut);

// x_j = l_j - m, rounded to the working precision.
void shifted(const double* l, int64_t nb, double m, float* x);
void shifted(const double* l, int64_t nb, double m, double* x);

// sum_j x_j.
double sum(const float* x, int64_t nb);
double sum(const double* x, int64_t nb);

// sum_j a_j b_j, summed in the working type (lane-wise partial sums in a
// fixed order), returned in float64.
double dot(const float* a, const float* b, int64_t nb);
double dot(const double* a, const double* b, int64_t nb);

// acc[j] += scale * x[j] for j < n (float64 accumulators).
void add_scaled(const float* x, int64_t n, double scale, double* acc);
void add_scaled(const double* x, int64_t n, double scale, double* acc);

// out[c] = row . mu_{idx[c]} (mu: rows of d values) for c < count, summed in
// the working precision (the approximate logits of a pruned pass's candidates).
void dots(const float* row, const float* mu, int64_t d, const uint32_t* idx, int64_t count, double* out);
void dots(const double* row, const double* mu, int64_t d, const uint32_t* idx, int64_t count, double* out);

// |a - b|^2 by coordinate differences accumulated in float64 (the exact
// recompute of near-maximum logits).
double exact_dist2(const float* a, const float* b, int64_t d);
double exact_dist2(const double* a, const double* b, int64_t d);
// The same for count rows of mu at once: out[c] = |row - mu_{idx[c]}|^2 (four
// at a time; each the same number exact_dist2 gives).
void exact_dist2s(const float* row, const float* mu, int64_t d, const int64_t* idx, int64_t count, double* out);
void exact_dist2s(const double* row, const double* mu, int64_t d, const int64_t* idx, int64_t count, double* out);

// p_j = exp(x_j - shift) in place; *s = sum p, *e = sum p (x - shift) (0 * -inf left out).
void weights(float* x, int64_t nb, float shift, double* s, double* e);
void weights(double* x, int64_t nb, double shift, double* s, double* e);

// x_j *= 2 k_j (weights divided by v_j); returns the new sum.
double scale_by_inverse_variance(float* x, const float* k, int64_t nb);
double scale_by_inverse_variance(double* x, const double* k, int64_t nb);

// acc[c] += scale * sum_j p_j (muT[c * ld + j] - row[c]) for c < d.
void weighted_sum_direct(const float* p, const float* row, const float* muT, int64_t ld, int64_t d,
                         int64_t nb, double scale, double* acc);
void weighted_sum_direct(const double* p, const double* row, const double* muT, int64_t ld,
                         int64_t d, int64_t nb, double scale, double* acc);

