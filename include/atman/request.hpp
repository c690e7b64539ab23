#pragma once
// What to explain: the prompt and target tokens, the units over the prompt,
// and optionally a contrast target (atman-method.md, sections 1 and 4).

#include <cstdint>
#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "units.hpp"

namespace atman {

struct explain_request {
    std::string prompt;                         // the text the units' byte ranges refer to
    std::vector<std::int32_t> prompt_tokens;    // x_0..x_{n-1}
    std::string target;                         // the explained target's text
    std::vector<std::int32_t> target_tokens;    // y_0..y_{m-1}
    std::vector<std::string> target_texts;      // decoded text of each target token; may be empty
    std::vector<unit> units;                    // over prompt positions (units.hpp)
    granularity units_by = granularity::spans;  // what the units are, for reports: the
                                                // unit_options::by that made them, spans if by hand
    std::string contrast;                       // contrastive target's text
    std::vector<std::int32_t> contrast_tokens;  // non-empty: explain "target rather than contrast"

    bool contrastive() const { return !contrast_tokens.empty(); }
};

namespace detail {

// Throws invalid_argument naming the first problem of the request under cfg.
inline void validate_request(const explain_request& request, const config& cfg) {
    cfg.validate();
    require(!request.prompt_tokens.empty(), "explain: the prompt has no tokens");
    require(!request.target_tokens.empty(), "explain: the target has no tokens");
    require(
        request.target_texts.empty() || request.target_texts.size() == request.target_tokens.size(),
        "explain: target_texts holds " + std::to_string(request.target_texts.size()) +
            " texts for " + std::to_string(request.target_tokens.size()) + " target tokens");
    require(!request.units.empty(), "explain: there are no units to explain");
    validate_units(request.units, index_t(request.prompt_tokens.size()),
                   index_t(request.prompt.size()));
    require(!request.contrastive() || !cfg.explain_targets_by_earlier_targets,
            "explain: contrastive explanations cannot explain targets by earlier targets");
}

}  // namespace detail

}  // namespace atman
