#pragma once
// The teacher-forced sequence of an explanation (atman-method.md, section 1):
// the prompt x_0..x_{n-1} followed by y_0..y_{m-2}, so that the logits at
// positions n-1 .. n+m-2 score the targets y_0..y_{m-1}.

#include <cstdint>
#include <string>
#include <vector>

#include "adapter.hpp"
#include "config.hpp"
#include "error.hpp"

namespace atman {

struct teacher_forced_sequence {
    std::vector<std::int32_t> tokens;   // T = n + m - 1 positions
    std::vector<std::int32_t> targets;  // y_0..y_{m-1}

    // Throws invalid_argument when the prompt or the target is empty.
    teacher_forced_sequence(const std::vector<std::int32_t>& prompt,
                            const std::vector<std::int32_t>& target)
        : tokens(prompt), targets(target) {
        detail::require(!prompt.empty(), "teacher-forced sequence: the prompt has no tokens");
        detail::require(!target.empty(), "teacher-forced sequence: the target has no tokens");
        tokens.insert(tokens.end(), target.begin(), target.end() - 1);
    }

    index_t length() const { return index_t(tokens.size()); }
    index_t first_scored() const { return length() - index_t(targets.size()); }
    // Valid while this object lives and is not changed.
    sequence_view view() const {
        return {tokens.data(), length(), first_scored(), targets.data(), index_t(targets.size())};
    }
};

}  // namespace atman
