#pragma once
// The manipulation of one pre-softmax score, shared by every CUDA kernel and
// callable (and tested) on the CPU as well. Same arithmetic as manipulation.hpp:
//   multiplicative: S' = S + (phi - 1)(S - m), m = row minimum over the visible keys
//                   (equal to m + phi (S - m), and bit-exact S for phi = 1)
//   log_additive:   S' = S + log(phi), phi = 0 -> S + log_additive_zero_bias

#include <math.h>

#include "../config.hpp"
#include "../detail/host_device.hpp"

namespace atman::cuda {

// The per-key number each mode needs: phi - 1, or log(phi) (the zero bias for phi = 0).
// Zero means "key untouched" in both modes.
ATMAN_HOST_DEVICE inline float key_coefficient(manipulation_mode mode, float phi) {
    if (mode == manipulation_mode::multiplicative) return phi - 1.0f;
    return phi == 0.0f ? log_additive_zero_bias : ::logf(phi);
}

ATMAN_HOST_DEVICE inline float manipulated_score(manipulation_mode mode, float score,
                                                 float coefficient, float row_min) {
    if (mode == manipulation_mode::multiplicative) return score + coefficient * (score - row_min);
    return score + coefficient;
}

}  // namespace atman::cuda
