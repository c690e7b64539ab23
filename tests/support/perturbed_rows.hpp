#pragma once
// Rows for calling an engine's perturbed_pass directly, built as
// atman::explain builds them (atman/batch_rows.hpp), optionally without
// prefix reuse (every row recomputed from position 0).

#include <atman/batch_rows.hpp>

#include <algorithm>
#include <vector>

namespace atman_test {

// A unit perturbation of the sorted, distinct `positions`, one factor each.
inline atman::perturbation perturbation_at(const std::vector<atman::index_t>& positions,
                                           const std::vector<float>& factors) {
    return {atman::perturbation_kind::unit, 0, positions.front(), positions, factors};
}
// Factor phi at distinct positions in any order.
inline atman::perturbation perturbation_at(std::vector<atman::index_t> positions, float phi) {
    std::sort(positions.begin(), positions.end());
    return perturbation_at(positions, std::vector<float>(positions.size(), phi));
}

// A row by hand: factor 1 everywhere (`ones`, one per position) yet one
// touched position, recomputed from first_affected; atman::explain never
// sends one, an engine must return the base CE for it.
inline atman::row_view all_ones_row(const std::vector<float>& ones, const atman::index_t& touched,
                                    atman::index_t first_affected) {
    static const float one = 1.0f;
    return {first_affected, ones.data(), &touched, &one, 1};
}

class perturbed_rows {
public:
    perturbed_rows(const std::vector<atman::perturbation>& perturbations, atman::index_t length,
                   atman::manipulation_mode mode, bool reuse_prefix = true) {
        rows_.assign(perturbations, 0, atman::index_t(perturbations.size()), length, mode);
        for (atman::index_t r = 0; r < rows_.size(); ++r) {
            views_.push_back(rows_.row(r));
            if (!reuse_prefix) views_.back().first_affected = 0;
        }
    }
    atman::batch_view view() const {
        return {rows_.view().mode, views_.data(), atman::index_t(views_.size())};
    }

private:
    atman::batch_rows rows_;
    std::vector<atman::row_view> views_;
};

}  // namespace atman_test
