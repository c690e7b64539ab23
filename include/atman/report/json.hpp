#pragma once
// An explanation as JSON, schema "atman.explanation/1"
// (docs/atman.explanation.schema.json). Texts are repaired to valid UTF-8,
// numbers round-trip exactly; NaN or infinity throws numeric_error.

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "../detail/report_input.hpp"
#include "../detail/report_json_writer.hpp"
#include "../error.hpp"
#include "../explanation.hpp"

namespace atman {

inline constexpr const char* explanation_json_schema = "atman.explanation/1";

struct json_options {
    int indent = 2;  // 0: one line
    // Recorded as config.target_granularity: the view the reader should show
    // (both are in the units' score and scores_per_target).
    target_granularity targets = target_granularity::complete;
    // Further top-level members as (key, already serialised JSON value), e.g.
    // {"model", R"({"name": "SmolLM2"})"}. The values are written verbatim:
    // the caller vouches that they are valid JSON.
    std::vector<std::pair<std::string, std::string>> extra_members;
};

inline std::string to_json(const explanation& e, const json_options& options = {}) {
    static const char* const standard_members[] = {"schema", "config", "prompt", "target", "contrast",
                                                   "target_tokens", "units", "stats"};
    detail::require(options.indent >= 0, "json_options::indent must be >= 0");
    for (std::size_t i = 0; i < options.extra_members.size(); ++i) {
        // Not a structured binding: C++17 lambdas cannot capture one (clang rejects it).
        const std::string& name = options.extra_members[i].first;
        const std::string& value = options.extra_members[i].second;
        detail::require(std::none_of(std::begin(standard_members), std::end(standard_members),
                                     [&](const char* member) { return name == member; }),
                        "json extra member \"" + name + "\" would replace a member of " +
                            explanation_json_schema);
        for (std::size_t j = 0; j < i; ++j)
            detail::require(options.extra_members[j].first != name,
                            "json extra member \"" + name + "\" is given twice");
        detail::require(value.find_first_not_of(" \t\r\n") != std::string::npos,
                        "json extra member \"" + name + "\" has an empty value");
    }
    detail::require_finite_numbers(e);

    std::string out;
    detail::json_writer json(out, options.indent);
    json.begin_object();
    json.key("schema");
    json.string(explanation_json_schema);

    json.key("config");
    json.begin_object();
    json.key("mode"); json.string(to_string(e.cfg.mode));
    json.key("factor"); json.number(e.cfg.factor);
    json.key("conceptual"); json.boolean(e.cfg.conceptual);
    json.key("kappa"); json.number(e.cfg.kappa);
    json.key("max_neighbours"); json.integer(e.cfg.max_neighbours);
    json.key("granularity"); json.string(to_string(e.units_by));
    json.key("target_granularity"); json.string(to_string(options.targets));
    json.key("explain_targets_by_earlier_targets"); json.boolean(e.cfg.explain_targets_by_earlier_targets);
    json.key("postprocess"); json.string(to_string(e.cfg.post));
    json.key("normalize"); json.boolean(e.cfg.normalize);
    json.end_object();

    json.key("prompt"); json.string(e.prompt);
    json.key("target"); json.string(e.target);
    if (!e.contrast.empty()) {
        json.key("contrast");
        json.string(e.contrast);
    }

    json.key("target_tokens");
    json.begin_array();
    for (const target_token& t : e.targets) {
        json.begin_object();
        json.key("id"); json.integer(t.id);
        json.key("text"); json.string(t.text);
        json.key("base_ce"); json.number(t.base_ce);
        json.end_object();
    }
    json.end_array();

    json.key("units");
    json.begin_array();
    for (const unit_score& u : e.units) {
        json.begin_object();
        json.key("index"); json.integer(u.index);
        json.key("text"); json.string(u.text);
        json.key("start"); json.integer(u.start);
        json.key("end"); json.integer(u.end);
        json.key("tokens");
        json.begin_array(true);
        json.integer(u.first_token);
        json.integer(u.last_token);
        json.end_array();
        json.key("score"); json.number(u.score);
        json.key("scores_per_target");
        json.begin_array(true);
        for (double s : u.scores_per_target) json.number(s);
        json.end_array();
        json.key("measured"); json.boolean(u.measured);
        json.end_object();
    }
    json.end_array();

    json.key("stats");
    json.begin_object();
    json.key("passes"); json.integer(e.stats.passes);
    json.key("token_forwards"); json.integer(e.stats.token_forwards);
    json.key("token_forwards_naive"); json.integer(e.stats.token_forwards_naive);
    json.key("units_measured"); json.integer(e.stats.units_measured);
    json.key("seconds"); json.number(e.stats.seconds);
    json.end_object();

    for (const auto& [name, value] : options.extra_members) {
        json.key(name);
        json.raw(value);
    }
    json.end_object();
    out += '\n';
    return out;
}

}  // namespace atman
