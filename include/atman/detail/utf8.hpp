#pragma once
// UTF-8 decoding, the one home for segmentation (method_text.hpp), the
// report writers (report_utf8.hpp) and the reference engine's strict input
// checks. Segmentation decodes leniently (a lead byte and its continuation
// bytes make a code point); the report writers need Unicode's strict
// well-formedness, to replace exactly the ill-formed parts; input checks name
// the first problem.

#include <cstddef>
#include <string_view>

#include "../config.hpp"

namespace atman::detail {

inline constexpr std::string_view utf8_replacement_character = "\xEF\xBF\xBD";  // U+FFFD

inline bool is_continuation_byte(unsigned char byte) {
    return (byte & 0xC0) == 0x80;
}

// Bytes of the sequence a lead byte starts (Unicode, table 3-7), 0 for a byte
// that starts none: a continuation byte, C0, C1 or F5..FF.
inline index_t utf8_lead_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

// Length of the well-formed UTF-8 sequence starting at text[at] (Unicode,
// table 3-7), or, negated, the length of its maximal ill-formed subpart,
// which is replaced by one U+FFFD (Unicode's "substitution of maximal subparts").
inline std::ptrdiff_t utf8_sequence_length(std::string_view text, std::size_t at) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    const index_t length = utf8_lead_length(lead);
    if (length == 0) return -1;
    // The second byte's range depends on the lead.
    const unsigned second_min = lead == 0xE0 ? 0xA0 : lead == 0xF0 ? 0x90 : 0x80;  // no overlong forms
    const unsigned second_max = lead == 0xED ? 0x9F                                  // no surrogates
                                : lead == 0xF4 ? 0x8F                                // nothing above U+10FFFF
                                               : 0xBF;
    for (std::size_t k = 1; k < static_cast<std::size_t>(length); ++k) {
        const unsigned lo = k == 1 ? second_min : 0x80u, hi = k == 1 ? second_max : 0xBFu;
        if (at + k >= text.size() || byte(at + k) < lo || byte(at + k) > hi)
            return -static_cast<std::ptrdiff_t>(k);
    }
    return length;
}

// Why the sequence starting at text[at] is not well-formed UTF-8 (Unicode,
// table 3-7), or nullptr when it is: the check a strict decoder reports, in
// this order: the lead byte, the sequence's length, its continuation bytes,
// then the value (overlong, surrogate, above U+10FFFF).
inline const char* utf8_problem(std::string_view text, std::size_t at) {
    const auto byte = [&](std::size_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    if (lead < 0x80) return nullptr;
    if (is_continuation_byte(lead)) return "continuation byte without a lead byte";
    if (lead >= 0xF8) return "byte 0xF8-0xFF cannot start a sequence";
    const std::size_t length = lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;  // from the lead's bits
    if (at + length > text.size()) return "sequence truncated by the end of the text";
    for (std::size_t k = 1; k < length; ++k)
        if (!is_continuation_byte(byte(at + k))) return "sequence truncated by a non-continuation byte";
    const unsigned char second = byte(at + 1);
    if (lead <= 0xC1 || (lead == 0xE0 && second < 0xA0) || (lead == 0xF0 && second < 0x90))
        return "overlong encoding";
    if (lead == 0xED && second > 0x9F) return "surrogate code point";
    if (lead > 0xF4 || (lead == 0xF4 && second > 0x8F)) return "code point above U+10FFFF";
    return nullptr;
}

struct code_point {
    char32_t value = 0;  // U+FFFD for an ill-formed byte
    index_t length = 1;  // bytes
};

// True when a code point starts at `at` (or `at` is the end): cutting there splits nothing.
inline bool is_code_point_boundary(std::string_view text, index_t at) {
    return at <= 0 || at >= index_t(text.size()) ||
           !is_continuation_byte(static_cast<unsigned char>(text[at]));
}

// The code point starting at text[at], decoded leniently (overlong forms and
// surrogates pass). An ill-formed sequence yields U+FFFD of length 1, so
// scanning never skips a byte and never stops.
inline code_point decode_code_point(std::string_view text, index_t at) {
    const auto byte = [&](index_t i) { return static_cast<unsigned char>(text[i]); };
    const unsigned char lead = byte(at);
    const index_t length = utf8_lead_length(lead);
    if (length == 1) return {lead, 1};
    if (length == 0 || at + length > index_t(text.size())) return {0xFFFD, 1};
    char32_t value = lead & (0x7Fu >> length);  // the lead's payload bits
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

}  // namespace atman::detail
