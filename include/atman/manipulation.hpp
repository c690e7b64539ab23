#pragma once
// Applying key factors phi to one query row of pre-softmax scores (atman-method.md, section 2).
//
// The scores are taken after the 1/sqrt(d) scale and before the causal mask
// and softmax; scores[0..n_visible) are the keys the row may see.
//   multiplicative: m = min_j S_j over the visible keys, S'_j = m + phi_j (S_j - m)
//   log_additive:   S'_j = S_j + log(phi_j), phi_j = 0 -> S_j + log_additive_zero_bias

#include <algorithm>
#include <cmath>
#include <string>

#include "config.hpp"
#include "error.hpp"

namespace atman {

namespace detail {

// Index of the first factor that is negative, NaN or infinite; -1 when all are valid.
inline index_t first_invalid_factor(const float* key_factors, index_t n) {
    for (index_t j = 0; j < n; ++j) {
        if (!(std::isfinite(key_factors[j]) && key_factors[j] >= 0)) return j;
    }
    return -1;
}

// The per-key number each mode needs, so a kernel can compute it once per row
// and reuse it for every query and head:
//   multiplicative: phi - 1   (S' = S + (phi - 1)(S - m), which keeps phi = 1 bit-exact)
//   log_additive:   log(phi)  (or the zero bias for phi = 0)
template <class Scalar>
Scalar key_coefficient(manipulation_mode mode, float phi) {
    if (mode == manipulation_mode::multiplicative) return Scalar(phi) - Scalar(1);
    return phi == 0 ? Scalar(log_additive_zero_bias) : std::log(Scalar(phi));
}

// Applies the manipulation to scores[0..n_visible); coefficient(j) yields
// key_coefficient(mode, phi_j), either computed on the fly or precomputed.
template <class Scalar, class Coefficient>
void apply_key_coefficients(manipulation_mode mode, Scalar* scores, index_t n_visible,
                            Coefficient coefficient) {
    if (n_visible <= 0) return;
    if (mode == manipulation_mode::multiplicative) {
        const Scalar row_min = *std::min_element(scores, scores + n_visible);
        for (index_t j = 0; j < n_visible; ++j) scores[j] += coefficient(j) * (scores[j] - row_min);
    } else {
        for (index_t j = 0; j < n_visible; ++j) scores[j] += coefficient(j);
    }
}

}  // namespace detail

// Throws invalid_argument naming the first factor that is negative, NaN or infinite.
inline void validate_key_factors(const float* key_factors, index_t n) {
    detail::require(n >= 0, "key factor count must be >= 0, got " + std::to_string(n));
    if (n == 0) return;
    detail::require(key_factors != nullptr, "key_factors is null but " + std::to_string(n) +
                                                " factors were expected");
    const index_t bad = detail::first_invalid_factor(key_factors, n);
    if (bad >= 0) {
        throw invalid_argument("key_factors[" + std::to_string(bad) +
                               "] must be a finite number >= 0, got " +
                               std::to_string(key_factors[bad]));
    }
}

// Manipulates one query row in place. key_factors[j] = phi_j for key j; nullptr
// leaves the row untouched. Factors are not validated here (this is an inner
// loop): call validate_key_factors once per factor vector.
template <class Scalar>
void manipulate_scores(manipulation_mode mode, Scalar* scores, index_t n_visible,
                       const float* key_factors) {
    if (key_factors == nullptr) return;
    detail::apply_key_coefficients(mode, scores, n_visible, [&](index_t j) {
        return detail::key_coefficient<Scalar>(mode, key_factors[j]);
    });
}

}  // namespace atman
