#include <atman/report/html.hpp>
#include <atman/report/json.hpp>
#include <atman/report/terminal.hpp>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "support/json_schema_check.hpp"

#ifndef _WIN32
#include <fcntl.h>
#include <unistd.h>
#endif

namespace {

using json = nlohmann::json;

// A prompt whose words are the units, with texts that need escaping everywhere.
atman::explanation sample_explanation() {
    atman::explanation e;
    e.cfg.mode = atman::manipulation_mode::log_additive;
    e.cfg.factor = 0.25;
    e.cfg.conceptual = true;
    e.cfg.kappa = 0.65;
    e.units_by = atman::granularity::sentence;
    e.cfg.post = atman::postprocess::square;
    e.cfg.normalize = true;
    e.prompt = "Say \"hi\" to\n<script>alert(1)</script> caf\xC3\xA9 now";
    e.target = "<b>Paris</b> & co";
    e.targets = {{4932, "<script>", 1.0 / 3}, {-1, "\xE4\xB8", 2.5e-300}};
    const std::vector<std::string> words = {"Say", "\"hi\"", "<script>alert(1)</script>", "caf\xC3\xA9"};
    const std::vector<double> scores = {0.1, -2.5, 7.0 / 3, 1e-12};
    std::size_t search_from = 0;
    for (std::size_t k = 0; k < words.size(); ++k) {
        atman::unit_score u;
        u.index = static_cast<atman::index_t>(k);
        u.text = words[k];
        u.start = static_cast<atman::index_t>(e.prompt.find(words[k], search_from));
        u.end = u.start + static_cast<atman::index_t>(words[k].size());
        search_from = static_cast<std::size_t>(u.end);
        u.first_token = 1 + 2 * u.index;
        u.last_token = u.first_token + 2;
        u.score = scores[k];
        u.scores_per_target = {scores[k] / 2, -scores[k] * 1.5};
        u.measured = k % 2 == 0;
        e.units.push_back(u);
    }
    e.stats = {5, 42, 105, 3, 0.125};
    return e;
}

// True when text is valid UTF-8 (nlohmann refuses to serialise anything else).
bool is_valid_utf8(const std::string& text) {
    try {
        (void)json(text).dump();
        return true;
    } catch (const json::type_error&) {
        return false;
    }
}

const std::string replacement = "\xEF\xBF\xBD";

}  // namespace

TEST_CASE("json: every field round-trips through a JSON parser") {
    const atman::explanation e = sample_explanation();
    atman::json_options per_token;
    per_token.targets = atman::target_granularity::token;
    const json j = json::parse(atman::to_json(e, per_token));

    CHECK(j.at("schema") == "atman.explanation/1");
    const json& cfg = j.at("config");
    CHECK(cfg.at("mode") == "log_additive");
    CHECK(cfg.at("factor").get<double>() == 0.25);
    CHECK(cfg.at("conceptual") == true);
    CHECK(cfg.at("kappa").get<double>() == 0.65);
    CHECK(cfg.at("granularity") == "sentence");
    CHECK(cfg.at("target_granularity") == "token");
    CHECK(cfg.at("postprocess") == "square");
    CHECK(cfg.at("normalize") == true);
    CHECK(j.at("prompt") == e.prompt);
    CHECK(j.at("target") == e.target);
    CHECK_FALSE(j.contains("contrast"));

    REQUIRE(j.at("target_tokens").size() == 2);
    CHECK(j["target_tokens"][0].at("id") == 4932);
    CHECK(j["target_tokens"][0].at("text") == "<script>");
    CHECK(j["target_tokens"][0].at("base_ce").get<double>() == 1.0 / 3);
    CHECK(j["target_tokens"][1].at("id") == -1);
    CHECK(j["target_tokens"][1].at("text") == replacement);
    CHECK(j["target_tokens"][1].at("base_ce").get<double>() == 2.5e-300);

    REQUIRE(j.at("units").size() == e.units.size());
    for (std::size_t k = 0; k < e.units.size(); ++k) {
        const json& u = j["units"][k];
        const atman::unit_score& expected = e.units[k];
        CHECK(u.at("index") == expected.index);
        CHECK(u.at("text") == expected.text);
        CHECK(u.at("start") == expected.start);
        CHECK(u.at("end") == expected.end);
        CHECK(u.at("tokens") == json::array({expected.first_token, expected.last_token}));
        CHECK(u.at("score").get<double>() == expected.score);
        CHECK(u.at("scores_per_target").get<std::vector<double>>() == expected.scores_per_target);
        CHECK(u.at("measured") == expected.measured);
    }

    const json& stats = j.at("stats");
    CHECK(stats.at("passes") == 5);
    CHECK(stats.at("token_forwards") == 42);
    CHECK(stats.at("token_forwards_naive") == 105);
    CHECK(stats.at("units_measured") == 3);
    CHECK(stats.at("seconds").get<double>() == 0.125);
}

