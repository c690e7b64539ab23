#pragma once
// Fused CPU attention with AtMan manipulation: causal, grouped-query (GQA),
// queries at an offset, keys split between a shared read-only prefix (the base
// pass's KV cache) and the row's own recomputed suffix.
//
// For query position q and key j <= q: S_qj = scale * (q_q . k_j), the key
// factors manipulate S_q (manipulation.hpp), then softmax over j <= q and the
// weighted sum of the values. Working memory: one query tile x T score buffer
// per thread plus one T-vector of key coefficients per row.

#include <cmath>
#include <string>
#include <vector>

#include "config.hpp"
#include "detail/kernels_attention.hpp"
#include "error.hpp"
#include "manipulation.hpp"

namespace atman {

struct attention_shape {
    index_t n_head = 0, n_kv_head = 0, head_dim = 0;  // n_head a multiple of n_kv_head (GQA)
    double scale = 0;                                 // 0 = 1/sqrt(head_dim)
};

// Keys and values of consecutive positions: element (pos, kv_head, d) of K is
// k[pos * pos_stride + kv_head * head_stride + d]; V uses the same strides.
template <class Scalar>
struct kv_segment {
    const Scalar* k = nullptr;
    const Scalar* v = nullptr;
    index_t length = 0, pos_stride = 0, head_stride = 0;
};

// One row (one perturbation) of causal attention. Queries are positions
// q_begin .. q_begin + n_queries - 1; the query at position q sees keys 0..q.
// Keys 0..prefix.length-1 come from `prefix`, keys prefix.length ..
// prefix.length + own.length - 1 from `own`; q_begin + n_queries must not
// exceed prefix.length + own.length.
template <class Scalar>
struct attention_row {
    // Element (i, head, d) at q[i * q_pos_stride + head * q_head_stride + d], i = 0..n_queries-1.
    const Scalar* q = nullptr;
    index_t q_pos_stride = 0, q_head_stride = 0;
    index_t q_begin = 0, n_queries = 0;
    kv_segment<Scalar> prefix, own;
    // prefix.length + own.length factors; nullptr = plain attention.
    const float* key_factors = nullptr;
    manipulation_mode mode = manipulation_mode::multiplicative;
    Scalar* out = nullptr;  // same layout as q
    index_t out_pos_stride = 0, out_head_stride = 0;
};

namespace detail {

inline void validate_attention_shape(const attention_shape& shape) {
    require(shape.n_head >= 1 && shape.n_kv_head >= 1 && shape.head_dim >= 1,
            "attention shape: n_head, n_kv_head and head_dim must be >= 1, got " +
                std::to_string(shape.n_head) + ", " + std::to_string(shape.n_kv_head) + ", " +
                std::to_string(shape.head_dim));
    require(shape.n_head % shape.n_kv_head == 0,
            "attention shape: n_head (" + std::to_string(shape.n_head) +
                ") must be a multiple of n_kv_head (" + std::to_string(shape.n_kv_head) + ")");
    require(std::isfinite(shape.scale) && shape.scale >= 0,
            "attention shape: scale must be finite and >= 0 (0 = 1/sqrt(head_dim)), got " +
                std::to_string(shape.scale));
}

template <class Scalar>
void validate_kv_segment(const kv_segment<Scalar>& segment, const std::string& name) {
    require(segment.length >= 0,
            name + ".length must be >= 0, got " + std::to_string(segment.length));
    require(segment.pos_stride >= 0 && segment.head_stride >= 0, name + " strides must be >= 0");
    require(segment.length == 0 || (segment.k != nullptr && segment.v != nullptr),
            name + ".k and " + name + ".v must not be null when " + name + ".length > 0");
}

template <class Scalar>
void validate_attention_row(const attention_row<Scalar>& row, index_t index) {
    const std::string where = "attend: row " + std::to_string(index) + ": ";
    validate_kv_segment(row.prefix, where + "prefix");
    validate_kv_segment(row.own, where + "own");
    const index_t n_keys = row.prefix.length + row.own.length;
    require(row.q_begin >= 0 && row.n_queries >= 0,
            where + "q_begin and n_queries must be >= 0, got " + std::to_string(row.q_begin) +
                " and " + std::to_string(row.n_queries));
    require(row.q_begin + row.n_queries <= n_keys,
            where + "queries end at position " + std::to_string(row.q_begin + row.n_queries) +
                " but only " + std::to_string(n_keys) + " keys (prefix + own) exist");
    require(row.q_pos_stride >= 0 && row.q_head_stride >= 0 && row.out_pos_stride >= 0 &&
                row.out_head_stride >= 0,
            where + "query and output strides must be >= 0");
    require(row.n_queries == 0 || (row.q != nullptr && row.out != nullptr),
            where + "q and out must not be null when n_queries > 0");
    if (row.key_factors != nullptr) {
        const index_t bad = first_invalid_factor(row.key_factors, n_keys);
        if (bad >= 0) {
            throw invalid_argument(where + "key_factors[" + std::to_string(bad) +
                                   "] must be a finite number >= 0, got " +
                                   std::to_string(row.key_factors[bad]));
        }
    }
}

}  // namespace detail

// Many rows; parallel over rows x KV heads with OpenMP when the caller compiles
// with it. All inputs are validated before any output is written.
template <class Scalar>
void attend(const attention_shape& shape, const attention_row<Scalar>* rows, index_t n_rows) {
    detail::require(n_rows >= 0, "attend: n_rows must be >= 0, got " + std::to_string(n_rows));
    detail::require(n_rows == 0 || rows != nullptr, "attend: rows is null");
    detail::validate_attention_shape(shape);
    for (index_t r = 0; r < n_rows; ++r) detail::validate_attention_row(rows[r], r);

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
