#pragma once
// The inner kernel of atman::attend: causal attention of one row's queries for
// one KV head and the query heads that share it (GQA), one tile at a time.
//
// A tile stacks the queries of a few consecutive positions, all heads of the
// group, into one matrix; scores = tile * K^T and out = P * V are Eigen GEMMs
// reading K and V in place through strided maps. Working memory is one
// tile x T score buffer, never a T x T matrix.

#include <algorithm>
#include <limits>
#include <tuple>
#include <utility>

#include "../config.hpp"
#include "../manipulation.hpp"
#include "kernels_eigen.hpp"

namespace atman::detail {

template <class Scalar>
using row_major_matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Rows of a strided array read in place: row r starts at data + r * stride.
template <class Scalar>
using strided_rows =
    Eigen::Map<const row_major_matrix<Scalar>, Eigen::Unaligned, Eigen::OuterStride<>>;

// Stacked query rows per tile: enough to make the GEMMs efficient, few enough
// that the tile x T score buffer stays in cache and little causal work is wasted.
inline constexpr index_t attention_tile_rows = 64;

// Queries or outputs of one head group: element (i, head r, d) at
// data[i * pos_stride + r * head_stride + d].
template <class Pointer>
struct head_group_view {
    Pointer data = nullptr;
    index_t pos_stride = 0, head_stride = 0;
};

// Keys and values of one KV head over consecutive positions: element (j, d)
// at k[j * pos_stride + d] (V alike).
template <class Scalar>
struct kv_head_view {
    const Scalar* k = nullptr;
    const Scalar* v = nullptr;
    index_t length = 0, pos_stride = 0;
};

template <class Scalar>
using row_array_map = Eigen::Map<Eigen::Array<Scalar, 1, Eigen::Dynamic>>;
template <class Scalar>
using const_row_array_map = Eigen::Map<const Eigen::Array<Scalar, 1, Eigen::Dynamic>>;

// Keys per chunk of a score row in the fused steps below: a chunk is still in
// L1 for the step's second operation, so memory sees each row once per step.
inline constexpr index_t score_chunk = 256;

// The keys of one row whose factor is not 1, ascending, with their
// key_coefficient. A perturbation touches a few keys, so manipulating only
// these costs next to nothing beside the row's softmax; every other key's
// score is its plain score, exactly as the dense formula gives for phi = 1.
// A row with many such keys also has every key's coefficient (`dense`), and
// is manipulated with vector operations instead.
template <class Scalar>
struct manipulated_keys {
    const index_t* index = nullptr;
    const Scalar* coefficient = nullptr;
    index_t count = 0;
    const Scalar* dense = nullptr;
};

// Above this share of manipulated keys, a row is manipulated densely.
inline constexpr index_t sparse_keys_divisor = 16;

// Smallest and largest of scores[0..n) in one pass: a block of 16 running
// minima and maxima (one to four vector registers), then the leftover scores.
template <class Scalar>
std::pair<Scalar, Scalar> row_min_max(const Scalar* scores, index_t n) {
    using block = Eigen::Array<Scalar, 16, 1>;
    Scalar low = std::numeric_limits<Scalar>::infinity(), high = -low;
    index_t i = 0;
    if (n >= 16) {
        block lows = Eigen::Map<const block>(scores), highs = lows;
        for (i = 16; i + 16 <= n; i += 16) {
            const Eigen::Map<const block> next(scores + i);
            lows = lows.min(next);
            highs = highs.max(next);
        }
        low = lows.minCoeff();
        high = highs.maxCoeff();
    }
    for (; i < n; ++i) {
        low = std::min(low, scores[i]);
        high = std::max(high, scores[i]);
    }
    return {low, high};
}

// The dense form of manipulate_and_max: every visible key, a chunk at a time,
// manipulated_score (manipulation.hpp) as Eigen array expressions.
template <class Scalar>
Scalar manipulate_all_and_max(manipulation_mode mode, Scalar* scores, const Scalar* coefficients,
                              index_t n) {
    const bool multiplicative = mode == manipulation_mode::multiplicative;
    const Scalar row_min = multiplicative ? const_row_array_map<Scalar>(scores, n).minCoeff() : 0;
    Scalar row_max = -std::numeric_limits<Scalar>::infinity();
    for (index_t first = 0; first < n; first += score_chunk) {
        row_array_map<Scalar> chunk(scores + first, std::min(score_chunk, n - first));
        const const_row_array_map<Scalar> coefficient(coefficients + first, chunk.size());
        if (multiplicative) {
            chunk = chunk + coefficient * (chunk - row_min);
        } else {
            chunk = chunk + coefficient;
        }
        row_max = std::max(row_max, chunk.maxCoeff());
    }
    return row_max;
}

// Manipulates the visible scores[0..n) in place and returns the largest
// manipulated score: one pass for the plain maximum (and the multiplicative
// minimum), then only the manipulated keys. A row whose maximum sat on a
// manipulated key takes one more pass for the new maximum.
template <class Scalar>
Scalar manipulate_and_max(manipulation_mode mode, Scalar* scores, index_t n,
                          const manipulated_keys<Scalar>& keys) {
    const index_t visible =
        index_t(std::lower_bound(keys.index, keys.index + keys.count, n) - keys.index);
    if (visible == 0) return const_row_array_map<Scalar>(scores, n).maxCoeff();
    if (keys.dense != nullptr) return manipulate_all_and_max(mode, scores, keys.dense, n);
    Scalar row_min = 0, row_max = 0;
    if (mode == manipulation_mode::multiplicative) {
        std::tie(row_min, row_max) = row_min_max(scores, n);
    } else {
        row_max = const_row_array_map<Scalar>(scores, n).maxCoeff();
    }
    bool lost_maximum = false;
    Scalar manipulated_max = -std::numeric_limits<Scalar>::infinity();
    for (index_t k = 0; k < visible; ++k) {
        Scalar& score = scores[keys.index[k]];
        lost_maximum = lost_maximum || score == row_max;
        score = manipulated_score(mode, score, keys.coefficient[k], row_min);
        manipulated_max = std::max(manipulated_max, score);
    }
    if (lost_maximum) return const_row_array_map<Scalar>(scores, n).maxCoeff();
    return std::max(row_max, manipulated_max);
}

// Overwrites scores[0..n) with exp(score - shift) and returns their sum.
template <class Scalar>
Scalar exponentiate_and_sum(Scalar* scores, index_t n, Scalar shift) {
    Scalar sum = 0;
    for (index_t first = 0; first < n; first += score_chunk) {
        row_array_map<Scalar> chunk(scores + first, std::min(score_chunk, n - first));
        chunk = (chunk - shift).exp();
        sum += chunk.sum();
    }
    return sum;
}

// Eigen's vectorised sums peel elements up to the first aligned address, so
// the rounding of a row's softmax sum depends on where the row starts. Score
// rows are therefore as wide as a multiple of the largest alignment: each then
// starts aligned, whatever width the buffer has grown to (the widest row seen
// so far, which depends on the batch and the order the threads took the work).
template <class Scalar>
index_t padded_width(index_t n) {
    constexpr index_t multiple = std::max<index_t>(1, EIGEN_MAX_ALIGN_BYTES / index_t(sizeof(Scalar)));
    return round_up(n, multiple);
}

template <class Scalar>
struct attention_workspace {
    row_major_matrix<Scalar> queries, scores, outputs;
    Eigen::Matrix<Scalar, Eigen::Dynamic, 1> row_sums;