TEST_CASE("json: contrast appears only when given; compact and indented output agree") {
    atman::explanation e = sample_explanation();
    e.contrast = "London";
    const std::string pretty = atman::to_json(e);
    atman::json_options compact;
    compact.indent = 0;
    const std::string one_line = atman::to_json(e, compact);
    CHECK(one_line.find('\n') == one_line.size() - 1);
    CHECK(json::parse(pretty) == json::parse(one_line));
    CHECK(json::parse(pretty).at("contrast") == "London");
}

TEST_CASE("json: doubles round-trip exactly") {
    atman::explanation e = sample_explanation();
    std::mt19937_64 random(7);
    std::vector<double> values = {0.0, -0.0, 0.1, 1.0 / 3, 1e300, -1e-300,
                                  std::numeric_limits<double>::denorm_min(),
                                  std::numeric_limits<double>::max(), std::numeric_limits<double>::lowest(),
                                  std::numeric_limits<double>::epsilon()};
    while (values.size() < 2000) {
        const std::uint64_t bits = random();
        double value;
        std::memcpy(&value, &bits, sizeof value);
        if (std::isfinite(value)) values.push_back(value);
    }
    e.units[0].scores_per_target = values;
    const auto parsed = json::parse(atman::to_json(e))["units"][0]["scores_per_target"].get<std::vector<double>>();
    REQUIRE(parsed.size() == values.size());
    for (std::size_t i = 0; i < values.size(); ++i) {
        INFO("value " << i);
        CHECK(std::memcmp(&parsed[i], &values[i], sizeof(double)) == 0);
    }
}

TEST_CASE("json: quotes, backslashes and control characters are escaped") {
    atman::explanation e = sample_explanation();
    const char raw[] = "q\"b\\s/n\nt\tr\rb\bf\f\x01\x1f\x7f\0z end";
    e.target = std::string(raw, sizeof raw - 1);  // with its NUL byte
    const std::string text = atman::to_json(e);
    CHECK(json::parse(text).at("target") == e.target);
    CHECK(text.find("\\u0001") != std::string::npos);
    CHECK(text.find("\\u001f") != std::string::npos);
    CHECK(text.find("\\u0000z") != std::string::npos);
    for (char c : text) CHECK((static_cast<unsigned char>(c) >= 0x20 || c == '\n'));
}

TEST_CASE("json: invalid UTF-8 becomes U+FFFD, one per maximal ill-formed subpart") {
    struct example {
        std::string in, out;
    };
    const std::string r = replacement;
    const std::vector<example> examples = {
        {"caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80", "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"},
        {"\xE4\xB8", r},                      // a CJK character cut after two bytes
        {"\xF0\x9F\x98x", r + "x"},           // an emoji cut after three bytes
        {"a\xC0\xAF" "b", "a" + r + r + "b"}, // overlong '/': C0 never starts a sequence
        {"\xED\xA0\x80", r + r + r},          // a surrogate: ED then A0 is ill-formed
        {"\xF4\x90\x80\x80", r + r + r + r},  // above U+10FFFF
        {"\x80\xBF", r + r},                  // lone continuation bytes
        {"\xFF", r},
        {"\xE0\xA0", r},                      // truncated, well-formed so far
        {"\xE0\x80\x80", r + r + r},          // overlong three-byte form
    };
    for (const example& x : examples) {
        INFO("input " << json(x.out).dump());
        CHECK(atman::detail::sanitize_utf8(x.in) == x.out);
        atman::explanation e = sample_explanation();
        e.targets[0].text = x.in;
        const std::string text = atman::to_json(e);
        REQUIRE(is_valid_utf8(text));
        CHECK(json::parse(text)["target_tokens"][0]["text"] == x.out);
    }
}

