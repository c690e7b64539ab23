#pragma once
// The result of one explanation: what was explained, the scores, and what it cost.

#include <cstdint>
#include <string>
#include <vector>

#include "config.hpp"

namespace atman {

struct target_token {
    std::int32_t id = 0;
    std::string text;       // decoded token text (may be a partial UTF-8 sequence)
    double base_ce = 0;     // CE of this target in the unperturbed pass
};

struct unit_score {
    index_t index = 0;                  // position of the unit in the unit list
    std::string text;                   // the unit's text (prompt bytes start..end)
    index_t start = 0, end = 0;         // byte offsets into the prompt
    index_t first_token = 0;            // sequence positions [first_token, last_token)
    index_t last_token = 0;             // exclusive
    double score = 0;                   // after target aggregation, postprocessing, normalisation
    std::vector<double> scores_per_target;  // one per target token, same postprocessing
    // false: the unit was not perturbed itself; its scores are a share of a
    // coarser unit's (hierarchical.hpp)
    bool measured = true;
};

struct explanation_stats {
    index_t passes = 0;                 // perturbed rows run, plus base passes
    index_t token_forwards = 0;         // positions actually recomputed, base passes included
    index_t token_forwards_naive = 0;   // (units + 1) * T: full passes, no prefix reuse
    index_t units_measured = 0;         // unit perturbations run (hierarchical.hpp: over all levels)
    double seconds = 0;
};

struct explanation {
    config cfg;
    granularity units_by = granularity::spans;  // the request's units_by
    std::string prompt;                 // the full text the units' byte offsets refer to
    std::string target;                 // the explained target text
    std::string contrast;               // contrastive target ("why target rather than contrast"), empty if none
    std::vector<target_token> targets;
    std::vector<unit_score> units;
    explanation_stats stats;
};

}  // namespace atman
