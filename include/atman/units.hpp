#pragma once
// Units: the disjoint sets of prompt positions that are suppressed one at a
// time (atman-method.md, section 1), built from the tokens' byte offsets.
//
// make_units(text, tokens, options) returns the units of one granularity,
// sorted by first position (spans: in the order given). Only *eligible* tokens
// join a unit: not special, and inside options.range (see explain_range).
//
// Text granularities (word, sentence, paragraph, delimiter) first cut the
// text into segments, then give each eligible token to the segments it
// overlaps:
//   word       maximal runs of non-white-space code points (Unicode White_Space);
//              punctuation stays with the word it touches ("Paris," is one word).
//   sentence   runs of words; a word ends its sentence when it ends in . ! or ?,
//              optionally followed by closing quotes or brackets ) ] } " ' ” ’ »;
//              a paragraph break also ends a sentence.
//   paragraph  runs of words separated by a blank line: white space holding two
//              or more line feeds (\n\n, \r\n\r\n, \n  \n) or U+2029.
//   delimiter  the text cut after each occurrence of options.delimiter; the
//              delimiter stays with the piece it ends, like a full stop; a piece
//              of nothing but the delimiter and white space is dropped.
// Segments never include surrounding white space. A token that overlaps
// several segments joins them into one unit (units must be disjoint). A token
// that overlaps no segment (white space only, or empty) joins the unit of the
// token right after it, else the one right before it, else none (its
// neighbours are special): BPE's " Paris" carries its leading space, so
// white-space tokens attach to the following word.
// When options.range gives byte ranges, each range is segmented on its own.
//
//   token      one unit per eligible token; tokens that split one UTF-8 code
//              point between them (byte-level BPE) form one unit.
//   spans      one unit per byte span, in the order given: the eligible tokens
//              overlapping the span. Spans must lie in the text, start and end
//              on code point boundaries, not overlap, not share a token, and
//              each must hold an eligible token.
//   grid       an image of rows x cols patch tokens at consecutive positions
//              (row-major from grid.first_position), pooled into cells of
//              cell_rows x cell_cols patches, one unit per cell, row-major;
//              edge cells may be smaller; ineligible patches are left out.
//
// A unit's byte range covers its tokens' bytes, clipped to its segments
// (spans: the span itself), widened to whole code points and trimmed of
// white space; it is empty only for units of white-space or empty tokens.
// Bad input (offsets outside the text, empty or overlapping ranges, nothing
// eligible) throws invalid_argument.

#include <algorithm>
#include <numeric>
#include <string>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "detail/method_text.hpp"
#include "error.hpp"

