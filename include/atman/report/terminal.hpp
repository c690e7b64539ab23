#pragma once
// An explanation for a terminal: the prompt as an ANSI heatmap (background
// colour by score), a legend and the top-k units. Without colour the top units
// are marked in the text, `[word +0.123]`, so the report stays useful in logs.

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#ifdef _WIN32
#include <io.h>
#else
#include <sys/ioctl.h>
#include <unistd.h>
#endif

#include "../detail/report_colour.hpp"
#include "../detail/report_input.hpp"
#include "../detail/report_number.hpp"
#include "../detail/report_utf8.hpp"
#include "../error.hpp"
#include "../explanation.hpp"

namespace atman {

// Whether output to file descriptor fd should be coloured: it is a terminal,
// NO_COLOR is unset or empty (no-color.org), and TERM is not "dumb".
inline bool colour_enabled(int fd) {
    const char* no_colour = std::getenv("NO_COLOR");
    if (no_colour && *no_colour) return false;
    const char* term = std::getenv("TERM");
    if (term && std::string_view(term) == "dumb") return false;
#ifdef _WIN32
    return _isatty(fd) != 0;
#else
    return isatty(fd) != 0;
#endif
}

inline bool colour_enabled(std::FILE* stream) {
#ifdef _WIN32
    return stream && colour_enabled(_fileno(stream));
#else
    return stream && colour_enabled(fileno(stream));
#endif
}

// The width in columns of the terminal stream is, else 0.
inline index_t terminal_width(std::FILE* stream) {
#ifdef _WIN32
    (void)stream;
    return 0;
#else
    struct winsize size {};
    if (stream == nullptr || ioctl(fileno(stream), TIOCGWINSZ, &size) != 0) return 0;
    return size.ws_col;
#endif
}

struct terminal_options {
    bool colour = false;
    bool truecolor = false;  // 24-bit colours; otherwise the 256-colour palette
    index_t top_k = 5;       // units listed (and, without colour, marked in the text)
    // The heatmap's lines break at spaces before this column, so that the
    // terminal does not cut words at its edge; 0: no breaks added.
    index_t width = 0;
    target_granularity targets = target_granularity::complete;  // token: also a heatmap per target token

    // Colour as colour_enabled(stream) decides; truecolor when COLORTERM says
    // so; the width of the terminal, if it is one.
    static terminal_options for_stream(std::FILE* stream) {
        terminal_options options;
        options.colour = colour_enabled(stream);
        options.width = terminal_width(stream);
        const char* colorterm = std::getenv("COLORTERM");
        options.truecolor = colorterm && (std::string_view(colorterm) == "truecolor" ||
                                          std::string_view(colorterm) == "24bit");
        return options;
    }
};

namespace detail {

// text repaired to valid UTF-8 with control characters shown as \xNN, so that
// model output cannot move the cursor or change colours. Newlines and tabs are
// kept unless single_line.
inline std::string terminal_safe(std::string_view text, bool single_line) {
    const std::string valid = sanitize_utf8(text);
    std::string out;
    for (std::size_t i = 0; i < valid.size(); ++i) {
        const auto byte = static_cast<unsigned char>(valid[i]);
        const bool c1_control = byte == 0xC2 && i + 1 < valid.size() &&
                                static_cast<unsigned char>(valid[i + 1]) < 0xA0;  // U+0080..U+009F
        if (!single_line && (byte == '\n' || byte == '\t')) {
            out += valid[i];
        } else if (byte < 0x20 || byte == 0x7F || c1_control) {
            const unsigned code = c1_control ? static_cast<unsigned char>(valid[++i]) : byte;
            char escaped[8];
            std::snprintf(escaped, sizeof escaped, "\\x%02x", code);
            out += escaped;
        } else {
            out += valid[i];
        }
    }
    return out;
}

// The nearest entry of the 256-colour palette's 6x6x6 cube.
inline int ansi256_index(rgb c) {
    const auto level = [](std::uint8_t v) {
        static constexpr int levels[] = {0, 95, 135, 175, 215, 255};
        int best = 0;
        for (int i = 1; i < 6; ++i)
            if (std::abs(levels[i] - v) < std::abs(levels[best] - v)) best = i;
        return best;
    };
    return 16 + 36 * level(c.r) + 6 * level(c.g) + level(c.b);
}

// The escape sequence that sets background and a readable foreground.
inline std::string ansi_colours(rgb background, bool truecolor) {
    const rgb text = diverging_scale::text_colour(background);
    if (truecolor)
        return "\x1b[48;2;" + std::to_string(background.r) + ";" + std::to_string(background.g) + ";" +
               std::to_string(background.b) + ";38;2;" + std::to_string(text.r) + ";" +
               std::to_string(text.g) + ";" + std::to_string(text.b) + "m";
    return "\x1b[48;5;" + std::to_string(ansi256_index(background)) + ";38;5;" +
           std::to_string(ansi256_index(text)) + "m";
}

inline constexpr std::string_view ansi_reset = "\x1b[0m";

// text coloured line by line: a colour running across a line break would
// paint the rest of the terminal line on many terminals.
inline void append_coloured(std::string& out, const std::string& text, const std::string& colours) {
    std::size_t at = 0;
    while (at <= text.size()) {
        const std::size_t end = std::min(text.find('\n', at), text.size());
        if (end > at) out += colours + text.substr(at, end - at) + std::string(ansi_reset);
        if (end == text.size()) break;
        out += '\n';
        at = end + 1;
    }
}

// The column after `text` from column `column`: one per code point, a tab
// to the next multiple of 8.
inline index_t advance_columns(std::string_view text, index_t column) {
    for (char c : text) {
        if (c == '\t') column = (column / 8 + 1) * 8;
        else if ((static_cast<unsigned char>(c) & 0xC0) != 0x80) ++column;
    }
    return column;
}

// text with spaces turned into line breaks so that no line passes `width`
// columns unless one word alone does. Byte for byte as long as text.
inline std::string wrap_at_spaces(std::string text, index_t width) {
    if (width <= 0) return text;
    constexpr std::size_t none = std::string::npos;
    index_t column = 0;
    std::size_t space = none;  // the line's last space
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text[i] == '\n') {
            column = 0, space = none;
            continue;
        }
        column = advance_columns(std::string_view(text).substr(i, 1), column);
        if (column <= width) {
            if (text[i] == ' ') space = i;
        } else if (text[i] == ' ') {
            text[i] = '\n';
            column = 0, space = none;
        } else if (space != none) {
            text[space] = '\n';
            column = advance_columns(std::string_view(text).substr(space + 1, i - space), 0);
            space = none;
        }
    }
    return text;
}