TEST_CASE("json: NaN and infinity are refused") {
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const double inf = std::numeric_limits<double>::infinity();
    atman::explanation e = sample_explanation();
    e.units[2].score = nan;
    CHECK_THROWS_AS(atman::to_json(e), atman::numeric_error);
    e = sample_explanation();
    e.units[1].scores_per_target[1] = -inf;
    CHECK_THROWS_AS(atman::to_json(e), atman::numeric_error);
    e = sample_explanation();
    e.targets[0].base_ce = inf;
    CHECK_THROWS_AS(atman::to_json(e), atman::numeric_error);
    e = sample_explanation();
    e.stats.seconds = nan;
    CHECK_THROWS_AS(atman::to_json(e), atman::numeric_error);
}

TEST_CASE("json: extra top-level members are written and checked") {
    const atman::explanation e = sample_explanation();
    atman::json_options options;
    options.extra_members = {{"model", R"({"name": "SmolLM2", "parameters": 134515008})"}, {"run", "3"}};
    const json j = json::parse(atman::to_json(e, options));
    CHECK(j.at("model").at("name") == "SmolLM2");
    CHECK(j.at("model").at("parameters") == 134515008);
    CHECK(j.at("run") == 3);
    CHECK(j.at("units").size() == e.units.size());

    options.extra_members = {{"units", "[]"}};
    CHECK_THROWS_AS(atman::to_json(e, options), atman::invalid_argument);
    options.extra_members = {{"model", "1"}, {"model", "2"}};
    CHECK_THROWS_AS(atman::to_json(e, options), atman::invalid_argument);
    options.extra_members = {{"model", " "}};
    CHECK_THROWS_AS(atman::to_json(e, options), atman::invalid_argument);
}

TEST_CASE("json: the output satisfies docs/atman.explanation.schema.json") {
    const json schema = atman_test::explanation_schema();
    CHECK(schema.at("title") == "atman.explanation/1");
    atman::explanation e = sample_explanation();
    e.contrast = "London";
    for (const atman::explanation& x : {e, atman::explanation{}})
        for (const std::string& error : atman_test::schema_violations(json::parse(atman::to_json(x)), schema))
            FAIL_CHECK(error);
    // The validator is not vacuous: a document without units or with a bad mode fails.
    json broken = json::parse(atman::to_json(e));
    broken.erase("units");
    broken["config"]["mode"] = "additive";
    CHECK(atman_test::schema_violations(broken, schema).size() == 2);
}

namespace {

// Checks that every tag opened is closed in order; returns the first problem.
std::optional<std::string> unbalanced_tag(const std::string& html) {
    static const std::vector<std::string> void_elements = {"meta", "br", "hr", "img", "input", "link"};
    std::vector<std::string> open;
    for (std::size_t at = html.find('<'); at != std::string::npos; at = html.find('<', at + 1)) {
        const std::size_t end = html.find('>', at);
        if (end == std::string::npos) return "unterminated tag at " + std::to_string(at);
        const std::string tag = html.substr(at + 1, end - at - 1);
        if (tag.rfind("!DOCTYPE", 0) == 0) continue;
        const bool closing = tag[0] == '/';
        const std::string name = tag.substr(closing, tag.find_first_of(" \t\n") - closing);
        if (std::find(void_elements.begin(), void_elements.end(), name) != void_elements.end()) continue;
        if (!closing) {
            open.push_back(name);
        } else if (open.empty() || open.back() != name) {
            return "</" + name + "> closes <" + (open.empty() ? std::string("nothing") : open.back()) + ">";
        } else {
            open.pop_back();
        }
    }
    if (!open.empty()) return "<" + open.back() + "> never closed";
    return std::nullopt;
}

std::string lowercase(std::string text) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return text;
}

std::size_t count(const std::string& text, const std::string& what) {
    std::size_t n = 0;
    for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

}  // namespace

