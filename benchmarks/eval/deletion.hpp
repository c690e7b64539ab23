#pragma once
// The deletion measure of faithfulness (docs/quality.md): delete the top k% of
// the context units by a method's ranking, all at once, by suppressing the
// attention to their positions (factor 0.1, multiplicative mode), and measure
// the rise of the target's cross-entropy. A faithful ranking puts first the
// units whose removal hurts the target most.

#include <atman/config.hpp>
#include <atman/error.hpp>
#include <atman/scheduler.hpp>
#include <atman/units.hpp>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

namespace atman::eval {

// The units by decreasing relevance (signed: the most supportive first); equal
// relevance is ordered by tie_order (a permutation of the units), so a method
// that ranks nothing, like uniform, deletes a random set rather than the
// first words of the context.
inline std::vector<index_t> ranking(const std::vector<double>& relevance,
                                    const std::vector<index_t>& tie_order) {
    atman::detail::require(tie_order.size() == relevance.size(),
                           "ranking: tie order of " + std::to_string(tie_order.size()) +
                               " units for " + std::to_string(relevance.size()) + " units");
    std::vector<index_t> order = tie_order;
    std::vector<bool> seen(relevance.size(), false);
    for (index_t u : order) {
        atman::detail::require(0 <= u && u < index_t(relevance.size()) && !seen[std::size_t(u)],
                               "ranking: tie order is not a permutation of the units");
        seen[std::size_t(u)] = true;
    }
    std::stable_sort(order.begin(), order.end(),
                     [&](index_t a, index_t b) { return relevance[a] > relevance[b]; });
    return order;
}

// How many of n units the top `percent`% are: ceil(percent * n / 100), at least 1.
inline index_t deleted_count(index_t n_units, int percent) {
    atman::detail::require(n_units >= 1, "deleted_count: no units");
    atman::detail::require(percent > 0 && percent <= 100, "deleted_count: percent must lie in (0, 100], got " +
                                                              std::to_string(percent));
    return std::max<index_t>(1, (n_units * percent + 99) / 100);
}

// The perturbation deleting the first `count` (>= 1) units of `order`
// together: `factor` at each of their positions, of a sequence of `length`.
inline perturbation deletion_perturbation(const std::vector<unit>& units,
                                          const std::vector<index_t>& order, index_t count,
                                          index_t length, float factor) {
    atman::detail::require(1 <= count && count <= index_t(order.size()),
                           "deletion_perturbation: cannot delete " + std::to_string(count) + " of " +
                               std::to_string(order.size()) + " units");
    perturbation deleted;
    for (index_t k = 0; k < count; ++k) {
        const index_t u = order[std::size_t(k)];
        atman::detail::require(0 <= u && u < index_t(units.size()),
                               "deletion_perturbation: no unit " + std::to_string(u));
        for (index_t p : units[std::size_t(u)].positions) {
            atman::detail::require(0 <= p && p < length,
                                   "deletion_perturbation: unit position " + std::to_string(p) +
                                       " is outside the sequence of " + std::to_string(length));
            deleted.positions.push_back(p);
        }
    }
    std::sort(deleted.positions.begin(), deleted.positions.end());
    deleted.factors.assign(deleted.positions.size(), factor);
    deleted.first_affected = deleted.positions.front();
    return deleted;
}

}  // namespace atman::eval
