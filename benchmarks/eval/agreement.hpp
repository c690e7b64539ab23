#pragma once
// How far an approximate explanation agrees with the exact one over the same
// units (atman-long, docs/hierarchical.md): the share of the exact top k in
// the approximate top k, Spearman's rank correlation, and where the answer ranks.

#include <atman/config.hpp>
#include <atman/error.hpp>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

namespace atman::eval {

// The indices of the k highest scores, highest first; ties to the lower index.
inline std::vector<index_t> top_indices(const std::vector<double>& scores, index_t k) {
    std::vector<index_t> order(scores.size());
    std::iota(order.begin(), order.end(), index_t(0));
    std::stable_sort(order.begin(), order.end(), [&](index_t a, index_t b) { return scores[a] > scores[b]; });
    order.resize(std::size_t(std::min<index_t>(k, index_t(order.size()))));
    return order;
}

// The 1-based rank of the highest-ranked unit labelled 1 (ties to the lower
// index), or 0 when no unit is labelled. Rank-based, unlike the eval's AP (a
// share of the relevance mass): on a long document the mass spreads over
// hundreds of words even when the answer word ranks first.
inline index_t answer_rank(const std::vector<double>& scores, const std::vector<int>& labels) {
    atman::detail::require(scores.size() == labels.size(), "answer_rank: needs one label per score");
    const std::vector<index_t> order = top_indices(scores, index_t(scores.size()));
    for (std::size_t r = 0; r < order.size(); ++r)
        if (labels[std::size_t(order[r])] == 1) return index_t(r) + 1;
    return 0;
}

// |top k of a  and  top k of b| / k' with k' = min(k, size); a and b score the same units.
inline double top_k_overlap(const std::vector<double>& a, const std::vector<double>& b, index_t k) {
    atman::detail::require(a.size() == b.size() && !a.empty() && k >= 1,
                           "top_k_overlap: needs two non-empty score lists of one size and k >= 1");
    std::vector<index_t> ta = top_indices(a, k), tb = top_indices(b, k);
    std::sort(ta.begin(), ta.end());
    std::sort(tb.begin(), tb.end());
    std::vector<index_t> both;
    std::set_intersection(ta.begin(), ta.end(), tb.begin(), tb.end(), std::back_inserter(both));
    return double(both.size()) / double(ta.size());
}

// Ranks 1..n, ties getting the mean of the ranks they span.
inline std::vector<double> mid_ranks(const std::vector<double>& values) {
    std::vector<index_t> order(values.size());
    std::iota(order.begin(), order.end(), index_t(0));
    std::sort(order.begin(), order.end(), [&](index_t a, index_t b) { return values[a] < values[b]; });
    std::vector<double> ranks(values.size());
    for (std::size_t i = 0; i < order.size();) {
        std::size_t j = i;
        while (j + 1 < order.size() && values[order[j + 1]] == values[order[i]]) ++j;
        for (std::size_t k = i; k <= j; ++k) ranks[order[k]] = double(i + j) / 2 + 1;
        i = j + 1;
    }
    return ranks;
}

// Pearson's correlation of the mid-ranks; NaN when either list is constant.
inline double spearman(const std::vector<double>& a, const std::vector<double>& b) {
    atman::detail::require(a.size() == b.size() && a.size() >= 2,
                           "spearman: needs two score lists of one size, at least 2 each");
    const std::vector<double> ra = mid_ranks(a), rb = mid_ranks(b);
    const double mean = (double(a.size()) + 1) / 2;
    double ab = 0, aa = 0, bb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        ab += (ra[i] - mean) * (rb[i] - mean);
        aa += (ra[i] - mean) * (ra[i] - mean);
        bb += (rb[i] - mean) * (rb[i] - mean);
    }
    return aa > 0 && bb > 0 ? ab / std::sqrt(aa * bb) : std::nan("");
}

}  // namespace atman::eval