inline std::string signed_score(double score) {
    return (score >= 0 ? "+" : "") + format_significant(score, 3);
}

// The prompt coloured (or, without colour, its top units marked) by view's
// scores, the scale, and the top units.
inline void append_terminal_heatmap(std::string& out, const std::vector<prompt_segment>& segments,
                                    const explanation& e, score_view view, const terminal_options& options) {
    std::vector<const unit_score*> top;
    for (const unit_score& u : e.units) top.push_back(&u);
    std::stable_sort(top.begin(), top.end(),
                     [&](const unit_score* a, const unit_score* b) { return view(*a) > view(*b); });
    top.resize(std::min(top.size(), static_cast<std::size_t>(options.top_k)));
    const auto is_top = [&](const unit_score* u) { return std::find(top.begin(), top.end(), u) != top.end(); };

    std::vector<double> scores;
    for (const unit_score& u : e.units) scores.push_back(view(u));
    const diverging_scale scale = diverging_scale::fit(scores);

    // Each segment as shown, then the whole wrapped, then coloured piece by piece.
    std::vector<std::string> shown;
    std::string joined;
    for (const prompt_segment& segment : segments) {
        std::string text = terminal_safe(segment.text, false);
        if (segment.unit && !options.colour && is_top(segment.unit))
            text = "[" + text + " " + signed_score(view(*segment.unit)) + "]";
        joined += text;
        shown.push_back(std::move(text));
    }
    const std::string wrapped = wrap_at_spaces(std::move(joined), options.width);
    std::size_t at = 0;
    for (std::size_t k = 0; k < segments.size(); ++k) {
        const std::string piece = wrapped.substr(at, shown[k].size());
        at += shown[k].size();
        if (segments[k].unit && options.colour)
            append_coloured(out, piece, ansi_colours(scale.colour(view(*segments[k].unit)), options.truecolor));
        else
            out += piece;
    }
    out += "\n\n";

    if (options.colour) {
        out += "scale " + signed_score(scale.lowest()) + " ";
        constexpr int cells = 11;
        for (int i = 0; i < cells; ++i) {
            const double score = scale.lowest() + (scale.highest() - scale.lowest()) * i / (cells - 1);
            out += ansi_colours(scale.colour(score), options.truecolor) + "  " + std::string(ansi_reset);
        }
        out += " " + signed_score(scale.highest()) + "  (blue opposes, red supports the target)\n";
    } else {
        out += "scale " + signed_score(scale.lowest()) + " to " + signed_score(scale.highest()) +
               "; [text score] marks the top " + std::to_string(top.size()) + " units\n";
    }

    if (!top.empty()) out += "top " + std::to_string(top.size()) + " units:\n";
    for (std::size_t rank = 0; rank < top.size(); ++rank) {
        out += "  " + std::to_string(rank + 1) + ". " + signed_score(view(*top[rank])) + "  \"" +
               terminal_safe(top[rank]->text, true) + "\" (unit " + std::to_string(top[rank]->index) + ")\n";
    }
}

}  // namespace detail

inline std::string to_terminal(const explanation& e, const terminal_options& options = {}) {
    detail::require(options.top_k >= 0, "terminal_options::top_k must be >= 0, got " +
                                            std::to_string(options.top_k));
    detail::require_finite_numbers(e);
    const std::vector<detail::prompt_segment> segments = detail::segment_prompt(e);

    std::string out = "AtMan explanation of \"" + detail::terminal_safe(e.target, true) + "\"";
    if (!e.contrast.empty()) out += " rather than \"" + detail::terminal_safe(e.contrast, true) + "\"";
    out += "\n\n";
    detail::append_terminal_heatmap(out, segments, e, {}, options);

    if (options.targets == target_granularity::token && detail::has_scores_per_target(e)) {
        for (std::size_t t = 0; t < e.targets.size(); ++t) {
            const target_token& token = e.targets[t];
            out += "\ntarget token " + std::to_string(t) + " \"" + detail::terminal_safe(token.text, true) +
                   "\" (id " + std::to_string(token.id) + ", base CE " +
                   detail::format_significant(token.base_ce, 4) + "):\n\n";
            detail::append_terminal_heatmap(out, segments, e, {static_cast<index_t>(t)}, options);
        }
    }
    return out;
}

}  // namespace atman
