#include "utf8.hpp"

#include <atman/detail/utf8.hpp>
#include <atman/error.hpp>

namespace atman::engine {

std::uint32_t decode_utf8(std::string_view text, index_t& pos) {
    if (const char* problem = detail::utf8_problem(text, std::size_t(pos))) {
        throw invalid_argument("invalid UTF-8 at byte " + std::to_string(pos) + ": " + problem);
    }
    const detail::code_point c = detail::decode_code_point(text, pos);
    pos += c.length;
    return std::uint32_t(c.value);
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
