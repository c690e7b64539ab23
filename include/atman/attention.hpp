#pragma once
// Fused CPU attention with AtMan manipulation: causal, grouped-query (GQA),
// queries at an offset, keys split between a shared read-only prefix (the base
// pass's KV cache) and the row's own recomputed suffix.
//
// For query position q and key j <= q: S_qj = scale * (q_q . k_j), the key
// factors manipulate S_q (manipulation.hpp), then softmax over j <= q and the
// weighted sum of the values. Working memory: one query tile x T score buffer
// per thread plus the list of each row's manipulated keys. The descriptors
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

// The check validate_attention_row_layout leaves out: here the factors are
// host memory. With a touched list only its positions below the row's key
// count are read, so only they are checked (and the list's order).
template <class Scalar>
void validate_row_key_factors(const attention_row<Scalar>& row, index_t index) {
    if (row.key_factors == nullptr) return;
    const index_t n_keys = row.prefix.length + row.own.length;
    const auto where = [&] { return "attend: row " + std::to_string(index) + ": "; };
    const auto check_factor = [&](index_t j) {
        const float phi = row.key_factors[j];
        if (!(std::isfinite(phi) && phi >= 0)) {
            throw invalid_argument(where() + "key_factors[" + std::to_string(j) +
                                   "] must be a finite number >= 0, got " + std::to_string(phi));
        }
    };
    if (row.touched == nullptr) {
        const index_t bad = first_invalid_factor(row.key_factors, n_keys);
        if (bad >= 0) check_factor(bad);
        return;
    }
    if (row.n_touched < 0) throw invalid_argument(where() + "n_touched must be >= 0");
    for (index_t k = 0; k < row.n_touched; ++k) {
        const index_t j = row.touched[k];
        if (j < 0 || (k > 0 && row.touched[k - 1] >= j)) {
            throw invalid_argument(where() + "touched[" + std::to_string(k) + "] = " +
                                   std::to_string(j) +
                                   ": positions must be ascending and >= 0");
        }
        if (j >= n_keys) break;
        check_factor(j);
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

    // Each row's manipulated keys (factor != 1, among those its queries can
    // see) with their coefficients, once per row, shared by all heads: from
    // its touched list, else from a scan of its factors. Rows with many also
    // get every key's coefficient (detail::manipulated_keys).
    std::vector<index_t> keys_offset(n_rows + 1, 0), key_index, dense_offset(n_rows, -1);
    std::vector<Scalar> key_coefficient, dense_coefficient;
    for (index_t r = 0; r < n_rows; ++r) {
        const attention_row<Scalar>& row = rows[r];
        const index_t n_keys = row.key_factors != nullptr ? row.q_begin + row.n_queries : 0;
        const auto add_key = [&](index_t j) {
            if (row.key_factors[j] == 1.0f) return;
            key_index.push_back(j);
            key_coefficient.push_back(atman::key_coefficient<Scalar>(row.mode, row.key_factors[j]));
        };
        if (row.touched != nullptr) {
            for (index_t k = 0; k < row.n_touched && row.touched[k] < n_keys; ++k) add_key(row.touched[k]);
        } else {
            for (index_t j = 0; j < n_keys; ++j) add_key(j);
        }
        keys_offset[r + 1] = index_t(key_index.size());
        if ((keys_offset[r + 1] - keys_offset[r]) * detail::sparse_keys_divisor > n_keys) {
            dense_offset[r] = index_t(dense_coefficient.size());
            for (index_t j = 0; j < n_keys; ++j)
                dense_coefficient.push_back(atman::key_coefficient<Scalar>(row.mode, row.key_factors[j]));
        }
    }
    const index_t n_tasks = n_rows * shape.n_kv_head;
    const auto keys_of_row = [&](index_t r) {
        const index_t first = keys_offset[r];
        return detail::manipulated_keys<Scalar>{
            key_index.data() + first, key_coefficient.data() + first, keys_offset[r + 1] - first,
            dense_offset[r] >= 0 ? dense_coefficient.data() + dense_offset[r] : nullptr};
    };

#ifdef _OPENMP
#pragma omp parallel
#endif
    {
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
                keys_of_row(task / shape.n_kv_head),
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
