#pragma once
// Coarse-to-fine search: explain long prompts with far fewer perturbations
// than one per unit (docs/hierarchical.md). Beside the scheduler: it drives
// the same adapter contract through explain_deltas, level by level.
//
//   explain_hierarchical(engine, request, cfg, options)
//
// request.units are the finest level (e.g. words); options.levels holds
// coarser unit lists, coarsest first (e.g. paragraphs, then sentences). Every
// unit of a level lies inside one unit of the level above it; a coarse unit
// is suppressed as the union of the finest units below it, so each level
// suppresses exactly the positions the finest level does.
//
// Level 0 is measured whole. At each level the measured units are ranked by
// options.rank (of the score with cfg.post applied, before normalisation; ties
// to the lower index) and, in that order, a unit is refined (its children at
// the next level measured) when it is among the first top_k, its rank value
// is >= threshold, and its children fit
// in what is left of max_units perturbations. Only refined units' children
// are measured, down to request.units.
//
// A finest unit that was never measured gets an equal share of the deltas of
// its nearest measured ancestor: delta / (finest units under that ancestor),
// per target token, then cfg.post and cfg.normalize as for measured units.
// Shares rather than copies: to first order AtMan's deltas add up over the
// suppressed positions, so shares keep the ancestor's total and keep an
// unmeasured word from outranking measured words only because its sentence
// scored high. Such units have unit_score::measured == false.
//
// stats: passes, token_forwards and seconds of all levels (one base pass per
// level), units_measured the perturbations run over all levels,
// token_forwards_naive that of the exhaustive explanation of request.units.
// run_options apply to each level's run: before_running sees each level's
// plan, progress counts the perturbations of one level, cancel stops any.
// With top_k = 0, no threshold and max_units = 0 every unit is refined, and
// the finest level runs the exhaustive plan: the result is explain()'s.
//
// Levels are numbered from 0 (options.levels[0]) to options.levels.size()
// (request.units) in messages. Errors (invalid_argument): bad options (top_k
// or max_units < 0, NaN threshold, a budget below the coarsest level's size),
// a unit outside every unit of the level above it or straddling two, config.conceptual (the
// neighbourhoods depend on which units are explained) and
// config.explain_targets_by_earlier_targets; and those of explain().

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "explainer.hpp"
#include "explanation.hpp"
#include "request.hpp"
#include "scoring.hpp"
#include "units.hpp"

