#pragma once
// Comparing a GPU neighbourhood with the CPU one when similarities differ by
// float rounding: a pair may appear on one side only if its similarity lies
// within eps of kappa (or of the last kept similarity of a capped row).

#include <atman/neighborhood.hpp>
#include <cmath>
#include <map>
#include <string>

namespace atman::cuda_test {

// Empty when `actual` matches `expected` as described above; otherwise the first difference.
inline std::string neighborhood_mismatch(const neighborhood& actual, const neighborhood& expected,
                                         double kappa, index_t max_neighbors, double eps) {
    if (actual.size() != expected.size())
        return "sizes " + std::to_string(actual.size()) + " and " + std::to_string(expected.size());
    if (actual.neighbors.size() != actual.similarity.size() ||
        actual.offsets.back() != index_t(actual.neighbors.size()))
        return "inconsistent CSR arrays";
    const auto row_of = [](const neighborhood& h, index_t i) {
        std::map<index_t, float> row;
        for (index_t k = h.offsets[std::size_t(i)]; k < h.offsets[std::size_t(i) + 1]; ++k)
            row.emplace(h.neighbors[std::size_t(k)], h.similarity[std::size_t(k)]);
        return row;
    };
    for (index_t i = 0; i < actual.size(); ++i) {
        const std::string where = "row " + std::to_string(i) + ": ";
        for (index_t k = actual.offsets[std::size_t(i)] + 1; k < actual.offsets[std::size_t(i) + 1]; ++k) {
            const float before = actual.similarity[std::size_t(k - 1)], here = actual.similarity[std::size_t(k)];
            if (before < here || (before == here && actual.neighbors[std::size_t(k - 1)] > actual.neighbors[std::size_t(k)]))
                return where + "not sorted by decreasing similarity, then increasing position";
        }
        const std::map<index_t, float> got = row_of(actual, i), want = row_of(expected, i);
        const auto boundary = [&](const std::map<index_t, float>& row, float s) {
            if (std::fabs(s - kappa) <= eps) return true;
            if (max_neighbors == 0 || index_t(row.size()) < max_neighbors) return false;
            float last = 2;
            for (const auto& entry : row) last = std::fmin(last, entry.second);
            return std::fabs(s - last) <= eps;
        };
        for (const auto& [j, s] : want) {
            const auto found = got.find(j);
            if (found == got.end()) {
                if (!boundary(got, s)) return where + "neighbour " + std::to_string(j) + " (s = " + std::to_string(s) + ") missing";
            } else if (std::fabs(found->second - s) > eps) {
                return where + "neighbour " + std::to_string(j) + ": similarity " + std::to_string(found->second) +
                       ", expected " + std::to_string(s);
            }
        }
        for (const auto& [j, s] : got) {
            if (want.count(j) == 0 && !boundary(want, s))
                return where + "unexpected neighbour " + std::to_string(j) + " (s = " + std::to_string(s) + ")";
        }
    }
    return {};
}

}  // namespace atman::cuda_test
