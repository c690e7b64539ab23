// Fuzzes the report writers with arbitrary texts (prompt, target, token and
// unit texts: any bytes, markup, control characters, broken UTF-8), unit byte
// ranges and scores. Bad explanations must end in an atman::error; what the
// writers produce is checked:
//   JSON      parses, and texts that were valid UTF-8 and numbers come back unchanged;
//   HTML      well-formed: balanced tags with quoted attributes, every '&' an
//             entity, no '<' or '>' in text, valid UTF-8;
//   terminal  no control character other than \n, \t and the writer's own colour codes.

#include <fuzzer/FuzzedDataProvider.h>

#include <atman/report/html.hpp>
#include <atman/report/json.hpp>
#include <atman/report/terminal.hpp>

#include <nlohmann/json.hpp>

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "engine/utf8.hpp"

#include "check.hpp"

namespace {

bool valid_utf8(std::string_view text) {
    try {
        atman::engine::validate_utf8(text);
        return true;
    } catch (const atman::invalid_argument&) {
        return false;
    }
}

double fuzz_number(FuzzedDataProvider& in) {
    switch (in.ConsumeIntegralInRange<int>(0, 15)) {
        case 0: return std::numeric_limits<double>::quiet_NaN();
        case 1: return std::numeric_limits<double>::infinity();
        case 2: return std::numeric_limits<double>::denorm_min();
        case 3: return -std::numeric_limits<double>::max();
        default: return in.ConsumeFloatingPointInRange<double>(-1e3, 1e3);
    }
}

atman::explanation fuzz_explanation(FuzzedDataProvider& in) {
    atman::explanation e;
    e.cfg.mode = in.ConsumeBool() ? atman::manipulation_mode::multiplicative : atman::manipulation_mode::log_additive;
    e.cfg.conceptual = in.ConsumeBool();
    e.cfg.normalize = in.ConsumeBool();
    e.prompt = in.ConsumeRandomLengthString(256);
    e.target = in.ConsumeRandomLengthString(32);
    if (in.ConsumeBool()) e.contrast = in.ConsumeRandomLengthString(32);
    const std::size_t m = in.ConsumeIntegralInRange<std::size_t>(0, 4);
    for (std::size_t t = 0; t < m; ++t)
        e.targets.push_back({in.ConsumeIntegral<std::int32_t>(), in.ConsumeRandomLengthString(8), fuzz_number(in)});
    const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 12);
    const auto size = static_cast<atman::index_t>(e.prompt.size());
    atman::index_t at = 0;
    for (std::size_t k = 0; k < n; ++k) {
        atman::unit_score u;
        u.index = static_cast<atman::index_t>(k);
        if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {  // anywhere, possibly outside or overlapping
            u.start = in.ConsumeIntegralInRange<atman::index_t>(-1, size + 1);
            u.end = in.ConsumeIntegralInRange<atman::index_t>(-1, size + 1);
        } else {
            u.start = std::min(size, at + in.ConsumeIntegralInRange<atman::index_t>(0, 8));
            u.end = std::min(size, u.start + in.ConsumeIntegralInRange<atman::index_t>(0, 8));
            at = u.end;
        }
        u.text = in.ConsumeBool() ? in.ConsumeRandomLengthString(16)
                                  : e.prompt.substr(std::size_t(std::clamp<atman::index_t>(u.start, 0, size)));
        u.first_token = in.ConsumeIntegral<std::int16_t>();
        u.last_token = in.ConsumeIntegral<std::int16_t>();
        u.score = fuzz_number(in);
        const std::size_t per_target = in.ConsumeBool() ? m : in.ConsumeIntegralInRange<std::size_t>(0, 4);
        for (std::size_t t = 0; t < per_target; ++t) u.scores_per_target.push_back(fuzz_number(in));
        e.units.push_back(u);
    }
    e.stats.passes = in.ConsumeIntegral<std::int32_t>();
    e.stats.seconds = in.ConsumeFloatingPointInRange<double>(0, 100);
    return e;
}

void check_json(const atman::explanation& e) {
    const nlohmann::json json = nlohmann::json::parse(atman::to_json(e));  // throws on invalid JSON or UTF-8
    if (valid_utf8(e.prompt)) ATMAN_FUZZ_CHECK(json.at("prompt").get<std::string>() == e.prompt);
    if (valid_utf8(e.target)) ATMAN_FUZZ_CHECK(json.at("target").get<std::string>() == e.target);
    ATMAN_FUZZ_CHECK(json.at("units").size() == e.units.size());
    for (std::size_t k = 0; k < e.units.size(); ++k) {
        ATMAN_FUZZ_CHECK(json["units"][k].at("score").get<double>() == e.units[k].score);
        if (valid_utf8(e.units[k].text)) ATMAN_FUZZ_CHECK(json["units"][k].at("text").get<std::string>() == e.units[k].text);
    }
}