TEST_CASE("html: a well-formed page in which data never becomes markup") {
    atman::explanation e = sample_explanation();
    e.contrast = "it's <i>London</i>";
    atman::html_options per_token;
    per_token.targets = atman::target_granularity::token;
    const std::string html = atman::to_html(e, per_token);

    CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
    CHECK(html.find("<meta charset=\"utf-8\">") != std::string::npos);
    const auto problem = unbalanced_tag(html);
    CHECK_FALSE(problem);
    if (problem) INFO(*problem);
    CHECK(is_valid_utf8(html));

    // The report emits no script of its own, so any "<script" came from data.
    CHECK(lowercase(html).find("<script") == std::string::npos);
    CHECK(html.find("&lt;script&gt;alert(1)&lt;/script&gt;") != std::string::npos);
    CHECK(html.find("<b>") == std::string::npos);
    CHECK(html.find("&lt;b&gt;Paris&lt;/b&gt; &amp; co") != std::string::npos);
    CHECK(html.find("it&#39;s &lt;i&gt;London&lt;/i&gt;") != std::string::npos);
    CHECK(html.find("&quot;hi&quot;") != std::string::npos);
    CHECK(html.find(replacement) != std::string::npos);  // the partial target token, repaired
    CHECK(html.find("\xE4\xB8<") == std::string::npos);

    // One collapsible view per target token, each with its own legend.
    CHECK(count(html, "<details>") == e.targets.size());
    CHECK(count(html, "class=\"legend\"") == 1 + e.targets.size());
}

TEST_CASE("html: a NUL byte or another control character becomes U+FFFD, tab and newline stay") {
    atman::explanation e = sample_explanation();
    e.target = std::string("a\0b\x01" "c\x7f" "d\te\nf", 12);
    const std::string html = atman::to_html(e);
    CHECK(html.find('\0') == std::string::npos);
    CHECK(html.find('\x01') == std::string::npos);
    CHECK(html.find('\x7f') == std::string::npos);
    CHECK(html.find("a" + replacement + "b" + replacement + "c" + replacement + "d\te\nf") != std::string::npos);
}

TEST_CASE("terminal: with a width the heatmap breaks lines at spaces, never inside a word") {
    atman::explanation e;
    e.target = "x";
    e.prompt = "alpha beta gamma delta\tepsilon zeta caf\xC3\xA9s";
    std::size_t from = 0;
    for (const std::string word : {"alpha", "beta", "gamma", "delta", "epsilon", "zeta", "caf\xC3\xA9s"}) {
        atman::unit_score u;
        u.index = atman::index_t(e.units.size());
        u.text = word;
        u.start = atman::index_t(e.prompt.find(word, from));
        u.end = u.start + atman::index_t(word.size());
        from = std::size_t(u.end);
        u.score = 0.5 - 0.1 * double(u.index);
        e.units.push_back(u);
    }
    atman::terminal_options options;
    options.top_k = 0;
    options.width = 12;
    const auto heatmap = [&] {
        const std::string out = atman::to_terminal(e, options);
        const std::size_t begin = out.find("\n\n") + 2;
        return out.substr(begin, out.find("\n\n", begin) - begin);
    };
    // "gamma delta" and a tab reach column 16; "delta", the tab and "epsilon", 15, are one word.
    CHECK(heatmap() == "alpha beta\ngamma\ndelta\tepsilon\nzeta caf\xC3\xA9s");
    options.width = 3;  // narrower than any word: one word a line, none cut
    CHECK(heatmap() == "alpha\nbeta\ngamma\ndelta\tepsilon\nzeta\ncaf\xC3\xA9s");
    options.width = 0;
    CHECK(heatmap() == e.prompt);
    // Coloured, each line's colour ends before its break.
    options.colour = true;
    options.width = 12;
    CHECK(atman::to_terminal(e, options).find("beta\x1b[0m\n") != std::string::npos);
}

