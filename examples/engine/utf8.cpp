#include "utf8.hpp"

#include <atman/error.hpp>

namespace atman::engine {
namespace {

[[noreturn]] void fail(index_t pos, const char* reason) {
    throw invalid_argument("invalid UTF-8 at byte " + std::to_string(pos) + ": " + reason);
}

bool is_continuation(unsigned char byte) { return (byte & 0xC0) == 0x80; }

}  // namespace

std::uint32_t decode_utf8(std::string_view text, index_t& pos) {
    const auto size = static_cast<index_t>(text.size());
    const auto lead = static_cast<unsigned char>(text[static_cast<std::size_t>(pos)]);
    if (lead < 0x80) {
        ++pos;
        return lead;
    }
    index_t length = 0;
    std::uint32_t code_point = 0;
    std::uint32_t smallest = 0;  // below this the encoding is overlong
    if (is_continuation(lead)) fail(pos, "continuation byte without a lead byte");
    if ((lead & 0xE0) == 0xC0) {
        length = 2, code_point = lead & 0x1Fu, smallest = 0x80;
    } else if ((lead & 0xF0) == 0xE0) {
        length = 3, code_point = lead & 0x0Fu, smallest = 0x800;
    } else if ((lead & 0xF8) == 0xF0) {
        length = 4, code_point = lead & 0x07u, smallest = 0x10000;
    } else {
        fail(pos, "byte 0xF8-0xFF cannot start a sequence");
    }
    if (pos + length > size) fail(pos, "sequence truncated by the end of the text");
    for (index_t i = 1; i < length; ++i) {
        const auto byte = static_cast<unsigned char>(text[static_cast<std::size_t>(pos + i)]);
        if (!is_continuation(byte)) fail(pos, "sequence truncated by a non-continuation byte");
        code_point = (code_point << 6) | (byte & 0x3Fu);
    }
    if (code_point < smallest) fail(pos, "overlong encoding");
    if (code_point >= 0xD800 && code_point <= 0xDFFF) fail(pos, "surrogate code point");
    if (code_point > 0x10FFFF) fail(pos, "code point above U+10FFFF");
    pos += length;
    return code_point;
}

void validate_utf8(std::string_view text) {
    index_t pos = 0;
    while (pos < static_cast<index_t>(text.size())) decode_utf8(text, pos);
}

void append_utf8(std::string& out, std::uint32_t code_point) {
    if (code_point < 0x80) {
        out += static_cast<char>(code_point);
    } else if (code_point < 0x800) {
        out += static_cast<char>(0xC0 | (code_point >> 6));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else if (code_point < 0x10000) {
        out += static_cast<char>(0xE0 | (code_point >> 12));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (code_point >> 18));
        out += static_cast<char>(0x80 | ((code_point >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((code_point >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
}

}  // namespace atman::engine