    void reserve(index_t rows, index_t keys, index_t head_dim) {
        if (queries.rows() < rows || queries.cols() != head_dim) queries.resize(rows, head_dim);
        if (outputs.rows() < rows || outputs.cols() != head_dim) outputs.resize(rows, head_dim);
        if (scores.rows() < rows || scores.cols() < keys) {
            scores.resize(std::max<index_t>(rows, scores.rows()),
                          std::max(padded_width<Scalar>(keys), index_t(scores.cols())));
        }
        if (row_sums.size() < rows) row_sums.resize(rows);
    }
};

// One head group's causal attention over the keys prefix ++ own.
// Query i sits at position q_begin + i and sees keys 0..q_begin + i.
// keys: the row's manipulated keys (none: plain attention).
template <class Scalar>
void attend_head_group(head_group_view<const Scalar*> queries, index_t q_begin, index_t n_queries,
                       index_t group_size, index_t head_dim, Scalar scale,
                       const kv_head_view<Scalar>& prefix, const kv_head_view<Scalar>& own,
                       const manipulated_keys<Scalar>& keys, manipulation_mode mode,
                       head_group_view<Scalar*> out, attention_workspace<Scalar>& work) {
    using vector_map = Eigen::Map<const Eigen::Matrix<Scalar, 1, Eigen::Dynamic>>;
    using out_map = Eigen::Map<Eigen::Matrix<Scalar, 1, Eigen::Dynamic>>;
    const index_t positions_per_tile = std::max<index_t>(1, attention_tile_rows / group_size);
    work.reserve(positions_per_tile * group_size, q_begin + n_queries, head_dim);

    for (index_t first = 0; first < n_queries; first += positions_per_tile) {
        const index_t last = std::min(n_queries, first + positions_per_tile);  // exclusive
        const index_t rows = (last - first) * group_size;
        const index_t n_keys = q_begin + last;  // keys the tile's last query sees
        const index_t n_prefix = std::min(n_keys, prefix.length);
        const index_t n_own = n_keys - n_prefix;

        // Tile row (i - first) * group_size + r holds query i of head r, pre-scaled.
        auto tile = work.queries.topRows(rows);
        for (index_t i = first; i < last; ++i) {
            for (index_t r = 0; r < group_size; ++r) {
                tile.row((i - first) * group_size + r) =
                    scale *
                    vector_map(queries.data + i * queries.pos_stride + r * queries.head_stride,
                               head_dim);
            }
        }

        auto scores = work.scores.topLeftCorner(rows, n_keys);
        if (n_prefix > 0) {
            scores.leftCols(n_prefix).noalias() =
                tile * strided_rows<Scalar>(prefix.k, n_prefix, head_dim,
                                            Eigen::OuterStride<>(prefix.pos_stride))
                           .transpose();
        }
        if (n_own > 0) {
            scores.rightCols(n_own).noalias() =
                tile *
                strided_rows<Scalar>(own.k, n_own, head_dim, Eigen::OuterStride<>(own.pos_stride))
                    .transpose();
        }

        // Manipulation, causal mask and an unnormalised, max-shifted softmax per row;
        // the masked tail is zeroed so the P * V GEMM can run over the whole tile.
        for (index_t row = 0; row < rows; ++row) {
            const index_t n_visible = q_begin + first + row / group_size + 1;
            Scalar* const visible = &scores(row, 0);
            const Scalar row_max = manipulate_and_max(mode, visible, n_visible, keys);
            work.row_sums(row) = exponentiate_and_sum(visible, n_visible, row_max);
            scores.row(row).tail(n_keys - n_visible).setZero();
        }

        auto outputs = work.outputs.topRows(rows);
        if (n_prefix > 0) {
            outputs.noalias() = scores.leftCols(n_prefix) *
                                strided_rows<Scalar>(prefix.v, n_prefix, head_dim,
                                                     Eigen::OuterStride<>(prefix.pos_stride));
        } else {
            outputs.setZero();
        }
        if (n_own > 0) {
            outputs.noalias() +=
                scores.rightCols(n_own) *
                strided_rows<Scalar>(own.v, n_own, head_dim, Eigen::OuterStride<>(own.pos_stride));
        }

        for (index_t i = first; i < last; ++i) {
            for (index_t r = 0; r < group_size; ++r) {
                const index_t row = (i - first) * group_size + r;
                out_map(out.data + i * out.pos_stride + r * out.head_stride, head_dim) =
                    outputs.row(row) / work.row_sums(row);
            }
        }
    }
}

}  // namespace atman::detail