TEST_CASE("reports: target_granularity chooses the whole target's view, or also one per token") {
    const atman::explanation e = sample_explanation();
    const std::string whole = atman::to_html(e);
    CHECK(count(whole, "<details>") == 0);
    CHECK(count(whole, "class=\"legend\"") == 1);
    CHECK(json::parse(atman::to_json(e)).at("config").at("target_granularity") == "complete");

    atman::terminal_options terminal;
    CHECK(count(atman::to_terminal(e, terminal), "target token ") == 0);
    terminal.targets = atman::target_granularity::token;
    const std::string text = atman::to_terminal(e, terminal);
    CHECK(count(text, "target token ") == e.targets.size());
    CHECK(count(text, "scale ") == 1 + e.targets.size());
    // Each view ranks by its own scores: unit 2 (7/3) leads the whole target's,
    // unit 1 (-2.5 * -1.5) token 1's.
    const std::size_t token_1 = text.find("target token 1 ");
    REQUIRE(token_1 != std::string::npos);
    CHECK(text.find("1. +2.33") < token_1);
    CHECK(text.find("1. +3.75  \"\"hi\"\" (unit 1)", token_1) != std::string::npos);
}

TEST_CASE("html: tooltips carry the exact score and colours follow its sign") {
    const atman::explanation e = sample_explanation();
    const std::string html = atman::to_html(e);
    for (const atman::unit_score& u : e.units) {
        const std::string title = "title=\"unit " + std::to_string(u.index) + ": score ";
        const std::size_t at = html.find(title);
        REQUIRE(at != std::string::npos);
        CHECK(std::strtod(html.c_str() + at + title.size(), nullptr) == u.score);

        const std::size_t style = html.rfind("background:#", at);
        REQUIRE(style != std::string::npos);
        const unsigned long colour = std::strtoul(html.substr(style + 12, 6).c_str(), nullptr, 16);
        const unsigned long red = colour >> 16, blue = colour & 0xFF;
        // Scores near zero are (nearly) white; clear ones take the side's hue.
        if (u.score > 0.1) CHECK(red > blue);
        if (u.score < -0.1) CHECK(blue > red);
        if (std::abs(u.score) < 1e-6) CHECK(colour == 0xFFFFFF);
    }
}

TEST_CASE("report colour scale: white at zero, saturated at the largest magnitude, monotone") {
    const auto scale = atman::detail::diverging_scale::fit({-1.0, 0.5, 2.0});
    CHECK(scale.lowest() == -1.0);
    CHECK(scale.highest() == 2.0);
    const atman::detail::rgb white = scale.colour(0);
    CHECK((white.r == 255 && white.g == 255 && white.b == 255));
    const atman::detail::rgb strongest = scale.colour(2.0), weaker = scale.colour(1.0), against = scale.colour(-2.0);
    CHECK(strongest.r > strongest.b);
    CHECK(strongest.g < weaker.g);
    CHECK(against.b > against.r);
    const atman::detail::rgb beyond = scale.colour(-5.0), weaker_against = scale.colour(-1.0);
    CHECK((beyond.r == against.r && beyond.g == against.g && beyond.b == against.b));  // saturated at |2|
    CHECK(weaker_against.r > against.r);
    const auto flat = atman::detail::diverging_scale::fit({0.0, 0.0});
    CHECK(flat.colour(0).g == 255);
}

TEST_CASE("html and terminal: unit ranges must lie in the prompt and not overlap") {
    atman::explanation e = sample_explanation();
    e.units[1].start = e.units[0].start + 1;
    CHECK_THROWS_AS(atman::to_html(e), atman::invalid_argument);
    CHECK_THROWS_AS(atman::to_terminal(e), atman::invalid_argument);
    e = sample_explanation();
    e.units[3].end = static_cast<atman::index_t>(e.prompt.size()) + 1;
    CHECK_THROWS_AS(atman::to_html(e), atman::invalid_argument);
    e = sample_explanation();
    e.units[0].score = std::numeric_limits<double>::quiet_NaN();
    CHECK_THROWS_AS(atman::to_html(e), atman::numeric_error);
    CHECK_THROWS_AS(atman::to_terminal(e), atman::numeric_error);
}

