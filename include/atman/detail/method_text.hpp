#pragma once
// Text scanning for segmentation (units.hpp): Unicode white space over the
// code points of utf8.hpp.

#include <string_view>

#include "../config.hpp"
#include "utf8.hpp"

namespace atman::detail {

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
