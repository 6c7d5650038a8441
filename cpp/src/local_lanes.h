// How the LS denoiser lays out its training images: kLsLanes images
// interleaved pixel by pixel (group g holds images g kLsLanes ... as
// (h, w, c, lane), the last group padded with zero images), so that its
// kernels (local_kernels_impl.h) run one image per vector lane.
#pragma once

#include <cstdint>

namespace ledkde {

inline constexpr int64_t kLsLanes = 8;

}  // namespace ledkde
