#pragma once
// The scheduler: one perturbation per unit (its sparse key factors and first
// affected position), batches under a budget, and deterministic shards
// (atman-method.md, sections 3 and 5).
//
// A perturbation of unit U with factor phi = config.factor sets phi_i = phi
// for every i in U. With config.conceptual, every neighbour j of an i in U
// (neighborhood.hpp) gets phi_j = 1 - (1 - phi) * max(s_ij, 0); several
// sources touching one j combine by the strongest effect: the minimum when
// phi < 1 (suppression), the maximum when phi > 1 (amplification). Only
// positions of some unit (the explain range) may be neighbours, and U's own
// positions keep phi. All other keys keep 1.
//
// With config.explain_targets_by_earlier_targets the plan also suppresses
// each target token inside the sequence, y_t at position first_scored + 1 + t
// (t = 0 .. m-2), alone; it can only change the targets after it.
//
// Perturbations are sorted by first affected position p (then kind, then
// index), so a batch holds rows with similar suffix lengths T - p; consecutive
// perturbations fill a batch until it would exceed the budget (batch_budget):
// config.max_batch_rows rows or config.max_batch_token_rows recomputed
// token-rows, sum of T - p. A perturbation above the token-row bound on its
// own gets a batch of its own.

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "config.hpp"
#include "error.hpp"
#include "neighborhood.hpp"
#include "units.hpp"

namespace atman {

// The automatic budget, when config leaves both bounds at 0: batches of about
// default_batch_token_rows recomputed positions. An engine's costs per pass
// (packing the weights for each GEMM, handing work to threads) are then spread
// over enough positions, and a batch's activations still fit the cache next
// to the weights' panels. On the reference engine a 2048 budget ran at 0.72x
// the best fixed batch size, 1024 at 0.93x (docs/performance.md).
inline constexpr index_t default_batch_token_rows = 1024;
// The row bound when config.max_batch_rows is 0: each row carries a T-long
// factor vector and its own attention tasks.
inline constexpr index_t default_max_batch_rows = 64;

struct batch_budget {
    index_t max_rows = 0;
    index_t max_token_rows = 0;  // 0: unbounded
};

// The bounds a plan's batches respect under cfg: max_batch_rows (0: the
// default row bound) and max_batch_token_rows (0: none, unless both are 0,
// which selects the automatic budget above).
inline batch_budget resolve_batch_budget(const config& cfg) {
    if (cfg.max_batch_rows == 0 && cfg.max_batch_token_rows == 0)
        return {default_max_batch_rows, default_batch_token_rows};
    return {cfg.max_batch_rows > 0 ? cfg.max_batch_rows : default_max_batch_rows,
            cfg.max_batch_token_rows};
}

enum class perturbation_kind {
    unit,   // a prompt unit; index into the unit list
    target  // one earlier target token; index t of y_t
};

struct perturbation {
    perturbation_kind kind = perturbation_kind::unit;
    index_t index = 0;
    index_t first_affected = 0;  // positions.front(): the row recomputes positions >= it
    std::vector<index_t>
        positions;  // sorted; the keys whose factor is not 1 (the unit's own always listed)
    std::vector<float> factors;  // factors[k] applies to key positions[k]

    // Sum of positions the row recomputes in a sequence of `length` positions.
    index_t token_rows(index_t length) const { return length - first_affected; }

};

struct batch {
    index_t begin = 0, end = 0;  // perturbations [begin, end) of the plan
    index_t token_rows = 0;
};

struct plan {
    index_t length = 0;  // T, the sequence the costs refer to
    index_t max_rows = 0,
            max_token_rows = 0;  // the budget batches respect (0 token rows: unbounded)
    std::vector<perturbation> perturbations;  // sorted by first affected position
    std::vector<batch> batches;