namespace atman {

// What a level's measured units are ranked by for refinement (and what the
// threshold is compared with).
enum class refine_rank {
    score,      // the score: the units whose suppression raises the target's CE most
    magnitude,  // |score|: also those whose suppression lowers it most
    per_unit    // score / finest units under it: a long paragraph does not win by its length
};

struct hierarchical_options {
    std::vector<std::vector<unit>> levels;  // coarser than request.units, coarsest first
    // Units refined per level, best first; 0: every unit. 1: the only budget
    // measured that ran 10x fewer token-forwards than the exhaustive search at
    // ~1,000 tokens and 30x at ~4,000; 2 and 3 agreed little better
    // (docs/hierarchical.md).
    index_t top_k = 1;
    double threshold = -std::numeric_limits<double>::infinity();  // refine only rank values >= it
    index_t max_units = 0;  // perturbations over all levels; 0: no bound
    refine_rank rank = refine_rank::score;
};

inline const char* to_string(refine_rank r) {
    switch (r) {
        case refine_rank::score: return "score";
        case refine_rank::magnitude: return "magnitude";
        case refine_rank::per_unit: return "per_unit";
    }
    return "?";
}

namespace detail {

// One level of the hierarchy: its units (unions of finest units) and, per
// unit, its parent in the level above and its finest descendants.
struct search_level {
    std::vector<unit> units;
    std::vector<index_t> parent;                // -1 at level 0
    std::vector<std::vector<index_t>> finest;   // indices into request.units
};

inline std::vector<search_level> build_search_levels(const std::vector<unit>& finest_units,
                                                     const hierarchical_options& options,
                                                     index_t n_positions) {
    const index_t n_levels = index_t(options.levels.size()) + 1;
    std::vector<search_level> levels(static_cast<std::size_t>(n_levels));
    search_level& bottom = levels.back();
    bottom.units = finest_units;
    for (index_t i = 0; i < index_t(finest_units.size()); ++i) bottom.finest.push_back({i});
    for (index_t l = n_levels - 2; l >= 0; --l) {
        const std::vector<unit>& coarse = options.levels[l];
        const std::string here_name = " of level " + std::to_string(l),
                          below_name = " of level " + std::to_string(l + 1);
        validate_unit_positions(coarse, n_positions);
        std::vector<index_t> owner(std::size_t(n_positions), -1);
        for (index_t c = 0; c < index_t(coarse.size()); ++c)
            for (index_t p : coarse[c].positions) owner[p] = c;
        search_level& below = levels[l + 1];
        search_level& here = levels[l];
        std::vector<index_t> derived(coarse.size(), -1);  // coarse unit -> unit of `here`
        for (index_t u = 0; u < index_t(below.units.size()); ++u) {
            const std::vector<index_t>& positions = below.units[u].positions;
            const index_t c = owner[positions.front()];
            for (index_t p : positions) {
                require(owner[p] >= 0, "hierarchical: position " + std::to_string(p) + " of unit " +
                                           std::to_string(u) + below_name +
                                           " lies in no unit" + here_name);
                require(owner[p] == c, "hierarchical: unit " + std::to_string(u) + below_name +
                                           " straddles units " + std::to_string(c) + " and " +
                                           std::to_string(owner[p]) + here_name);
            }
            if (derived[c] < 0) {
                derived[c] = index_t(here.units.size());
                here.units.push_back({{}, below.units[u].start, below.units[u].end});
                here.finest.emplace_back();
            }
            unit& d = here.units[derived[c]];
            d.positions.insert(d.positions.end(), positions.begin(), positions.end());
            d.start = std::min(d.start, below.units[u].start);
            d.end = std::max(d.end, below.units[u].end);
            std::vector<index_t>& f = here.finest[derived[c]];
            f.insert(f.end(), below.finest[u].begin(), below.finest[u].end());
            below.parent.push_back(derived[c]);
        }
        for (unit& d : here.units) std::sort(d.positions.begin(), d.positions.end());
    }
    levels.front().parent.assign(levels.front().units.size(), -1);
    return levels;
}

inline void validate_hierarchical(const hierarchical_options& options, const config& cfg) {
    require(options.top_k >= 0, "hierarchical: top_k must be >= 0 (0: refine every unit), got " +
                                    std::to_string(options.top_k));
    require(!std::isnan(options.threshold), "hierarchical: threshold must be a number, got NaN");
    require(options.max_units >= 0, "hierarchical: max_units must be >= 0 (0: no bound), got " +
                                        std::to_string(options.max_units));
    require(!cfg.conceptual,
            "hierarchical: config.conceptual is not supported (its neighbourhoods depend on which "
            "units are explained)");
    require(!cfg.explain_targets_by_earlier_targets,
            "hierarchical: config.explain_targets_by_earlier_targets is not supported");
}

}  // namespace detail

template <class Engine>
explanation explain_hierarchical(Engine& engine, const explain_request& request, const config& cfg,
                                 const hierarchical_options& options,
                                 const explain_options& run_options = {}) {
    check_adapter<Engine>();
    const auto started = std::chrono::steady_clock::now();
    detail::validate_request(request, cfg);
    detail::validate_hierarchical(options, cfg);
    const std::vector<detail::search_level> levels = detail::build_search_levels(
        request.units, options, index_t(request.prompt_tokens.size()));
    const index_t n_levels = index_t(levels.size());
    detail::require(options.max_units == 0 || index_t(levels.front().units.size()) <= options.max_units,
                    "hierarchical: max_units (" + std::to_string(options.max_units) +
                        ") is below the " + std::to_string(levels.front().units.size()) +
                        " units of the coarsest level, which are all measured");

    config level_cfg = cfg;
    level_cfg.normalize = false;  // ranks and the threshold use unnormalised scores
    raw_deltas merged;
    // measured[l][u]: the deltas of unit u of level l, when it was measured.
    std::vector<std::vector<const perturbation_deltas*>> measured;
    for (const detail::search_level& level : levels) measured.emplace_back(level.units.size(), nullptr);
    std::vector<raw_deltas> level_deltas(static_cast<std::size_t>(n_levels));
    std::vector<index_t> selected(levels.front().units.size());
    std::iota(selected.begin(), selected.end(), index_t(0));
    index_t units_measured = 0;
    for (index_t l = 0; l < n_levels && !selected.empty(); ++l) {
        const detail::search_level& level = levels[l];
        explain_request sub = request;
        sub.units.clear();
        for (index_t u : selected) sub.units.push_back(level.units[u]);
        const plan p = detail::plan_request(engine, sub, level_cfg);
        level_deltas[l] = detail::run_plan(engine, sub, level_cfg, p, run_options);
        units_measured += index_t(selected.size());
        const raw_deltas& d = level_deltas[l];
        if (l == 0) merged.base_ce = d.base_ce, merged.contrast_base_ce = d.contrast_base_ce;
        merged.stats.passes += d.stats.passes;
        merged.stats.token_forwards += d.stats.token_forwards;
        for (const perturbation_deltas& row : d.rows) measured[l][selected[row.index]] = &row;
        if (l + 1 == n_levels) break;

        const explanation scored = detail::score_deltas(sub, level_cfg, d);
        std::vector<double> rank_value(selected.size());
        for (std::size_t k = 0; k < selected.size(); ++k) {
            const double score = scored.units[k].score;
            rank_value[k] = options.rank == refine_rank::magnitude ? std::abs(score)
                            : options.rank == refine_rank::per_unit
                                ? score / double(level.finest[selected[k]].size())
                                : score;
        }
        std::vector<index_t> order(selected.size());
        std::iota(order.begin(), order.end(), index_t(0));
        std::stable_sort(order.begin(), order.end(),
                         [&](index_t a, index_t b) { return rank_value[a] > rank_value[b]; });
        std::vector<index_t> children(level.units.size(), 0);
        const std::vector<index_t>& parents = levels[l + 1].parent;
        for (index_t parent : parents) children[parent] += 1;
        std::vector<bool> refined(level.units.size(), false);
        index_t taken = 0, committed = units_measured;  // the budget: measured and to measure
        for (index_t k : order) {
            if (options.top_k > 0 && taken == options.top_k) break;
            if (!(rank_value[k] >= options.threshold)) break;  // ranked: the rest are lower
            const index_t u = selected[k];
            if (options.max_units > 0 && committed + children[u] > options.max_units) continue;
            refined[u] = true;
            committed += children[u];
            ++taken;
        }
        selected.clear();
        for (index_t c = 0; c < index_t(parents.size()); ++c)
            if (refined[parents[c]]) selected.push_back(c);
    }

    // The finest units' deltas: measured, or a share of the nearest measured ancestor's.
    const index_t n_units = index_t(request.units.size());
    std::vector<bool> is_measured(std::size_t(n_units), false);
    merged.rows.resize(std::size_t(n_units));
    for (index_t l = 0; l < n_levels; ++l) {
        for (index_t u = 0; u < index_t(levels[l].units.size()); ++u) {
            const perturbation_deltas* row = measured[l][u];
            if (row == nullptr) continue;
            const std::vector<index_t>& finest = levels[l].finest[u];
            const double share = 1.0 / double(finest.size());
            for (index_t f : finest) {
                perturbation_deltas& out = merged.rows[f];
                out = *row;
                out.index = f;
                for (double& x : out.target) x *= share;
                for (double& x : out.contrast) x *= share;
                is_measured[f] = l + 1 == n_levels;
            }
        }
    }
    explanation result = detail::score_deltas(request, cfg, merged);
    for (index_t f = 0; f < n_units; ++f) result.units[f].measured = is_measured[f];
    result.stats.units_measured = units_measured;
    result.stats.seconds = detail::seconds_since(started);
    return result;
}

}  // namespace atman
