#pragma once
// What every report writer checks and derives from an explanation.

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <vector>

#include "../error.hpp"
#include "../explanation.hpp"

namespace atman::detail {

// Throws numeric_error naming the first NaN or infinite number: a report
// cannot show it (JSON has no such numbers, a colour scale no place for them).
inline void require_finite_numbers(const explanation& e) {
    const auto check = [](double value, const std::string& what) {
        if (!std::isfinite(value))
            throw numeric_error("report: " + what + " is not finite (" + std::to_string(value) + ")");
    };
    check(e.cfg.factor, "config factor");
    check(e.cfg.kappa, "config kappa");
    check(e.stats.seconds, "stats seconds");
    for (std::size_t t = 0; t < e.targets.size(); ++t)
        check(e.targets[t].base_ce, "base_ce of target token " + std::to_string(t));
    for (const unit_score& u : e.units) {
        const std::string unit = "unit " + std::to_string(u.index);
        check(u.score, "score of " + unit);
        for (std::size_t t = 0; t < u.scores_per_target.size(); ++t)
            check(u.scores_per_target[t], "scores_per_target[" + std::to_string(t) + "] of " + unit);
    }
}

// True when every unit has one score per target token (the per-target views).
inline bool has_scores_per_target(const explanation& e) {
    return !e.targets.empty() && std::all_of(e.units.begin(), e.units.end(), [&](const unit_score& u) {
        return u.scores_per_target.size() == e.targets.size();
    });
}

// Which score a heatmap shows: the unit's score, or its score for one target token.
struct score_view {
    static constexpr index_t all_targets = -1;
    index_t target = all_targets;

    double operator()(const unit_score& u) const {
        return target == all_targets ? u.score : u.scores_per_target[static_cast<std::size_t>(target)];
    }
};

// A piece of the prompt: the text of one unit, or text between units (unit == nullptr).
struct prompt_segment {
    std::string_view text;
    const unit_score* unit = nullptr;
};

// The prompt cut into segments in text order. Throws invalid_argument when a
// unit's byte range lies outside the prompt or overlaps another unit.
inline std::vector<prompt_segment> segment_prompt(const explanation& e) {
    std::vector<const unit_score*> units;
    for (const unit_score& u : e.units) {
        const auto size = static_cast<index_t>(e.prompt.size());
        if (u.start < 0 || u.start > u.end || u.end > size)
            throw invalid_argument("report: unit " + std::to_string(u.index) + " has byte range [" +
                                   std::to_string(u.start) + ", " + std::to_string(u.end) +
                                   ") outside the prompt of " + std::to_string(size) + " bytes");
        units.push_back(&u);
    }
    std::stable_sort(units.begin(), units.end(),
                     [](const unit_score* a, const unit_score* b) { return a->start < b->start; });

    const std::string_view prompt = e.prompt;
    std::vector<prompt_segment> segments;
    index_t at = 0;
    for (const unit_score* u : units) {
        if (u->start < at)
            throw invalid_argument("report: unit " + std::to_string(u->index) +
                                   " overlaps the unit before it in the prompt");
        if (u->start > at)
            segments.push_back({prompt.substr(static_cast<std::size_t>(at),
                                              static_cast<std::size_t>(u->start - at)), nullptr});
        segments.push_back({prompt.substr(static_cast<std::size_t>(u->start),
                                          static_cast<std::size_t>(u->end - u->start)), u});
        at = u->end;
    }
    if (at < static_cast<index_t>(prompt.size()))
        segments.push_back({prompt.substr(static_cast<std::size_t>(at)), nullptr});
    return segments;
}

}  // namespace atman::detail