bool is_entity(std::string_view rest) {
    for (std::string_view entity : {"&amp;", "&lt;", "&gt;", "&quot;", "&#39;", "&ndash;"})
        if (rest.substr(0, entity.size()) == entity) return true;
    return false;
}

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-'; }

// Checks one tag's inside ("a b=\"c\"", "/a"); updates the stack of open elements.
void check_tag(std::string_view tag, std::vector<std::string>& open) {
    if (tag == "!DOCTYPE html") return;
    const bool closing = !tag.empty() && tag[0] == '/';
    if (closing) tag.remove_prefix(1);
    std::size_t i = 0;
    while (i < tag.size() && is_name_char(tag[i])) ++i;
    const std::string name(tag.substr(0, i));
    ATMAN_FUZZ_CHECK(!name.empty());
    if (closing) {
        ATMAN_FUZZ_CHECK(i == tag.size() && !open.empty() && open.back() == name);
        open.pop_back();
        return;
    }
    while (i < tag.size()) {  // attributes: ' name="value"', value free of quotes and brackets
        ATMAN_FUZZ_CHECK(tag[i] == ' ');
        const std::size_t start = ++i;
        while (i < tag.size() && is_name_char(tag[i])) ++i;
        ATMAN_FUZZ_CHECK(i > start && tag.substr(i, 2) == "=\"");
        i += 2;
        const std::size_t close = tag.find('"', i);
        ATMAN_FUZZ_CHECK(close != std::string_view::npos);
        for (std::size_t k = i; k < close; ++k) ATMAN_FUZZ_CHECK(tag[k] != '<' && tag[k] != '>' && (tag[k] != '&' || is_entity(tag.substr(k))));
        i = close + 1;
    }
    if (name != "meta") open.push_back(name);
}

void check_html(const atman::explanation& e) {
    const std::string html = atman::to_html(e, {e.target});
    ATMAN_FUZZ_CHECK(valid_utf8(html));
    std::vector<std::string> open;
    std::string_view rest = html;
    while (!rest.empty()) {
        if (rest[0] == '<') {
            const std::size_t close = rest.find('>');
            ATMAN_FUZZ_CHECK(close != std::string_view::npos);
            const std::string_view tag = rest.substr(1, close - 1);
            ATMAN_FUZZ_CHECK(tag.find('<') == std::string_view::npos);
            check_tag(tag, open);
            rest.remove_prefix(close + 1);
            if (!open.empty() && open.back() == "style") {  // raw text up to </style>
                const std::size_t end = rest.find("</style>");
                ATMAN_FUZZ_CHECK(end != std::string_view::npos);
                rest.remove_prefix(end);
            }
        } else {
            ATMAN_FUZZ_CHECK(rest[0] != '>' && (rest[0] != '&' || is_entity(rest)));
            rest.remove_prefix(1);
        }
    }
    ATMAN_FUZZ_CHECK(open.empty());
}

void check_terminal(const atman::explanation& e, const atman::terminal_options& options) {
    const std::string text = atman::to_terminal(e, options);
    ATMAN_FUZZ_CHECK(valid_utf8(text));
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto byte = static_cast<unsigned char>(text[i]);
        if (byte == 0x1b) {  // only "ESC [ digits and semicolons m"
            ATMAN_FUZZ_CHECK(options.colour && i + 1 < text.size() && text[i + 1] == '[');
            i += 2;
            while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || text[i] == ';')) ++i;
            ATMAN_FUZZ_CHECK(i < text.size() && text[i] == 'm');
        } else {
            ATMAN_FUZZ_CHECK(byte >= 0x20 || byte == '\n' || byte == '\t');
            ATMAN_FUZZ_CHECK(byte != 0x7f && !(byte == 0xC2 && i + 1 < text.size() &&
                                    static_cast<unsigned char>(text[i + 1]) < 0xA0));
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    atman::terminal_options terminal;
    terminal.colour = in.ConsumeBool();
    terminal.truecolor = in.ConsumeBool();
    terminal.top_k = in.ConsumeIntegralInRange<atman::index_t>(0, 6);
    const atman::explanation e = fuzz_explanation(in);
    // A NaN or infinity, or a unit outside the prompt, is an atman::error, not a report.
    try {
        check_json(e);
    } catch (const atman::error&) {
    }
    try {
        check_html(e);
    } catch (const atman::error&) {
    }
    try {
        check_terminal(e, terminal);
    } catch (const atman::error&) {
    }
    return 0;
}