    index_t token_rows() const {
        index_t sum = 0;
        for (const batch& b : batches) sum += b.token_rows;
        return sum;
    }
};

// What the plan needs to know about the sequence.
struct plan_inputs {
    index_t length = 0;        // T = n + m - 1
    index_t first_scored = 0;  // n - 1: units lie in positions 0..n-1
    const neighborhood* neighbours =
        nullptr;  // over positions 0..T-1; required when config.conceptual
};

namespace detail {

inline bool plan_order(const perturbation& a, const perturbation& b) {
    return std::tie(a.first_affected, a.kind, a.index) <
           std::tie(b.first_affected, b.kind, b.index);
}

inline std::vector<batch> make_batches(const std::vector<perturbation>& perturbations,
                                       index_t length, index_t max_rows, index_t max_token_rows) {
    std::vector<batch> batches;
    for (index_t i = 0; i < index_t(perturbations.size()); ++i) {
        const index_t cost = perturbations[i].token_rows(length);
        const bool fits =
            !batches.empty() && batches.back().end - batches.back().begin < max_rows &&
            (max_token_rows == 0 || batches.back().token_rows + cost <= max_token_rows);
        if (!fits) batches.push_back({i, i, 0});
        batches.back().end = i + 1;
        batches.back().token_rows += cost;
    }
    return batches;
}

inline perturbation suppress_unit(index_t index, const unit& u, const std::vector<bool>& in_units,
                                  const neighborhood* neighbours, const config& cfg) {
    const float phi = float(cfg.factor);
    std::vector<std::pair<index_t, float>>
        touched;  // (position, factor), sources may repeat positions
    for (index_t i : u.positions) touched.emplace_back(i, phi);
    if (cfg.conceptual) {
        for (index_t i : u.positions) {
            for (index_t k = neighbours->offsets[i]; k < neighbours->offsets[i + 1]; ++k) {
                const index_t j = neighbours->neighbors[k];
                if (!in_units[j] || std::binary_search(u.positions.begin(), u.positions.end(), j))
                    continue;
                const double s = std::max(double(neighbours->similarity[k]), 0.0);
                touched.emplace_back(j, float(1 - (1 - cfg.factor) * s));
            }
        }
    }
    const bool amplify = cfg.factor > 1;
    std::sort(touched.begin(), touched.end(), [&](const auto& a, const auto& b) {
        return a.first < b.first ||
               (a.first == b.first && (amplify ? a.second > b.second : a.second < b.second));
    });
    perturbation p{perturbation_kind::unit, index, 0, {}, {}};
    for (const auto& [j, factor] : touched) {
        const bool own = std::binary_search(u.positions.begin(), u.positions.end(), j);
        if ((!p.positions.empty() && p.positions.back() == j) || (factor == 1.0f && !own)) continue;
        p.positions.push_back(j);
        p.factors.push_back(factor);
    }
    p.first_affected = p.positions.front();
    return p;
}

inline void validate_neighbours(const neighborhood& nb, index_t length) {
    require(nb.size() == length, "neighbourhood covers " + std::to_string(nb.size()) +
                                     " positions, the sequence has " + std::to_string(length));
    require(nb.offsets.front() == 0 && nb.offsets.back() == index_t(nb.neighbors.size()) &&
                nb.neighbors.size() == nb.similarity.size() &&
                std::is_sorted(nb.offsets.begin(), nb.offsets.end()),
            "neighbourhood: offsets, neighbors and similarity do not form a CSR");
    for (std::size_t k = 0; k < nb.neighbors.size(); ++k) {
        require(nb.neighbors[k] >= 0 && nb.neighbors[k] < length,
                "neighbourhood: neighbour " + std::to_string(nb.neighbors[k]) +
                    " lies outside the sequence");
        require(std::isfinite(nb.similarity[k]), "neighbourhood: similarity is not finite");
    }
}

}  // namespace detail

// Throws invalid_argument unless p is well formed: every perturbation lists
// sorted positions inside the sequence with as many finite factors >= 0 and
// starts at its first position, and the batches cover the perturbations in
// order. For plans that did not come from make_plan (another process, a file).
inline void validate_plan(const plan& p) {
    detail::require(p.length >= 1, "plan: length must be >= 1, got " + std::to_string(p.length));
    for (std::size_t k = 0; k < p.perturbations.size(); ++k) {
        const perturbation& x = p.perturbations[k];
        const std::string name = "plan: perturbation " + std::to_string(k);
        detail::require(!x.positions.empty() && x.positions.size() == x.factors.size(),
                        name + " needs as many factors as positions, and at least one");
        detail::require(x.first_affected == x.positions.front(),
                        name + ": first_affected must be its first position");
        for (std::size_t i = 0; i < x.positions.size(); ++i) {
            detail::require(x.positions[i] >= 0 && x.positions[i] < p.length &&
                                (i == 0 || x.positions[i - 1] < x.positions[i]),
                            name + ": positions must be sorted, distinct and inside the sequence");
            detail::require(std::isfinite(x.factors[i]) && x.factors[i] >= 0,
                            name + ": factors must be finite and >= 0");
        }
    }
    index_t next = 0;
    for (const batch& b : p.batches) {
        detail::require(b.begin == next && b.end > b.begin,
                        "plan: batches must cover the perturbations in order, each non-empty");
        next = b.end;
    }
    detail::require(next == index_t(p.perturbations.size()),
                    "plan: batches must cover every perturbation");
}

// make_plan for inputs it has validated already (or that were built valid:
// units checked with validate_units, a neighbourhood from find_neighbors).
inline plan build_plan(const std::vector<unit>& units, const plan_inputs& in, const config& cfg) {
    std::vector<bool> in_units(std::size_t(in.length), false);
    for (const unit& u : units)
        for (index_t i : u.positions) in_units[i] = true;

    plan result;
    result.length = in.length;
    const batch_budget budget = resolve_batch_budget(cfg);
    result.max_rows = budget.max_rows;
    result.max_token_rows = budget.max_token_rows;
    for (std::size_t k = 0; k < units.size(); ++k)
        result.perturbations.push_back(
            detail::suppress_unit(index_t(k), units[k], in_units, in.neighbours, cfg));
    if (cfg.explain_targets_by_earlier_targets) {
        for (index_t position = in.first_scored + 1; position < in.length; ++position) {
            result.perturbations.push_back({perturbation_kind::target,
                                            position - in.first_scored - 1,
                                            position,
                                            {position},
                                            {float(cfg.factor)}});
        }
    }
    std::sort(result.perturbations.begin(), result.perturbations.end(), detail::plan_order);
    result.batches = detail::make_batches(result.perturbations, result.length, result.max_rows,
                                          result.max_token_rows);
    return result;
}

// The full plan for `units` (see the top of this file). Throws invalid_argument
// on a bad config, bad units (units.hpp, validate_unit_positions over the
// prompt positions), no units, or a missing or mismatched neighbourhood.
inline plan make_plan(const std::vector<unit>& units, const plan_inputs& in, const config& cfg) {
    cfg.validate();
    detail::require(in.first_scored >= 0 && in.first_scored < in.length,
                    "plan: first_scored (" + std::to_string(in.first_scored) +
                        ") must lie in the sequence of " + std::to_string(in.length) +
                        " positions");
    detail::require(!units.empty(), "plan: there are no units to explain");
    validate_unit_positions(units, in.first_scored + 1);
    if (cfg.conceptual) {
        detail::require(in.neighbours != nullptr,
                        "plan: config.conceptual needs the neighbourhood of the sequence");
        detail::validate_neighbours(*in.neighbours, in.length);
    }
    return build_plan(units, in, cfg);
}

// Shard k of `count`: the shards of one plan are disjoint, their union is the
// plan, and their token-rows are balanced (largest perturbation first, each to
// the shard with the fewest token-rows so far; ties to the lower shard). Each
// shard is batched again under the plan's budget. Deterministic.
inline plan shard(const plan& full, index_t k, index_t count) {
    detail::require(count >= 1 && k >= 0 && k < count,
                    "shard: need 0 <= k < count, got k = " + std::to_string(k) +
                        ", count = " + std::to_string(count));
    const std::vector<perturbation>& all = full.perturbations;
    std::vector<index_t> by_cost(all.size());
    std::iota(by_cost.begin(), by_cost.end(), index_t(0));
    std::stable_sort(by_cost.begin(), by_cost.end(), [&](index_t a, index_t b) {
        return all[a].token_rows(full.length) > all[b].token_rows(full.length);
    });
    std::vector<index_t> load(std::size_t(count), 0);
    std::vector<bool> mine(all.size(), false);
    for (index_t i : by_cost) {
        const auto lightest = std::min_element(load.begin(), load.end()) - load.begin();
        load[lightest] += all[i].token_rows(full.length);
        mine[i] = lightest == k;
    }
    plan part;
    part.length = full.length;
    part.max_rows = full.max_rows;
    part.max_token_rows = full.max_token_rows;
    for (std::size_t i = 0; i < all.size(); ++i)
        if (mine[i]) part.perturbations.push_back(all[i]);
    part.batches =
        detail::make_batches(part.perturbations, part.length, part.max_rows, part.max_token_rows);
    return part;
}

}  // namespace atman
