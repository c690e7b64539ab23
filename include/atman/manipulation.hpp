#pragma once
// Key factors phi acting on pre-softmax attention scores (atman-method.md,
// section 2): the one formula every kernel of the library uses (CPU, CUDA,
// tests), and the single-row function for engines with an attention loop of
// their own.
//
// Where it acts: on the scores S_qj = (q_q . k_j) * scale, after the scale
// and before the causal mask and the softmax, in every layer and head.
//   multiplicative: m = min_j S_j over the keys the row may see (causal mask,
//                   and any other mask, applied), S'_j = m + phi_j (S_j - m)
//   log_additive:   S'_j = S_j + key_bias(phi_j): a per-key additive bias, so
//                   an engine whose attention takes an additive mask runs it
//                   by adding key_bias to the mask, with no kernel change.
// phi_j = 1 leaves key j bit-exact in both modes.
//
// Plain C++17 without Eigen; the formula functions are __host__ __device__
// under nvcc.

#include <math.h>

#include <cmath>
#include <string>

#include "config.hpp"
#include "detail/host_device.hpp"
#include "error.hpp"

namespace atman {

namespace detail {
ATMAN_HOST_DEVICE inline float natural_log(float x) { return ::logf(x); }
ATMAN_HOST_DEVICE inline double natural_log(double x) { return ::log(x); }

// Index of the first factor that is negative, NaN or infinite; -1 when all are valid.
inline index_t first_invalid_factor(const float* key_factors, index_t n) {
    for (index_t j = 0; j < n; ++j) {
        if (!(std::isfinite(key_factors[j]) && key_factors[j] >= 0)) return j;
    }
    return -1;
}
}  // namespace detail

// The log_additive mode's term for a key with factor phi: log(phi), or
// log_additive_zero_bias for phi = 0; 0 for phi = 1. It is added to the
// scaled score, as an additive mask is in softmax(scale * QK^T + mask); an
// engine that adds its mask before the scale, softmax(scale * (QK^T + mask)),
// adds key_bias / scale.
template <class Scalar = float>
ATMAN_HOST_DEVICE Scalar key_bias(float phi) {
    return phi == 0.0f ? Scalar(log_additive_zero_bias) : detail::natural_log(Scalar(phi));
}

// The per-key number each mode needs, computed once per key and reused for
// every query and head; 0 means untouched in both modes.
//   multiplicative: phi - 1   (S' = S + (phi - 1)(S - m) equals m + phi (S - m)
//                              and keeps phi = 1 bit-exact)
//   log_additive:   key_bias(phi)
template <class Scalar = float>
ATMAN_HOST_DEVICE Scalar key_coefficient(manipulation_mode mode, float phi) {
    if (mode == manipulation_mode::multiplicative) return Scalar(phi) - Scalar(1);
    return key_bias<Scalar>(phi);
}

// One manipulated score from its key's coefficient; row_min is the minimum of
// the row's visible scores (multiplicative; unused by log_additive).
template <class Scalar>
ATMAN_HOST_DEVICE Scalar manipulated_score(manipulation_mode mode, Scalar score,
                                           Scalar coefficient, Scalar row_min) {
    if (mode == manipulation_mode::multiplicative) return score + coefficient * (score - row_min);
    return score + coefficient;
}

// Throws invalid_argument naming the first factor that is negative, NaN or infinite.
inline void validate_key_factors(const float* key_factors, index_t n) {
    detail::require(n >= 0, "key factor count must be >= 0, got " + std::to_string(n));
    if (n == 0) return;
    detail::require(key_factors != nullptr,
                    "key_factors is null but " + std::to_string(n) + " factors were expected");
    const index_t bad = detail::first_invalid_factor(key_factors, n);
    if (bad >= 0) {
        throw invalid_argument("key_factors[" + std::to_string(bad) +
                               "] must be a finite number >= 0, got " +
                               std::to_string(key_factors[bad]));
    }
}

// Manipulates one query row in place: scores[0..n_visible) are the scaled
// scores of the keys the row may see, key_factors[j] = phi_j of key j;
// nullptr leaves the row untouched. Factors are not validated here (this is
// an inner loop): call validate_key_factors once per factor vector.
template <class Scalar>
void manipulate_scores(manipulation_mode mode, Scalar* scores, index_t n_visible,
                       const float* key_factors) {
    if (key_factors == nullptr || n_visible <= 0) return;
    Scalar row_min = scores[0];
    if (mode == manipulation_mode::multiplicative) {
        for (index_t j = 1; j < n_visible; ++j) row_min = scores[j] < row_min ? scores[j] : row_min;
    }
    for (index_t j = 0; j < n_visible; ++j) {
        scores[j] = manipulated_score(mode, scores[j],
                                      key_coefficient<Scalar>(mode, key_factors[j]), row_min);
    }
}

}  // namespace atman
