#pragma once
// Strict UTF-8: validation with the offending byte offset, decoding, encoding.

#include <atman/config.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace atman::engine {

// Throws atman::invalid_argument naming the byte offset and the reason at the
// first ill-formed sequence: stray continuation byte, overlong encoding,
// surrogate code point, code point above U+10FFFF, or truncated sequence.
void validate_utf8(std::string_view text);

// Decodes the code point starting at `pos` of valid UTF-8 and advances `pos`
// past it. Throws atman::invalid_argument like validate_utf8.
std::uint32_t decode_utf8(std::string_view text, index_t& pos);

// Appends the UTF-8 encoding of a Unicode scalar value.
void append_utf8(std::string& out, std::uint32_t code_point);

}  // namespace atman::engine
