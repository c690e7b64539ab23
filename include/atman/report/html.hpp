#pragma once
// An explanation as one self-contained HTML page (inline CSS, no script): the
// prompt as a heatmap of unit scores, the target, one heatmap per target token
// (collapsible) and a table of the units. All text is escaped and repaired to
// valid UTF-8, so model output such as "<script>" shows as text.

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "../detail/report_colour.hpp"
#include "../detail/report_input.hpp"
#include "../detail/report_number.hpp"
#include "../detail/report_utf8.hpp"
#include "../explanation.hpp"

namespace atman {

struct html_options {
    std::string title = "AtMan explanation";
    target_granularity targets = target_granularity::complete;  // token: also a heatmap per target token
};

namespace detail {

// text, repaired to valid UTF-8, safe in HTML content and in quoted
// attributes. Control characters other than tab, newline and carriage return
// are not allowed in HTML (not even as character references) and become
// U+FFFD, as they would in a parser.
inline std::string html_escape(std::string_view text) {
    std::string out;
    for (char c : sanitize_utf8(text)) {
        const auto byte = static_cast<unsigned char>(c);
        switch (c) {
            case '&': out += "&amp;"; break;
            case '<': out += "&lt;"; break;
            case '>': out += "&gt;"; break;
            case '"': out += "&quot;"; break;
            case '\'': out += "&#39;"; break;
            case '\t': case '\n': case '\r': out += c; break;
            default: out += byte < 0x20 || byte == 0x7F ? std::string_view("\xEF\xBF\xBD") : std::string_view(&c, 1);
        }
    }
    return out;
}

inline std::string css_colour(rgb c) {
    char text[8];
    std::snprintf(text, sizeof text, "#%02x%02x%02x", c.r, c.g, c.b);
    return text;
}

// The legend and the prompt coloured by view's scores.
inline void append_html_heatmap(std::string& out, const std::vector<prompt_segment>& segments,
                                const explanation& e, score_view view) {
    std::vector<double> scores;
    for (const unit_score& u : e.units) scores.push_back(view(u));
    const diverging_scale scale = diverging_scale::fit(scores);

    const double span = scale.highest() - scale.lowest();
    const double zero_percent = span > 0 ? 100 * -scale.lowest() / span : 0;
    out += "<div class=\"legend\"><span>" + format_significant(scale.lowest(), 3) +
           " opposes</span><span class=\"bar\" style=\"background:linear-gradient(to right," +
           css_colour(scale.colour(scale.lowest())) + " 0%,#ffffff " +
           format_significant(zero_percent, 4) + "%," + css_colour(scale.colour(scale.highest())) +
           " 100%)\"></span><span>supports " + format_significant(scale.highest(), 3) + "</span></div>\n";

    out += "<div class=\"prompt\">";
    for (const prompt_segment& segment : segments) {
        if (!segment.unit) {
            out += html_escape(segment.text);
            continue;
        }
        const double score = view(*segment.unit);
        const rgb background = scale.colour(score);
        out += "<span class=\"unit\" style=\"background:" + css_colour(background) +
               ";color:" + css_colour(diverging_scale::text_colour(background)) + "\" title=\"unit " +
               std::to_string(segment.unit->index) + ": score " + format_round_trip(score) + "\">" +
               html_escape(segment.text) + "</span>";
    }
    out += "</div>\n";
}

}  // namespace detail

inline std::string to_html(const explanation& e, const html_options& options = {}) {
    using detail::html_escape;
    detail::require_finite_numbers(e);
    const std::vector<detail::prompt_segment> segments = detail::segment_prompt(e);

    std::string out =
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<title>" + html_escape(options.title) + "</title>\n"
        "<style>\n"
        "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}\n"
        ".prompt{white-space:pre-wrap;font-family:ui-monospace,monospace;line-height:1.8;"
        "border:1px solid #ddd;padding:.75rem;border-radius:4px}\n"
        ".unit{border-radius:3px;padding:.1em 0}\n"
        ".legend{display:flex;align-items:center;gap:.5rem;margin:.5rem 0;font-size:.9rem}\n"
        ".bar{display:inline-block;width:14rem;height:.9rem;border:1px solid #bbb}\n"
        "table{border-collapse:collapse}td,th{padding:.2rem .6rem;border-bottom:1px solid #eee;text-align:left}\n"
        "td.num{text-align:right;font-variant-numeric:tabular-nums}\n"
        "code{white-space:pre-wrap}\n"
        "</style>\n</head>\n<body>\n"
        "<h1>" + html_escape(options.title) + "</h1>\n"
        "<p>Target: <code>" + html_escape(e.target) + "</code></p>\n";
    if (!e.contrast.empty()) out += "<p>Rather than: <code>" + html_escape(e.contrast) + "</code></p>\n";
    out += "<p>Mode " + std::string(to_string(e.cfg.mode)) + ", factor " +
           detail::format_round_trip(e.cfg.factor) + ", units by " + to_string(e.units_by) +
           (e.cfg.conceptual ? ", conceptual (kappa " + detail::format_round_trip(e.cfg.kappa) + ")" : "") +
           ", postprocess " + to_string(e.cfg.post) + (e.cfg.normalize ? ", normalised" : "") +
           ". Positive scores: suppressing the unit makes the target less likely.</p>\n";

    out += "<section>\n<h2>All target tokens</h2>\n";
    detail::append_html_heatmap(out, segments, e, {});
    out += "</section>\n";

    if (options.targets == target_granularity::token && detail::has_scores_per_target(e)) {
        out += "<section>\n<h2>Per target token</h2>\n";
        for (std::size_t t = 0; t < e.targets.size(); ++t) {
            const target_token& token = e.targets[t];
            out += "<details>\n<summary>Token " + std::to_string(t) + " <code>" + html_escape(token.text) +
                   "</code> (id " + std::to_string(token.id) + ", base CE " +
                   detail::format_significant(token.base_ce, 4) + ")</summary>\n";
            detail::append_html_heatmap(out, segments, e, {static_cast<index_t>(t)});
            out += "</details>\n";
        }
        out += "</section>\n";
    }

    out += "<section>\n<h2>Units</h2>\n<table>\n"
           "<thead><tr><th>#</th><th>text</th><th>bytes</th><th>tokens</th><th>score</th></tr></thead>\n"
           "<tbody>\n";
    for (const unit_score& u : e.units) {
        out += "<tr><td class=\"num\">" + std::to_string(u.index) + "</td><td><code>" + html_escape(u.text) +
               "</code></td><td>" + std::to_string(u.start) + "&ndash;" + std::to_string(u.end) + "</td><td>" +
               std::to_string(u.first_token) + "&ndash;" + std::to_string(u.last_token) +
               "</td><td class=\"num\">" + detail::format_round_trip(u.score) + "</td></tr>\n";
    }
    out += "</tbody>\n</table>\n</section>\n";

    out += "<footer><p>" + std::to_string(e.stats.passes) + " passes, " +
           std::to_string(e.stats.token_forwards) + " token forwards (" +
           std::to_string(e.stats.token_forwards_naive) + " without prefix reuse), " +
           detail::format_significant(e.stats.seconds, 3) + " s</p></footer>\n</body>\n</html>\n";
    return out;
}

}  // namespace atman
