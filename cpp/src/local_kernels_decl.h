// The declarations of the LS kernels (local_kernels.h), included inside
// ledkde::local_kernels and inside each instruction-set namespace of the
// dispatcher (local_kernels.cpp). No include guard: included once per namespace.
// NOLINT(build/header_guard)

// Scratch (doubles) that ls_group needs for an h x w image and window radius r.
int64_t ls_scratch(int64_t h, int64_t w, int64_t r);

// One group of kLsLanes training images (local_cpu.h: xg holds them
// interleaved, (h, w, c, lane)) against the query y (h w c, float64): each
// lane's logits L[p] = lw[lane] - inv2t * sum over p's (2r+1)^2 window of
// sum_c (y - x)^2 (the window's outside pixels left out, or wrapped when
// circular), by sliding sums along columns and then along rows in float64
// (cost independent of r), added at once into every pixel's online
// log-sum-exp state: the maximum m (hw, shared by the lanes), and each lane's
// sums S (hw, lane) and A (hw, c, lane).
void ls_group(const double* y, const float* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
              bool circular, double inv2t, double* scratch, double* m, double* S, double* A);
void ls_group(const double* y, const double* xg, const double* lw, int64_t h, int64_t w, int64_t c, int64_t r,
              bool circular, double inv2t, double* scratch, double* m, double* S, double* A);
