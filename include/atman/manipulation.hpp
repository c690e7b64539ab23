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
#include "detail/kernels_eigen.hpp"
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

template <class Scalar>
using row_array_map = Eigen::Map<Eigen::Array<Scalar, 1, Eigen::Dynamic>>;
template <class Scalar>
using const_row_array_map = Eigen::Map<const Eigen::Array<Scalar, 1, Eigen::Dynamic>>;

// The multiplicative mode's minimum over the visible scores (0, unused, otherwise).
template <class Scores>
typename Scores::Scalar manipulation_row_min(manipulation_mode mode, const Scores& visible) {
    if (mode != manipulation_mode::multiplicative) return 0;
    return visible.minCoeff();
}

// Calls use(expression) with the manipulated scores as an Eigen array
// expression, evaluated lazily, so a kernel can fuse the manipulation into
// its softmax passes instead of storing it first. scores and coefficients
// (key_coefficient of each phi_j) are 1 x n arrays; row_min is
// manipulation_row_min over the whole visible row.
template <class Scores, class Coefficients, class Use>
void with_manipulated_scores(manipulation_mode mode, const Scores& scores,
                             const Coefficients& coefficients, typename Scores::Scalar row_min,
                             Use&& use) {
    if (mode == manipulation_mode::multiplicative) {
        use(scores + coefficients * (scores - row_min));
    } else {
        use(scores + coefficients);
    }
}

// Stores the manipulation of scores[0..n). Not inlined: inlined into a
// caller's small fixed-size array, gcc 12 reports Eigen's (never taken)
// packet path as out of bounds (-Warray-bounds).
template <class Scalar>
[[gnu::noinline]] void manipulate_in_place(manipulation_mode mode, Scalar* scores, index_t n,
                                           const Scalar* coefficients, Scalar row_min) {
    row_array_map<Scalar> s(scores, n);
    with_manipulated_scores(mode, s, const_row_array_map<Scalar>(coefficients, n), row_min,
                            [&](const auto& manipulated) { s = manipulated; });
}

template <class Scalar>
[[gnu::noinline]] Scalar manipulation_row_min(manipulation_mode mode, const Scalar* scores,
                                              index_t n) {
    return manipulation_row_min(mode, const_row_array_map<Scalar>(scores, n));
}

}  // namespace detail

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

// Manipulates one query row in place. key_factors[j] = phi_j for key j; nullptr
// leaves the row untouched. Factors are not validated here (this is an inner
// loop): call validate_key_factors once per factor vector.
template <class Scalar>
void manipulate_scores(manipulation_mode mode, Scalar* scores, index_t n_visible,
                       const float* key_factors) {
    if (key_factors == nullptr || n_visible <= 0) return;
    // The coefficients go through a small stack buffer, a chunk at a time.
    constexpr index_t chunk = 256;
    Scalar coefficients[chunk];
    const Scalar row_min = detail::manipulation_row_min(mode, scores, n_visible);
    for (index_t first = 0; first < n_visible; first += chunk) {
        const index_t n = std::min(chunk, n_visible - first);
        for (index_t j = 0; j < n; ++j) {
            coefficients[j] = detail::key_coefficient<Scalar>(mode, key_factors[first + j]);
        }
        detail::manipulate_in_place(mode, scores + first, n, coefficients, row_min);
    }
}

}  // namespace atman
