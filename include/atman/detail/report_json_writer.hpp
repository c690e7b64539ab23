#pragma once
// A minimal streaming JSON writer (RFC 8259): strings are escaped and repaired
// to valid UTF-8, numbers round-trip, NaN and infinity are refused.

#include <cmath>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "report_number.hpp"
#include "report_utf8.hpp"

namespace atman::detail {

// text as a JSON string literal, quotes included.
inline std::string json_quote(std::string_view text) {
    const std::string valid = sanitize_utf8(text);
    std::string out;
    out.reserve(valid.size() + 2);
    out += '"';
    for (char c : valid) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (static_cast<unsigned char>(c) < 0x20) {
                    char escaped[8];
                    std::snprintf(escaped, sizeof escaped, "\\u%04x", static_cast<unsigned>(c));
                    out += escaped;
                } else {
                    out += c;
                }
        }
    }
    out += '"';
    return out;
}

class json_writer {
public:
    // indent = 0 writes everything on one line.
    explicit json_writer(std::string& out, int indent = 2) : out_(out), indent_(indent) {}

    void begin_object() { open('{', true); }
    void end_object() { close('}'); }
    // An inline array stays on one line (for short lists of numbers).
    void begin_array(bool inline_elements = false) { open('[', !inline_elements); }
    void end_array() { close(']'); }

    void key(std::string_view name) {
        element();
        out_ += json_quote(name);
        out_ += indent_ > 0 ? ": " : ":";
        after_key_ = true;
    }

    void string(std::string_view text) { element(); out_ += json_quote(text); }
    void integer(index_t value) { element(); out_ += std::to_string(value); }
    void boolean(bool value) { element(); out_ += value ? "true" : "false"; }
    void number(double value) {
        if (!std::isfinite(value))
            throw numeric_error("JSON has no representation for the number " + std::to_string(value));
        element();
        const std::string text = format_round_trip(value);
        out_ += text;
        // "2.0", not "2": a double stays a double (and -0.0 keeps its sign) in typed parsers.
        if (text.find_first_of(".e") == std::string::npos) out_ += ".0";
    }
    // An already serialised JSON value, written as it is.
    void raw(std::string_view json) { element(); out_ += json; }

private:
    struct level {
        bool block;   // one element per line
        bool empty = true;
    };

    void open(char bracket, bool block) {
        element();
        out_ += bracket;
        levels_.push_back({block && indent_ > 0});
    }

    void close(char bracket) {
        const level done = levels_.back();
        levels_.pop_back();
        if (done.block && !done.empty) newline();
        out_ += bracket;
    }

    // Separator and line break before a value or key; nothing after a key.
    void element() {
        if (after_key_) {
            after_key_ = false;
            return;
        }
        if (levels_.empty()) return;
        level& current = levels_.back();
        if (!current.empty) out_ += current.block || indent_ == 0 ? "," : ", ";
        current.empty = false;
        if (current.block) newline();
    }

    void newline() {
        out_ += '\n';
        out_.append(levels_.size() * static_cast<std::size_t>(indent_), ' ');
    }

    std::string& out_;
    int indent_;
    std::vector<level> levels_;
    bool after_key_ = false;
};

}  // namespace atman::detail
