#pragma once
// UTF-8 repair for report writers: token texts can be partial code points
// (byte-level BPE), yet every report must be valid UTF-8.

#include <cstddef>
#include <string>
#include <string_view>

#include "utf8.hpp"

namespace atman::detail {

// text with every ill-formed subpart replaced by U+FFFD.
inline std::string sanitize_utf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t at = 0; at < text.size();) {
        const std::ptrdiff_t length = utf8_sequence_length(text, at);
        if (length > 0) {
            out.append(text.substr(at, static_cast<std::size_t>(length)));
            at += static_cast<std::size_t>(length);
        } else {
            out.append(utf8_replacement_character);
            at += static_cast<std::size_t>(-length);
        }
    }
    return out;
}

}  // namespace atman::detail
