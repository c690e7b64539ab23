#pragma once
// The rows of one batch of a plan as an engine receives them (adapter.hpp's
// batch_view): for each perturbation the keys it touches with their factors,
// and the same as a dense vector of T factors. Built once per batch from the
// plan's sparse perturbations, which are validated once per explanation, so
// neither the engine nor the attention kernels search or check them again.

#include <algorithm>
#include <vector>

#include "adapter.hpp"
#include "config.hpp"
#include "scheduler.hpp"

namespace atman {

class batch_rows {
public:
    // The rows of batch b of p over a sequence of `length` positions (each
    // perturbation's positions must lie below it). A perturbation whose
    // factors are all 1 touches nothing and gets no row: it cannot change the
    // pass, so its deltas are exactly 0. Reuses this object's buffers.
    void assign(const plan& p, const batch& b, index_t length, manipulation_mode mode) {
        assign(p.perturbations, b.begin, b.end, length, mode);
    }
    // The same for perturbations[begin, end) of any list (validate_plan's
    // rules); plan_index counts from the start of the list.
    void assign(const std::vector<perturbation>& perturbations, index_t begin, index_t end,
                index_t length, manipulation_mode mode) {
        mode_ = mode;
        length_ = length;
        plan_index_.clear();
        touched_.clear();
        touched_factors_.clear();
        touched_offset_.assign(1, 0);
        for (index_t i = begin; i < end; ++i) {
            const perturbation& x = perturbations[i];
            for (std::size_t k = 0; k < x.positions.size(); ++k) {
                if (x.factors[k] == 1.0f) continue;
                touched_.push_back(x.positions[k]);
                touched_factors_.push_back(x.factors[k]);
            }
            if (index_t(touched_.size()) == touched_offset_.back()) continue;
            touched_offset_.push_back(index_t(touched_.size()));
            plan_index_.push_back(i);
        }
        const index_t n_rows = size();
        dense_.assign(std::size_t(n_rows * length), 1.0f);
        rows_.resize(std::size_t(n_rows));
        for (index_t r = 0; r < n_rows; ++r) {
            const index_t first = touched_offset_[r], count = touched_offset_[r + 1] - first;
            float* const dense = dense_.data() + r * length;
            for (index_t k = first; k < first + count; ++k) dense[touched_[k]] = touched_factors_[k];
            rows_[r] = {touched_[first], dense, touched_.data() + first,
                        touched_factors_.data() + first, count};
        }
    }

    index_t size() const { return index_t(plan_index_.size()); }
    // The view is valid until the next assign.
    batch_view view() const { return {mode_, rows_.data(), size()}; }
    const row_view& row(index_t r) const { return rows_[r]; }
    // The perturbation of the plan that row r runs.
    index_t plan_index(index_t r) const { return plan_index_[r]; }
    // Positions the rows recompute with prefix reuse: sum of T - first_affected.
    index_t token_rows() const {
        index_t sum = 0;
        for (const row_view& r : rows_) sum += length_ - r.first_affected;
        return sum;
    }

private:
    manipulation_mode mode_ = manipulation_mode::multiplicative;
    index_t length_ = 0;
    std::vector<index_t> plan_index_, touched_, touched_offset_;
    std::vector<float> touched_factors_, dense_;
    std::vector<row_view> rows_;
};

}  // namespace atman
