#pragma once
// The element types the kernels accept (float, __half, __nv_bfloat16) and their
// conversions to and from the float32 the kernels accumulate in.

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <type_traits>

#include "../detail/host_device.hpp"

namespace atman::cuda {

template <class Scalar>
inline constexpr bool is_supported_scalar =
    std::is_same_v<Scalar, float> || std::is_same_v<Scalar, __half> ||
    std::is_same_v<Scalar, __nv_bfloat16>;

ATMAN_HOST_DEVICE inline float to_float(float x) { return x; }
ATMAN_HOST_DEVICE inline float to_float(__half x) { return __half2float(x); }
ATMAN_HOST_DEVICE inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }

// Rounds to nearest even, like the CPU does when it narrows.
template <class Scalar>
ATMAN_HOST_DEVICE inline Scalar from_float(float x) {
    static_assert(is_supported_scalar<Scalar>, "float, __half or __nv_bfloat16");
    if constexpr (std::is_same_v<Scalar, float>) {
        return x;
    } else if constexpr (std::is_same_v<Scalar, __half>) {
        return __float2half_rn(x);
    } else {
        return __float2bfloat16_rn(x);
    }
}

template <class Scalar>
inline const char* scalar_name() {
    static_assert(is_supported_scalar<Scalar>, "float, __half or __nv_bfloat16");
    if constexpr (std::is_same_v<Scalar, float>) {
        return "float32";
    } else if constexpr (std::is_same_v<Scalar, __half>) {
        return "float16";
    } else {
        return "bfloat16";
    }
}

}  // namespace atman::cuda
