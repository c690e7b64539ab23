#pragma once
// Ground-truth labels of context units (docs/quality.md): SQuAD gives each
// answer as its text and its start in Unicode code points of the context; the
// units carry byte ranges. A unit is positive when its bytes overlap the bytes
// of any answer.

#include <atman/config.hpp>
#include <atman/detail/method_text.hpp>
#include <atman/error.hpp>
#include <atman/units.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace atman::eval {

// The byte offset of code point number `code_points` of text (text.size() for
// the end). Throws invalid_argument on invalid UTF-8 before that point or when
// text has fewer code points.
inline index_t code_points_to_bytes(std::string_view text, index_t code_points) {
    atman::detail::require(code_points >= 0, "code point offset " + std::to_string(code_points) +
                                                 " is negative");
    index_t at = 0;
    for (index_t k = 0; k < code_points; ++k) {
        atman::detail::require(at < index_t(text.size()),
                               "code point offset " + std::to_string(code_points) +
                                   " is past the end of a text of " + std::to_string(k) +
                                   " code points");
        const atman::detail::code_point c = atman::detail::decode_code_point(text, at);
        atman::detail::require(!(c.value == 0xFFFD && c.length == 1),
                               "invalid UTF-8 at byte " + std::to_string(at));
        at += c.length;
    }
    return at;
}

// The bytes of an answer in context, or nothing when the answer text is not
// found at its code point offset (or the offset is out of range). An empty
// answer text is never found.
inline std::optional<byte_range> answer_bytes(std::string_view context, std::string_view answer,
                                              index_t start_code_point) {
    if (answer.empty()) return std::nullopt;
    index_t start = 0;
    try {
        start = code_points_to_bytes(context, start_code_point);
    } catch (const atman::invalid_argument&) {
        return std::nullopt;
    }
    if (context.substr(std::size_t(start), answer.size()) != answer) return std::nullopt;
    return byte_range{start, start + index_t(answer.size())};
}

// 1 for each unit whose bytes [start, end) overlap one of answers (half-open
// ranges: touching is not overlapping, an empty range overlaps nothing), else 0.
inline std::vector<int> unit_labels(const std::vector<byte_range>& units,
                                    const std::vector<byte_range>& answers) {
    std::vector<int> labels(units.size(), 0);
    for (std::size_t u = 0; u < units.size(); ++u) {
        for (const byte_range& a : answers) {
            const index_t start = std::max(units[u].start, a.start);
            const index_t end = std::min(units[u].end, a.end);
            if (start < end) labels[u] = 1;
        }
    }
    return labels;
}

}  // namespace atman::eval
