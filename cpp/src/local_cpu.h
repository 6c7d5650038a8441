// The local (LS) and equivariant local (ELS) denoisers on the CPU (SPEC
// section 1, "Local and equivariant local denoisers"): closed-form scores
// with a convolutional network's locality, over training images in (H, W, C)
// order. CPU only.
//
// LS (local_ls.cpp): per query and training image, the squared differences
// summed over channels, then summed over every pixel's window by sliding sums
// (float64; the cost does not depend on the patch size), then one online
// log-sum-exp per pixel over the images: H W N exponentials and H W N C
// multiply-adds per query, no patch matrix; kLsLanes images at a time, one
// per vector lane (local_lanes.h).
// ELS (local_els.cpp): per query pixel a mixture pass whose components are
// the training patches (dimension P^2 C) and whose values are their centre
// pixels; the patches are cut from a chunk of images at a time (identical
// patches merged, with their count as weight) and reduced by the engine's own
// tiled pass (pass_router.cpp), the chunks' partial states merged exactly:
// memory O(N H W C + one chunk), never the N H W x P^2 C matrix.
#pragma once

#include <cstdint>
#include <vector>

#include "ledkde/big_buffer.h"
#include "local_lanes.h"
#include "pass_cpu.h"

namespace ledkde {

enum LocalPadding : int { kPadZero = 0, kPadCircular = 1, kPadBoundary = 2 };

// The training images, prepared once: as rows (n, h, w, c) for ELS, or for
// LS in groups of kLsLanes interleaved images (local_lanes.h).
template <class T>
struct LocalImages {
  int64_t n = 0, h = 0, w = 0, c = 0;
  bool interleaved = false;
  BigVector<T> x;            // (n, h, w, c), or (groups, h, w, c, kLsLanes)
  std::vector<double> logw;  // (n,) log a_n as given (not normalized); empty: equal
  int64_t d() const { return h * w * c; }
  int64_t groups() const { return (n + kLsLanes - 1) / kLsLanes; }
  // Coordinate k of image i.
  T value(int64_t i, int64_t k) const {
    if (!interleaved) return x[i * d() + k];
    return x[((i / kLsLanes) * d() + k) * kLsLanes + i % kLsLanes];
  }
};

// How one evaluation looks: odd patch size, LS or ELS, padding; and whether
// ELS merges identical patches.
struct LocalSpec {
  int64_t patch = 3;
  bool equivariant = false;
  int padding = kPadZero;
  bool merge = true;
};

template <class T>
LocalImages<T> prepare_local(const T* data, int64_t n, int64_t h, int64_t w, int64_t c, const double* log_weights,
                             bool interleave);

// D(y) for q query images y (q x d, in T) at time t: out (q x d, float64).
// Threads over query images (and shards of the training images when the
// queries are few); the split depends on the sizes only, so the result does
// not depend on the thread count. opt.stop is polled.
template <class T>
void local_denoise_cpu(const LocalImages<T>& img, const LocalSpec& spec, const T* y, int64_t q, double t,
                       double* out, const PassOptions& opt);

// The parts, for local_cpu.cpp: the LS state of one query over the images of
// groups [g0, g1) (m, S per pixel; A per pixel and channel; the images must
// be interleaved), and the ELS denoiser of a block of queries.
template <class T>
void ls_state(const LocalImages<T>& img, const LocalSpec& spec, const T* y, double t, int64_t g0, int64_t g1,
              double* m, double* S, double* A);
template <class T>
void els_denoise(const LocalImages<T>& img, const LocalSpec& spec, const T* y, int64_t q, double t, double* out,
                 const PassOptions& opt);

}  // namespace ledkde
