#pragma once
// Scoring (atman-method.md, section 4): the change of the target's
// cross-entropy under each perturbation, turned into unit scores.
//
// Per unit k (prompt units first, in request order, then with
// cfg.explain_targets_by_earlier_targets one unit per in-sequence target y_t),
// with delta_{k,t} = CE_t(perturbed by k) - CE_t(unperturbed):
//   scores_per_target[t] = post(delta_{k,t})
//   score                = post(sum_t delta_{k,t})
//                          (contrastive: minus sum_t delta_{k,t}(contrast))
// where post is cfg.post; with cfg.normalize each of score and
// scores_per_target[t] is then min-max scaled to [0, 1] over the units (all 0
// when they are all equal). Reports show the score, and with
// target_granularity::token also one view per target token (report options).
// A perturbation cannot change a target scored before its first affected
// position; such deltas are exactly 0, as are all deltas of a perturbation
// that touches no key (every factor 1). Earlier-target units have
// first_token = n + t, and their start/end are byte offsets into the
// concatenated target_texts (= `target` when that is their concatenation),
// not the prompt. Contrastive: scores_per_target holds the deltas of the
// explained target.

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "explanation.hpp"
#include "request.hpp"
#include "scheduler.hpp"

namespace atman {

// The deltas of one perturbation, identified by kind and index (scheduler.hpp).
struct perturbation_deltas {
    perturbation_kind kind = perturbation_kind::unit;
    index_t index = 0;
    std::vector<double> target;    // one per target token
    std::vector<double> contrast;  // one per contrast token; empty unless contrastive
};

struct raw_deltas {
    std::vector<double> base_ce;           // unperturbed CE per target token
    std::vector<double> contrast_base_ce;  // the same for the contrast; empty unless contrastive
    std::vector<perturbation_deltas> rows;
    explanation_stats stats;  // passes, token_forwards, seconds (naive cost: make_explanation)
};

namespace detail {

inline void min_max_normalize(std::vector<double*> values) {
    if (values.empty()) return;
    double lo = *values.front(), hi = lo;
    for (const double* v : values) lo = std::min(lo, *v), hi = std::max(hi, *v);
    for (double* v : values) *v = hi > lo ? (*v - lo) / (hi - lo) : 0.0;
}

inline double postprocessed(double value, postprocess post) {
    switch (post) {
        case postprocess::none:
            return value;
        case postprocess::absolute:
            return std::abs(value);
        case postprocess::square:
            return value * value;
    }
    return value;
}

}  // namespace detail

// The deltas of all shards of one plan as one: rows concatenated, statistics
// summed (seconds too: compute time, not wall time), base CE from the first.
// Throws invalid_argument when the parts disagree on the base CE sizes.
inline raw_deltas merge_deltas(const std::vector<raw_deltas>& parts) {
    detail::require(!parts.empty(), "merge_deltas: nothing to merge");
    raw_deltas merged;
    merged.base_ce = parts.front().base_ce;
    merged.contrast_base_ce = parts.front().contrast_base_ce;
    for (const raw_deltas& part : parts) {
        detail::require(part.base_ce.size() == merged.base_ce.size() &&
                            part.contrast_base_ce.size() == merged.contrast_base_ce.size(),
                        "merge_deltas: the parts explain different targets");
        merged.rows.insert(merged.rows.end(), part.rows.begin(), part.rows.end());
        merged.stats.passes += part.stats.passes;
        merged.stats.token_forwards += part.stats.token_forwards;
        merged.stats.seconds += part.stats.seconds;
    }
    return merged;
}

namespace detail {

// make_explanation for a request validated already.
inline explanation score_deltas(const explain_request& request, const config& cfg,
                                const raw_deltas& deltas) {
    const index_t n = index_t(request.prompt_tokens.size()),
                  m = index_t(request.target_tokens.size());
    const index_t m_contrast = index_t(request.contrast_tokens.size());
    const index_t n_units = index_t(request.units.size());
    const index_t n_target_units = cfg.explain_targets_by_earlier_targets ? m - 1 : 0;
    require(index_t(deltas.base_ce.size()) == m &&
                        index_t(deltas.contrast_base_ce.size()) == m_contrast,
                    "make_explanation: the deltas were computed for other targets");

    // slot[k]: the row of unit k (prompt units, then earlier-target units).
    std::vector<const perturbation_deltas*> slot(std::size_t(n_units + n_target_units), nullptr);
    for (const perturbation_deltas& row : deltas.rows) {
        const bool is_unit = row.kind == perturbation_kind::unit;
        const index_t limit = is_unit ? n_units : n_target_units;
        const std::string name =
            std::string(is_unit ? "unit " : "earlier target ") + std::to_string(row.index);
        require(
            row.index >= 0 && row.index < limit,
            "make_explanation: deltas for " + name + ", which the request does not have");
        const perturbation_deltas*& s = slot[std::size_t((is_unit ? 0 : n_units) + row.index)];
        require(s == nullptr, "make_explanation: " + name + " has deltas twice");
        require(
            index_t(row.target.size()) == m && index_t(row.contrast.size()) == m_contrast,
            "make_explanation: " + name + " has deltas for other targets");
        s = &row;
    }
    for (std::size_t k = 0; k < slot.size(); ++k) {
        require(
            slot[k] != nullptr,
            "make_explanation: no deltas for " +
                std::string(index_t(k) < n_units ? "unit " : "earlier target ") +
                std::to_string(index_t(k) < n_units ? index_t(k) : index_t(k) - n_units));
    }

    explanation result;
    result.cfg = cfg;
    result.units_by = request.units_by;
    result.prompt = request.prompt;
    result.target = request.target;
    result.contrast = request.contrast;
    std::vector<index_t> target_offset(std::size_t(m + 1),
                                       0);  // byte offsets in the concatenated target_texts
    for (index_t t = 0; t < m; ++t) {
        const std::string text =
            request.target_texts.empty() ? std::string() : request.target_texts[t];
        result.targets.push_back({request.target_tokens[t], text, deltas.base_ce[t]});
        target_offset[t + 1] = target_offset[t] + index_t(text.size());
    }
    for (std::size_t k = 0; k < slot.size(); ++k) {
        unit_score s;
        s.index = index_t(k);
        if (index_t(k) < n_units) {
            const unit& u = request.units[k];
            s.text = request.prompt.substr(u.start, u.end - u.start);
            s.start = u.start, s.end = u.end;
            s.first_token = u.positions.front(), s.last_token = u.positions.back() + 1;
        } else {
            const index_t t = index_t(k) - n_units;
            s.text = result.targets[t].text;
            s.start = target_offset[t], s.end = target_offset[t + 1];
            s.first_token = n + t, s.last_token = n + t + 1;
        }
        double complete = 0;
        for (index_t t = 0; t < m; ++t) {
            complete += slot[k]->target[t];
            s.scores_per_target.push_back(postprocessed(slot[k]->target[t], cfg.post));
        }
        for (double d : slot[k]->contrast) complete -= d;
        s.score = postprocessed(complete, cfg.post);
        result.units.push_back(std::move(s));
    }
    if (cfg.normalize) {
        std::vector<double*> column;
        for (unit_score& s : result.units) column.push_back(&s.score);
        min_max_normalize(column);
        for (index_t t = 0; t < m; ++t) {
            column.clear();
            for (unit_score& s : result.units) column.push_back(&s.scores_per_target[t]);
            min_max_normalize(column);
        }
    }

    const index_t n_perturbations = index_t(slot.size());
    result.stats = deltas.stats;
    result.stats.token_forwards_naive = (n_perturbations + 1) * (n + m - 1);
    result.stats.units_measured = n_units;
    if (request.contrastive())
        result.stats.token_forwards_naive += (n_perturbations + 1) * (n + m_contrast - 1);
    return result;
}
}  // namespace detail

// The explanation from the deltas of every perturbation of request's plan
// (each exactly once, in any order). Throws invalid_argument for a bad
// request or deltas that do not fit it.
inline explanation make_explanation(const explain_request& request, const config& cfg,
                                    const raw_deltas& deltas) {
    detail::validate_request(request, cfg);
    return detail::score_deltas(request, cfg, deltas);
}

}  // namespace atman
