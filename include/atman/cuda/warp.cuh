#pragma once
// Reductions across the 32 lanes of a warp; every lane receives the result.

#include <math.h>

namespace atman::cuda::detail {

inline constexpr int warp_size = 32;
inline constexpr unsigned full_warp = 0xffffffffu;

__device__ inline float warp_max(float x) {
    for (int offset = warp_size / 2; offset > 0; offset /= 2)
        x = fmaxf(x, __shfl_xor_sync(full_warp, x, offset));
    return x;
}

__device__ inline float warp_min(float x) {
    for (int offset = warp_size / 2; offset > 0; offset /= 2)
        x = fminf(x, __shfl_xor_sync(full_warp, x, offset));
    return x;
}

__device__ inline float warp_sum(float x) {
    for (int offset = warp_size / 2; offset > 0; offset /= 2)
        x += __shfl_xor_sync(full_warp, x, offset);
    return x;
}

}  // namespace atman::cuda::detail
