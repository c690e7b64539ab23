#pragma once
// UTF-8 repair for report writers: token texts can be partial code points
// (byte-level BPE), yet every report must be valid UTF-8.

#include <cstddef>
#include <string>
#include <string_view>

namespace atman::detail {

inline constexpr std::string_view utf8_replacement_character = "\xEF\xBF\xBD";  // U+FFFD

// Length of the well-formed UTF-8 sequence starting at text[at] (Unicode,
// table 3-7), or, negated, the length of its maximal ill-formed subpart,
// which is replaced by one U+FFFD (Unicode's "substitution of maximal subparts").
inline std::ptrdiff_t utf8_sequence_length(std::string_view text, std::size_t at) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned lead = byte(at);
    if (lead < 0x80) return 1;
    std::size_t continuation_bytes = 0;
    unsigned second_min = 0x80, second_max = 0xBF;  // the second byte's range depends on the lead
    if (lead >= 0xC2 && lead <= 0xDF) {
        continuation_bytes = 1;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        continuation_bytes = 2;
        if (lead == 0xE0) second_min = 0xA0;  // no overlong forms
        if (lead == 0xED) second_max = 0x9F;  // no surrogates
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        continuation_bytes = 3;
        if (lead == 0xF0) second_min = 0x90;  // no overlong forms
        if (lead == 0xF4) second_max = 0x8F;  // nothing above U+10FFFF
    } else {
        return -1;
    }
    for (std::size_t k = 1; k <= continuation_bytes; ++k) {
        const unsigned lo = k == 1 ? second_min : 0x80u, hi = k == 1 ? second_max : 0xBFu;
        if (at + k >= text.size() || byte(at + k) < lo || byte(at + k) > hi)
            return -static_cast<std::ptrdiff_t>(k);
    }
    return static_cast<std::ptrdiff_t>(continuation_bytes + 1);
}

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
