#pragma once
// Fused CPU attention with AtMan manipulation: causal, grouped-query (GQA),
// queries at an offset, keys split between a shared read-only prefix (the base
// pass's KV cache) and the row's own recomputed suffix.
//
// For query position q and key j <= q: S_qj = scale * (q_q . k_j), the key
// factors manipulate S_q (manipulation.hpp), then softmax over j <= q and the
// weighted sum of the values. Working memory: one query tile x T score buffer
// per thread plus one T-vector of key coefficients per row. The descriptors
// (attention_shape, attention_row) are in attention_types.hpp.

#include <cmath>
#include <string>
#include <vector>

#include "attention_types.hpp"
#include "config.hpp"
#include "detail/kernels_attention.hpp"
#include "error.hpp"
#include "manipulation.hpp"

namespace atman {

namespace detail {

// The check validate_attention_row_layout leaves out: here the factors are host memory.
template <class Scalar>
void validate_row_key_factors(const attention_row<Scalar>& row, index_t index) {
    if (row.key_factors == nullptr) return;
    const index_t bad =
        first_invalid_factor(row.key_factors, row.prefix.length + row.own.length);
    if (bad >= 0) {
        throw invalid_argument("attend: row " + std::to_string(index) + ": key_factors[" +
                               std::to_string(bad) + "] must be a finite number >= 0, got " +
                               std::to_string(row.key_factors[bad]));
    }
}

}  // namespace detail

// Many rows; parallel over rows x KV heads with OpenMP when the caller compiles
// with it. All inputs are validated before any output is written.
template <class Scalar>
void attend(const attention_shape& shape, const attention_row<Scalar>* rows, index_t n_rows) {
    detail::validate_attention_shape(shape);
    detail::validate_attention_rows(rows, n_rows, "attend");
    for (index_t r = 0; r < n_rows; ++r) detail::validate_row_key_factors(rows[r], r);

    const Scalar scale =
        Scalar(shape.scale == 0 ? 1 / std::sqrt(double(shape.head_dim)) : shape.scale);
    const index_t group_size = shape.n_head / shape.n_kv_head;

    // Key coefficients once per row (keys a query of the row can see), shared by all heads.
    std::vector<index_t> coefficient_offset(n_rows + 1, 0);
    for (index_t r = 0; r < n_rows; ++r) {
        const index_t used = rows[r].key_factors ? rows[r].q_begin + rows[r].n_queries : 0;
        coefficient_offset[r + 1] = coefficient_offset[r] + used;
    }
    std::vector<Scalar> coefficients(coefficient_offset[n_rows]);
    const index_t n_tasks = n_rows * shape.n_kv_head;

#ifdef _OPENMP
#pragma omp parallel
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (index_t r = 0; r < n_rows; ++r) {
            for (index_t j = coefficient_offset[r]; j < coefficient_offset[r + 1]; ++j) {
                coefficients[j] = detail::key_coefficient<Scalar>(
                    rows[r].mode, rows[r].key_factors[j - coefficient_offset[r]]);
            }
        }

        detail::attention_workspace<Scalar> work;
#ifdef _OPENMP
#pragma omp for schedule(dynamic)
#endif
        for (index_t task = 0; task < n_tasks; ++task) {
            const attention_row<Scalar>& row = rows[task / shape.n_kv_head];
            const index_t kv_head = task % shape.n_kv_head;
            if (row.n_queries == 0) continue;
            const index_t first_head = kv_head * group_size;
            const auto key_view = [&](const kv_segment<Scalar>& s) {
                if (s.length == 0) return detail::kv_head_view<Scalar>{};
                return detail::kv_head_view<Scalar>{s.k + kv_head * s.head_stride,
                                                    s.v + kv_head * s.head_stride, s.length,
                                                    s.pos_stride};
            };
            detail::attend_head_group<Scalar>(
                {row.q + first_head * row.q_head_stride, row.q_pos_stride, row.q_head_stride},
                row.q_begin, row.n_queries, group_size, shape.head_dim, scale, key_view(row.prefix),
                key_view(row.own),
                row.key_factors ? coefficients.data() + coefficient_offset[task / shape.n_kv_head]
                                : nullptr,
                row.mode,
                {row.out + first_head * row.out_head_stride, row.out_pos_stride,
                 row.out_head_stride},
                work);
        }
    }
}

// One row (one perturbation) of causal attention.
template <class Scalar>
void attend(const attention_shape& shape, const attention_row<Scalar>& row) {
    attend(shape, &row, 1);
}

}  // namespace atman