namespace atman {

// The bytes [start, end) of the text that the token at one sequence position decodes to.
struct token_offsets {
    index_t start = 0, end = 0;
    bool special = false;  // BOS, chat-template markers, ...: never part of a unit
};

struct byte_range {
    index_t start = 0, end = 0;
};

struct position_range {
    index_t begin = 0, end = 0;
};

// Which tokens units may contain: those overlapping one of `bytes` (an empty
// token counts as the point at its start), or those whose position lies in
// one of `positions`. Give one list or neither: with both empty every token
// is inside. Special tokens are never eligible.
struct explain_range {
    std::vector<byte_range> bytes;
    std::vector<position_range> positions;
};

struct grid_layout {
    index_t first_position = 0;            // the top-left patch
    index_t rows = 0, cols = 0;            // patches
    index_t cell_rows = 1, cell_cols = 1;  // patches pooled into one unit
};

struct unit_options {
    granularity by = granularity::word;
    explain_range range;
    std::string delimiter;          // granularity::delimiter, non-empty UTF-8
    std::vector<byte_range> spans;  // granularity::spans
    grid_layout grid;               // granularity::grid
};

struct unit {
    std::vector<index_t> positions;  // sorted, distinct sequence positions
    index_t start = 0, end = 0;      // the bytes [start, end) of the text the unit stands for
};

// Throws invalid_argument unless every unit has sorted, distinct positions in
// [0, n_positions) and no position belongs to two units.
inline void validate_unit_positions(const std::vector<unit>& units, index_t n_positions) {
    std::vector<index_t> owner(std::size_t(std::max<index_t>(n_positions, 0)), -1);
    for (std::size_t u = 0; u < units.size(); ++u) {
        const std::string name = "unit " + std::to_string(u);
        const std::vector<index_t>& positions = units[u].positions;
        detail::require(!positions.empty(), name + " has no positions");
        for (std::size_t i = 0; i < positions.size(); ++i) {
            const index_t p = positions[i];
            detail::require(p >= 0 && p < n_positions, name + ": position " + std::to_string(p) +
                                                           " is outside [0, " +
                                                           std::to_string(n_positions) + ")");
            detail::require(i == 0 || positions[i - 1] < p,
                            name + ": positions must be sorted and distinct");
            detail::require(owner[p] < 0, name + ": position " + std::to_string(p) +
                                              " already belongs to unit " +
                                              std::to_string(owner[p]));
            owner[p] = index_t(u);
        }
    }
}

// validate_unit_positions, and 0 <= start <= end <= text_size for every unit.
inline void validate_units(const std::vector<unit>& units, index_t n_positions, index_t text_size) {
    validate_unit_positions(units, n_positions);
    for (std::size_t u = 0; u < units.size(); ++u) {
        detail::require(
            0 <= units[u].start && units[u].start <= units[u].end && units[u].end <= text_size,
            "unit " + std::to_string(u) + ": byte range [" + std::to_string(units[u].start) + ", " +
                std::to_string(units[u].end) + ") is not inside the text of " +
                std::to_string(text_size) + " bytes");
    }
}

namespace detail {

inline std::string describe(const byte_range& r) {
    return "[" + std::to_string(r.start) + ", " + std::to_string(r.end) + ")";
}

inline bool overlaps(const token_offsets& t, const byte_range& r) {
    const index_t end = std::max(t.end, t.start + 1);  // an empty token is the point at its start
    return t.start < r.end && r.start < end;
}

// Checks a list of byte ranges (explain ranges or spans): inside the text, non-empty,
// on code point boundaries, pairwise disjoint.
inline void validate_byte_ranges(std::string_view text, const std::vector<byte_range>& ranges,
                                 const std::string& what) {
    for (std::size_t i = 0; i < ranges.size(); ++i) {
        const byte_range& r = ranges[i];
        const std::string name = what + " " + std::to_string(i) + " " + describe(r);
        require(0 <= r.start && r.start < r.end && r.end <= index_t(text.size()),
                name + " must be non-empty and inside the text of " + std::to_string(text.size()) +
                    " bytes");
        require(is_code_point_boundary(text, r.start) && is_code_point_boundary(text, r.end),
                name + " splits a UTF-8 code point");
    }
    std::vector<std::size_t> order(ranges.size());
    std::iota(order.begin(), order.end(), std::size_t(0));
    std::sort(order.begin(), order.end(),
              [&](std::size_t a, std::size_t b) { return ranges[a].start < ranges[b].start; });
    for (std::size_t k = 1; k < order.size(); ++k) {
        require(ranges[order[k - 1]].end <= ranges[order[k]].start,
                what + "s " + std::to_string(order[k - 1]) + " " + describe(ranges[order[k - 1]]) +
                    " and " + std::to_string(order[k]) + " " + describe(ranges[order[k]]) +
                    " overlap");
    }
}

// Which tokens may join a unit; throws when none may.
inline std::vector<bool> eligible_tokens(std::string_view text,
                                         const std::vector<token_offsets>& tokens,
                                         const explain_range& range) {
    require(range.bytes.empty() || range.positions.empty(),
            "explain range: give byte ranges or position ranges, not both");
    validate_byte_ranges(text, range.bytes, "explain byte range");
    const index_t n = index_t(tokens.size());
    for (const position_range& r : range.positions) {
        require(0 <= r.begin && r.begin < r.end && r.end <= n,
                "explain position range [" + std::to_string(r.begin) + ", " +
                    std::to_string(r.end) + ") must be non-empty and inside [0, " +
                    std::to_string(n) + ")");
    }
    std::vector<bool> eligible(tokens.size(), false);
    bool any = false;
    for (index_t i = 0; i < n; ++i) {
        const token_offsets& t = tokens[i];
        bool inside = range.bytes.empty() && range.positions.empty();
        for (const byte_range& r : range.bytes) inside = inside || overlaps(t, r);
        for (const position_range& r : range.positions)
            inside = inside || (r.begin <= i && i < r.end);
        eligible[i] = inside && !t.special;
        any = any || eligible[i];
    }
    require(any,
            "the explain range holds no token that may be explained (all outside it or special)");
    return eligible;
}

inline void validate_tokens(std::string_view text, const std::vector<token_offsets>& tokens) {
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        require(0 <= tokens[i].start && tokens[i].start <= tokens[i].end &&
                    tokens[i].end <= index_t(text.size()),
                "token " + std::to_string(i) + " has byte offsets [" +
                    std::to_string(tokens[i].start) + ", " + std::to_string(tokens[i].end) +
                    ") outside the text of " + std::to_string(text.size()) + " bytes");
    }
}

// The words of text[range]: maximal runs of non-white-space code points.
inline std::vector<byte_range> words_in(std::string_view text, byte_range range) {
    std::vector<byte_range> words;
    for (index_t at = range.start; at < range.end;) {
        const code_point c = decode_code_point(text, at);
        if (is_white_space(c.value)) {
            at += c.length;
            continue;
        }
        if (words.empty() || words.back().end != at) words.push_back({at, at});
        at += c.length;
        words.back().end = at;
    }
    return words;
}

inline bool is_paragraph_break(std::string_view gap) {
    return std::count(gap.begin(), gap.end(), '\n') >= 2 ||
           gap.find("\xE2\x80\xA9") != std::string_view::npos;  // U+2029
}

inline bool ends_sentence(std::string_view word) {
    static const char* const closers[] = {
        ")", "]", "}", "\"", "'", "\xE2\x80\x9D", "\xE2\x80\x99", "\xC2\xBB"};
    for (bool stripped = true; stripped && !word.empty();) {
        stripped = false;
        for (std::string_view closer : closers) {
            if (word.size() >= closer.size() &&
                word.substr(word.size() - closer.size()) == closer) {
                word.remove_suffix(closer.size());
                stripped = true;
            }
        }
    }
    return !word.empty() && (word.back() == '.' || word.back() == '!' || word.back() == '?');
}

// Words joined into sentences or paragraphs.
inline std::vector<byte_range> join_words(std::string_view text,
                                          const std::vector<byte_range>& words, granularity by) {
    std::vector<byte_range> joined;
    for (std::size_t w = 0; w < words.size(); ++w) {
        bool starts_new = w == 0;
        if (!starts_new) {
            const byte_range& prev = words[w - 1];
            starts_new = is_paragraph_break(text.substr(prev.end, words[w].start - prev.end)) ||
                         (by == granularity::sentence &&
                          ends_sentence(text.substr(prev.start, prev.end - prev.start)));
        }
        if (starts_new) joined.push_back(words[w]);
        joined.back().end = words[w].end;
    }
    return joined;
}

// The pieces of text[range] cut after each delimiter, trimmed.
inline std::vector<byte_range> delimited_in(std::string_view text, byte_range range,
                                            std::string_view delimiter) {
    std::vector<byte_range> pieces;
    const std::string_view part = text.substr(range.start, range.end - range.start);
    for (std::size_t from = 0; from < part.size();) {
        const std::size_t found = part.find(delimiter, from);
        const std::size_t content_end = found == std::string_view::npos ? part.size() : found;
        const std::size_t to =
            found == std::string_view::npos ? part.size() : found + delimiter.size();
        index_t start = range.start + index_t(from), end = range.start + index_t(content_end);
        trim_white_space(text, start, end);
        if (start < end) {  // pieces of nothing but the delimiter and white space are dropped
            end = range.start + index_t(to);
            trim_white_space(text, start, end);
            pieces.push_back({start, end});
        }
        from = to;
    }
    return pieces;
}

inline std::vector<byte_range> text_segments(std::string_view text, const unit_options& options) {
    std::vector<byte_range> scopes = options.range.bytes;
    if (scopes.empty()) scopes.push_back({0, index_t(text.size())});
    std::sort(scopes.begin(), scopes.end(),
              [](const byte_range& a, const byte_range& b) { return a.start < b.start; });
    std::vector<byte_range> segments;
    for (const byte_range& scope : scopes) {
        std::vector<byte_range> part;
        if (options.by == granularity::delimiter) {
            part = delimited_in(text, scope, options.delimiter);
        } else {
            part = words_in(text, scope);
            if (options.by != granularity::word) part = join_words(text, part, options.by);
        }
        segments.insert(segments.end(), part.begin(), part.end());
    }
    return segments;
}

// [start, end) widened to whole code points.
inline void widen_to_code_points(std::string_view text, index_t& start, index_t& end) {
    while (!is_code_point_boundary(text, start)) --start;
    while (!is_code_point_boundary(text, end)) ++end;
}

// Groups the eligible tokens by the segments they overlap (see the top of this file).
inline std::vector<unit> group_by_segments(std::string_view text,
                                           const std::vector<token_offsets>& tokens,
                                           const std::vector<bool>& eligible,
                                           const std::vector<byte_range>& segments) {
    const index_t n = index_t(tokens.size());
    // joined[s]: segment s and s+1 share a token.
    std::vector<bool> joined(segments.size(), false);
    std::vector<index_t> first_segment(tokens.size(), -1);
    for (index_t i = 0; i < n; ++i) {
        if (!eligible[i] || tokens[i].start == tokens[i].end) continue;
        const auto after_start =
            std::upper_bound(segments.begin(), segments.end(), tokens[i].start,
                             [](index_t at, const byte_range& s) { return at < s.end; });
        index_t s = index_t(after_start - segments.begin());
        if (s == index_t(segments.size()) || segments[s].start >= tokens[i].end) continue;
        first_segment[i] = s;
        for (; s + 1 < index_t(segments.size()) && segments[s + 1].start < tokens[i].end; ++s)
            joined[s] = true;
    }
    // group_hull[g]: from the first to the last byte of group g's segments.
    std::vector<index_t> group_of_segment(segments.size(), 0);
    std::vector<byte_range> group_hull;
    for (std::size_t s = 0; s < segments.size(); ++s) {
        if (s > 0) group_of_segment[s] = group_of_segment[s - 1] + (joined[s - 1] ? 0 : 1);
        if (index_t(group_hull.size()) == group_of_segment[s]) group_hull.push_back(segments[s]);
        group_hull.back().end = segments[s].end;
    }

    std::vector<index_t> group(tokens.size(), -1);
    for (index_t i = 0; i < n; ++i)
        if (first_segment[i] >= 0) group[i] = group_of_segment[first_segment[i]];
    std::vector<bool> separator(tokens.size(), false);
    for (index_t i = 0; i < n; ++i) separator[i] = eligible[i] && group[i] < 0;
    for (index_t i = n - 2; i >= 0; --i)
        if (separator[i] && group[i + 1] >= 0) group[i] = group[i + 1];
    for (index_t i = 1; i < n; ++i)
        if (separator[i] && group[i] < 0) group[i] = group[i - 1];

    // Units in order of first position; byte ranges from the segment-overlapping tokens.
    std::vector<index_t> unit_of_group(group_hull.size(), -1);
    std::vector<unit> units;
    for (index_t i = 0; i < n; ++i) {
        if (group[i] < 0) continue;
        index_t& u = unit_of_group[group[i]];
        if (u < 0) {
            u = index_t(units.size());
            units.push_back({{}, -1, -1});
        }
        units[u].positions.push_back(i);
        if (first_segment[i] < 0) continue;
        const index_t start = std::max(tokens[i].start, group_hull[group[i]].start);
        const index_t end = std::min(tokens[i].end, group_hull[group[i]].end);
        units[u].start = units[u].start < 0 ? start : std::min(units[u].start, start);
        units[u].end = std::max(units[u].end, end);
    }
    for (unit& x : units) {
        widen_to_code_points(text, x.start, x.end);
        trim_white_space(text, x.start, x.end);
    }
    return units;
}

inline std::vector<unit> token_units(std::string_view text,
                                     const std::vector<token_offsets>& tokens,
                                     const std::vector<bool>& eligible) {
    std::vector<unit> units;
    for (index_t i = 0; i < index_t(tokens.size()); ++i) {
        if (!eligible[i]) continue;
        index_t start = tokens[i].start, end = tokens[i].end;
        widen_to_code_points(text, start, end);
        const bool shares_code_point = !units.empty() && units.back().positions.back() == i - 1 &&
                                       start < units.back().end && units.back().start < end;
        if (shares_code_point) {
            units.back().positions.push_back(i);
            units.back().end = std::max(units.back().end, end);
        } else {
            units.push_back({{i}, start, end});
        }
    }
    for (unit& x : units) {
        index_t start = x.start, end = x.end;
        trim_white_space(text, start, end);
        if (start < end) x.start = start, x.end = end;  // white-space tokens keep their bytes
    }
    return units;
}

inline std::vector<unit> span_units(std::string_view text, const std::vector<token_offsets>& tokens,
                                    const std::vector<bool>& eligible,
                                    const std::vector<byte_range>& spans) {
    validate_byte_ranges(text, spans, "span");
    std::vector<unit> units(spans.size());
    std::vector<index_t> owner(tokens.size(), -1);
    for (std::size_t s = 0; s < spans.size(); ++s) {
        units[s].start = spans[s].start;
        units[s].end = spans[s].end;
        for (index_t i = 0; i < index_t(tokens.size()); ++i) {
            if (!eligible[i] || !overlaps(tokens[i], spans[s])) continue;
            require(owner[i] < 0, "spans " + std::to_string(owner[i]) + " and " +
                                      std::to_string(s) + " share token " + std::to_string(i) +
                                      "; span boundaries must fall between tokens");
            owner[i] = index_t(s);
            units[s].positions.push_back(i);
        }
        require(!units[s].positions.empty(), "span " + std::to_string(s) + " " +
                                                 describe(spans[s]) +
                                                 " covers no token that may be explained");
    }
    return units;
}

inline std::vector<unit> grid_units(const std::vector<token_offsets>& tokens,
                                    const std::vector<bool>& eligible, const grid_layout& g) {
    require(g.rows >= 1 && g.cols >= 1 && g.cell_rows >= 1 && g.cell_cols >= 1,
            "grid: rows, cols, cell_rows and cell_cols must be >= 1");
    // Divided rather than multiplied: rows * cols may overflow.
    const index_t n = index_t(tokens.size());
    require(g.first_position >= 0 && g.first_position <= n &&
                g.rows <= (n - g.first_position) / g.cols,
            "grid: " + std::to_string(g.rows) + " x " + std::to_string(g.cols) +
                " patches from position " + std::to_string(g.first_position) + " do not fit in " +
                std::to_string(n) + " tokens");
    std::vector<unit> units;
    for (index_t r0 = 0; r0 < g.rows; r0 += g.cell_rows) {
        for (index_t c0 = 0; c0 < g.cols; c0 += g.cell_cols) {
            unit cell{{}, -1, -1};
            for (index_t r = r0; r < std::min(r0 + g.cell_rows, g.rows); ++r) {
                for (index_t c = c0; c < std::min(c0 + g.cell_cols, g.cols); ++c) {
                    const index_t p = g.first_position + r * g.cols + c;
                    if (!eligible[p]) continue;
                    cell.positions.push_back(p);
                    cell.start =
                        cell.start < 0 ? tokens[p].start : std::min(cell.start, tokens[p].start);
                    cell.end = std::max(cell.end, tokens[p].end);
                }
            }
            std::sort(cell.positions.begin(), cell.positions.end());
            if (!cell.positions.empty()) units.push_back(std::move(cell));
        }
    }
    require(!units.empty(),
            "grid: no patch may be explained (all outside the explain range or special)");
    return units;
}

}  // namespace detail

// The units of text at options.by granularity (see the top of this file).
// tokens[i] is the token at sequence position i.
inline std::vector<unit> make_units(std::string_view text, const std::vector<token_offsets>& tokens,
                                    const unit_options& options) {
    detail::validate_tokens(text, tokens);
    const std::vector<bool> eligible = detail::eligible_tokens(text, tokens, options.range);
    std::vector<unit> units;
    switch (options.by) {
        case granularity::token:
            units = detail::token_units(text, tokens, eligible);
            break;
        case granularity::spans:
            units = detail::span_units(text, tokens, eligible, options.spans);
            break;
        case granularity::grid:
            units = detail::grid_units(tokens, eligible, options.grid);
            break;
        case granularity::delimiter:
            detail::require(!options.delimiter.empty() && detail::is_valid_utf8(options.delimiter),
                            "delimiter must be a non-empty UTF-8 string");
            [[fallthrough]];
        case granularity::word:
        case granularity::sentence:
        case granularity::paragraph:
            units = detail::group_by_segments(text, tokens, eligible,
                                              detail::text_segments(text, options));
            detail::require(!units.empty(), std::string("no ") + to_string(options.by) +
                                                " unit: the explain range holds only white space");
            break;
    }
    return units;
}

}  // namespace atman
