#pragma once
// The descriptors of attention.hpp's attend and of cuda::attend (cuda/attention.cuh),
// and their checks. Kept free of Eigen so that nvcc can include them without
// the kernels.

#include <cmath>
#include <string>

#include "config.hpp"
#include "error.hpp"

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
// Keys 0..prefix.length-1 come from `prefix` (e.g. the base pass's cache,
// shared by many rows), keys prefix.length .. prefix.length + own.length - 1
// from `own`; q_begin + n_queries must not exceed prefix.length + own.length.
// For cuda::attend every pointer is device memory.
template <class Scalar>
struct attention_row {
    // Element (i, head, d) at q[i * q_pos_stride + head * q_head_stride + d], i = 0..n_queries-1.
    const Scalar* q = nullptr;
    index_t q_pos_stride = 0, q_head_stride = 0;
    index_t q_begin = 0, n_queries = 0;
    kv_segment<Scalar> prefix, own;
    // prefix.length + own.length factors (cuda::attend reads only the first
    // q_begin + n_queries); nullptr = plain attention.
    const float* key_factors = nullptr;
    // Optional, CPU only: the positions j whose key_factors[j] is not 1,
    // ascending (row_view::touched of a batch, adapter.hpp), so that attend
    // reads and checks only those factors; nullptr = attend finds them itself
    // in one scan of key_factors.
    const index_t* touched = nullptr;
    index_t n_touched = 0;
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

// Everything but the key factors, which cuda::attend cannot read on the host.
// `where` starts every message ("attend: row 3: ").
template <class Scalar>
void validate_attention_row_layout(const attention_row<Scalar>& row, const std::string& where) {
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
}

// The row array of a call to attend or cuda::attend (`who`).
template <class Scalar>
void validate_attention_rows(const attention_row<Scalar>* rows, index_t n_rows,
                             const std::string& who) {
    require(n_rows >= 0, who + ": n_rows must be >= 0, got " + std::to_string(n_rows));
    require(n_rows == 0 || rows != nullptr, who + ": rows is null");
    for (index_t r = 0; r < n_rows; ++r) {
        validate_attention_row_layout(rows[r], who + ": row " + std::to_string(r) + ": ");
    }
}

}  // namespace detail

}  // namespace atman
