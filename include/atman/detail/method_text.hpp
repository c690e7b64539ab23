#pragma once
// UTF-8 scanning for segmentation (units.hpp): code points, Unicode white
// space, and the boundaries a unit's byte range must respect.

#include <string_view>

#include "../config.hpp"

namespace atman::detail {

struct code_point {
    char32_t value = 0;  // U+FFFD for an ill-formed byte
    index_t length = 1;  // bytes
};

inline bool is_continuation_byte(unsigned char byte) {
    return (byte & 0xC0) == 0x80;
}

// True when a code point starts at `at` (or `at` is the end): cutting there splits nothing.
inline bool is_code_point_boundary(std::string_view text, index_t at) {
    return at <= 0 || at >= index_t(text.size()) ||
           !is_continuation_byte(static_cast<unsigned char>(text[at]));
}

// The code point starting at text[at]. An ill-formed sequence yields U+FFFD of
// length 1, so scanning never skips a byte and never stops.
inline code_point decode_code_point(std::string_view text, index_t at) {
    const auto byte = [&](index_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    if (lead < 0x80) return {lead, 1};
    index_t length = 0;
    char32_t value = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
        length = 2, value = lead & 0x1F;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
        length = 3, value = lead & 0x0F;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
        length = 4, value = lead & 0x07;
    } else {
        return {0xFFFD, 1};
    }
    if (at + length > index_t(text.size())) return {0xFFFD, 1};
    for (index_t k = 1; k < length; ++k) {
        if (!is_continuation_byte(byte(at + k))) return {0xFFFD, 1};
        value = (value << 6) | (byte(at + k) & 0x3F);
    }
    return {value, length};
}

// True when text is well-formed enough that every cut between its code points is a boundary.
inline bool is_valid_utf8(std::string_view text) {
    for (index_t at = 0; at < index_t(text.size());) {
        const code_point c = decode_code_point(text, at);
        if (c.value == 0xFFFD && c.length == 1) return false;
        at += c.length;
    }
    return true;
}

// Unicode White_Space.
inline bool is_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

// [start, end) without leading and trailing white space (start == end when all white).
inline void trim_white_space(std::string_view text, index_t& start, index_t& end) {
    while (start < end) {
        const code_point c = decode_code_point(text, start);
        if (!is_white_space(c.value)) break;
        start += c.length;
    }
    while (start < end) {
        index_t last = end - 1;
        while (last > start && is_continuation_byte(static_cast<unsigned char>(text[last]))) --last;
        if (!is_white_space(decode_code_point(text, last).value)) break;
        end = last;
    }
}

}  // namespace atman::detail
