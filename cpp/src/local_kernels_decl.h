// The declarations of the LS kernels (local_kernels.h), included inside
// ledkde::local_kernels and inside each instruction-set namespace of the
// dispatcher (local_kernels.cpp). No include guard: included once per namespace.
// NOLINT(build/header_guard)

// Scratch (doubles) that ls_logits needs for an h x w image and window radius r.
int64_t ls_scratch(int64_t h, int64_t w, int64_t r);

// The logits of one training image x (h, w, c) for the query y (float64):
// L[p] = lw - inv2t * sum over p's (2r+1)^2 window of sum_c (y - x)^2, the
// window's outside pixels left out (circular: wrapped). Exact to float64
// rounding (prefix sums of nonnegative terms).
void ls_logits(const double* y, const float* x, int64_t h, int64_t w, int64_t c, int64_t r, bool circular,
               double lw, double inv2t, double* scratch, double* L);
void ls_logits(const double* y, const double* x, int64_t h, int64_t w, int64_t c, int64_t r, bool circular,
               double lw, double inv2t, double* scratch, double* L);

// Each pixel's state (m, S, and A, hw x c) moved onto the maximum of m and the
// nt images' logits L (nt x hw); top is scratch (hw).
void ls_rescale(const double* L, int64_t nt, int64_t hw, int64_t c, double* m, double* S, double* A, double* top);

// One image's weights exp(L - m) added to S, and times its pixels x to A.
void ls_accumulate(const double* L, const float* x, int64_t hw, int64_t c, const double* m, double* S, double* A);
void ls_accumulate(const double* L, const double* x, int64_t hw, int64_t c, const double* m, double* S,
                   double* A);
