#pragma once
// The diverging colour scale of the heatmaps: positive scores (the unit
// supports the target) in red, negative (it opposes) in blue, zero white.

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace atman::detail {

struct rgb {
    std::uint8_t r = 255, g = 255, b = 255;
};

class diverging_scale {
public:
    // The scale spans [min(0, lowest), max(0, highest)] of scores; both sides
    // share one magnitude so that equal |score| gets equal intensity.
    static diverging_scale fit(const std::vector<double>& scores) {
        diverging_scale scale;
        for (double s : scores) {
            scale.lowest_ = std::min(scale.lowest_, s);
            scale.highest_ = std::max(scale.highest_, s);
        }
        return scale;
    }

    double lowest() const { return lowest_; }
    double highest() const { return highest_; }

    rgb colour(double score) const {
        const double magnitude = std::max(-lowest_, highest_);
        if (!(magnitude > 0)) return {};
        const double t = std::clamp(std::abs(score) / magnitude, 0.0, 1.0);
        return blend(score >= 0 ? supports : opposes, t);
    }

    // Black or white, whichever reads better on background.
    static rgb text_colour(rgb background) {
        const double luminance = 0.299 * background.r + 0.587 * background.g + 0.114 * background.b;
        return luminance > 140 ? rgb{0, 0, 0} : rgb{255, 255, 255};
    }

private:
    static constexpr rgb supports{178, 24, 43};
    static constexpr rgb opposes{33, 102, 172};

    static rgb blend(rgb full, double t) {
        const auto channel = [t](std::uint8_t c) {
            return static_cast<std::uint8_t>(std::lround(255.0 + t * (c - 255.0)));
        };
        return {channel(full.r), channel(full.g), channel(full.b)};
    }

    double lowest_ = 0, highest_ = 0;
};

}  // namespace atman::detail