TEST_CASE("terminal: plain text marks the top units and carries no escape sequence") {
    atman::explanation e = sample_explanation();
    e.prompt.replace(0, 3, "\x1b[2");  // data that would be an escape sequence; same length as "Say"
    e.units[0].text = "\x1b[2";
    atman::terminal_options options;
    options.top_k = 2;
    const std::string text = atman::to_terminal(e, options);
    CHECK(text.find('\x1b') == std::string::npos);
    CHECK(text.find("\\x1b[2") != std::string::npos);
    CHECK(is_valid_utf8(text));
    // Top two by score: 7/3 then 0.1; the others stay unmarked.
    CHECK(text.find("[<script>alert(1)</script> +2.33]") != std::string::npos);
    CHECK(text.find("[\\x1b[2 +0.1]") != std::string::npos);
    CHECK(text.find("[\"hi\"") == std::string::npos);
    const std::size_t first = text.find("1. +2.33"), second = text.find("2. +0.1");
    CHECK(first != std::string::npos);
    CHECK(second != std::string::npos);
    CHECK(first < second);
    CHECK(text.find("3. ") == std::string::npos);

    options.top_k = -1;
    CHECK_THROWS_AS(atman::to_terminal(e, options), atman::invalid_argument);
}

TEST_CASE("terminal: colour output sets backgrounds and resets before every line break") {
    atman::explanation e = sample_explanation();
    e.units[2].text = e.prompt.substr(static_cast<std::size_t>(e.units[1].end),
                                      static_cast<std::size_t>(e.units[2].end - e.units[1].end));
    e.units[2].start = e.units[1].end;  // now spans the line break
    for (bool truecolor : {false, true}) {
        atman::terminal_options options;
        options.colour = true;
        options.truecolor = truecolor;
        const std::string text = atman::to_terminal(e, options);
        CHECK(text.find(truecolor ? "\x1b[48;2;" : "\x1b[48;5;") != std::string::npos);
        CHECK(text.find(truecolor ? "\x1b[48;5;" : "\x1b[48;2;") == std::string::npos);
        bool coloured = false;
        for (std::size_t i = 0; i < text.size(); ++i) {
            if (text.compare(i, 5, "\x1b[48;") == 0) coloured = true;
            if (text.compare(i, 4, "\x1b[0m") == 0) coloured = false;
            if (text[i] == '\n') CHECK_FALSE(coloured);
        }
        CHECK(text.find("1. +2.33") != std::string::npos);
    }
}

#ifndef _WIN32
namespace {

// Sets or unsets an environment variable for one scope.
class scoped_env {
public:
    scoped_env(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value)
            ::setenv(name, value, 1);
        else
            ::unsetenv(name);
    }
    ~scoped_env() {
        if (old_)
            ::setenv(name_, old_->c_str(), 1);
        else
            ::unsetenv(name_);
    }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;

private:
    const char* name_;
    std::optional<std::string> old_;
};

}  // namespace

TEST_CASE("terminal: colour only on a terminal, without NO_COLOR, unless TERM=dumb") {
    const int master = ::posix_openpt(O_RDWR | O_NOCTTY);
    REQUIRE(master >= 0);
    REQUIRE(::grantpt(master) == 0);
    REQUIRE(::unlockpt(master) == 0);
    const int terminal = ::open(::ptsname(master), O_RDWR | O_NOCTTY);
    REQUIRE(terminal >= 0);
    int pipe_ends[2];
    REQUIRE(::pipe(pipe_ends) == 0);

    {
        const scoped_env no_colour("NO_COLOR", nullptr), term("TERM", "xterm-256color");
        CHECK(atman::colour_enabled(terminal));
        CHECK_FALSE(atman::colour_enabled(pipe_ends[1]));
    }
    {
        const scoped_env no_colour("NO_COLOR", ""), term("TERM", "xterm");
        CHECK(atman::colour_enabled(terminal));  // empty NO_COLOR does not count
    }
    {
        const scoped_env no_colour("NO_COLOR", "1"), term("TERM", "xterm");
        CHECK_FALSE(atman::colour_enabled(terminal));
    }
    {
        const scoped_env no_colour("NO_COLOR", nullptr), term("TERM", "dumb");
        CHECK_FALSE(atman::colour_enabled(terminal));
    }
    {
        const scoped_env no_colour("NO_COLOR", nullptr), term("TERM", "xterm"), colorterm("COLORTERM", "truecolor");
        std::FILE* stream = ::fdopen(::dup(terminal), "w");
        REQUIRE(stream);
        const atman::terminal_options options = atman::terminal_options::for_stream(stream);
        CHECK(options.colour);
        CHECK(options.truecolor);
        std::fclose(stream);
    }
    ::close(pipe_ends[0]);
    ::close(pipe_ends[1]);
    ::close(terminal);
    ::close(master);
}
#endif
