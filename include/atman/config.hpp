#pragma once
// Modes, factors, granularities, budgets and their defaults (atman-method.md).

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <limits>
#include <string>

#include "error.hpp"

namespace atman {

using index_t = std::ptrdiff_t;

namespace detail {
// The smallest multiple of `multiple` (> 0) that is >= n (>= 0).
constexpr index_t round_up(index_t n, index_t multiple) { return (n + multiple - 1) / multiple * multiple; }

// x in at most 6 significant digits, for messages ("1e+39", not 40 digits).
inline std::string short_number(double x) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", x);
    return text;
}
}  // namespace detail

// How key factors act on the pre-softmax scores (atman-method.md, section 2).
enum class manipulation_mode {
    multiplicative,  // S' = m + phi (S - m), m = row minimum over visible keys
    log_additive     // S' = S + log(phi), phi = 0 -> large negative bias
};

// What one unit is made of (units.hpp).
enum class granularity { token, word, sentence, paragraph, delimiter, spans, grid };

// What a report shows: one explanation of the whole target, or besides it
// one per target token. Both are always computed (explanation.hpp); this only
// chooses the view (report options).
enum class target_granularity { complete, token };

enum class postprocess { none, absolute, square };

// The additive bias standing in for log(0) in log_additive mode.
inline constexpr float log_additive_zero_bias = -1e4f;

struct config {
    manipulation_mode mode = manipulation_mode::multiplicative;
    double factor = 0.1;                 // phi applied to a suppressed unit
    bool conceptual = false;             // cosine-neighbourhood suppression
    double kappa = 0.7;                  // neighbourhood threshold (s >= kappa)
    index_t max_neighbours = 0;          // per position; 0 = no cap
    bool explain_targets_by_earlier_targets = false;
    postprocess post = postprocess::none;
    bool normalize = false;              // min-max to [0, 1] after postprocessing
    // Batch budget (scheduler.hpp, resolve_batch_budget): both 0 = automatic.
    index_t max_batch_rows = 0;          // rows per batch; 0 = the scheduler's bound
    index_t max_batch_token_rows = 0;    // sum over rows of recomputed positions; 0 = no bound

    // Throws invalid_argument naming the first field out of its domain.
    void validate() const {
        // The kernels take factors as float: a larger one would become infinity.
        detail::require(std::isfinite(factor) && factor >= 0 && factor <= std::numeric_limits<float>::max(),
                        "factor must be a number from 0 to " + detail::short_number(std::numeric_limits<float>::max()) +
                            ", got " + detail::short_number(factor));
        detail::require(std::isfinite(kappa) && kappa >= -1 && kappa <= 1,
                        "kappa must lie in [-1, 1], got " + detail::short_number(kappa));
        detail::require(max_neighbours >= 0, "max_neighbours must be >= 0");
        detail::require(max_batch_rows >= 0, "max_batch_rows must be >= 0");
        detail::require(max_batch_token_rows >= 0, "max_batch_token_rows must be >= 0");
    }
};

inline const char* to_string(manipulation_mode m) {
    return m == manipulation_mode::multiplicative ? "multiplicative" : "log_additive";
}
inline const char* to_string(target_granularity g) {
    return g == target_granularity::complete ? "complete" : "token";
}
inline const char* to_string(postprocess p) {
    switch (p) {
        case postprocess::none: return "none";
        case postprocess::absolute: return "absolute";
        case postprocess::square: return "square";
    }
    return "?";
}
inline const char* to_string(granularity g) {
    switch (g) {
        case granularity::token: return "token";
        case granularity::word: return "word";
        case granularity::sentence: return "sentence";
        case granularity::paragraph: return "paragraph";
        case granularity::delimiter: return "delimiter";
        case granularity::spans: return "spans";
        case granularity::grid: return "grid";
    }
    return "?";
}

}  // namespace atman
