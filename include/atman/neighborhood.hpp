#pragma once
// Cosine-similarity neighbourhoods for conceptual suppression (atman-method.md, section 3).
//
// s_ij = clip(e_i . e_j / (max(|e_i|, 1e-8) max(|e_j|, 1e-8)), -1, 1); the
// neighbours of i are the j != i with s_ij >= kappa. Computed a block of rows
// at a time (one GEMM against all candidates), so memory is O(block x n).

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include "config.hpp"
#include "detail/kernels_eigen.hpp"
#include "error.hpp"

namespace atman {

// CSR over positions 0..n-1: row i is neighbors[offsets[i] .. offsets[i+1]),
// sorted by decreasing similarity (ties: increasing position).
struct neighborhood {
    std::vector<index_t> offsets;  // n + 1
    std::vector<index_t> neighbors;
    std::vector<float> similarity;  // parallel to neighbors

    index_t size() const { return offsets.empty() ? 0 : index_t(offsets.size()) - 1; }
};

struct neighborhood_options {
    double kappa = 0.7;
    index_t max_neighbors = 0;        // keep the most similar; 0 = all
    index_t block = 256;              // rows per GEMM block: memory O(block x n)
    std::vector<index_t> candidates;  // positions that may be sources or neighbours; empty = all.
                                      // Others get empty rows.
};

namespace detail {

// Neighbourhoods among `rows` (one embedding per row), the embeddings of
// `positions` (ascending), within a CSR over n positions.
template <class Derived>
neighborhood neighborhoods_of_rows(const Eigen::MatrixBase<Derived>& rows,
                                   const std::vector<index_t>& positions, index_t n,
                                   const neighborhood_options& options) {
    using Scalar = typename Derived::Scalar;
    const index_t count = rows.rows();
    const Eigen::Matrix<Scalar, Eigen::Dynamic, 1> inverse_norm =
        rows.rowwise().norm().cwiseMax(Scalar(1e-8)).cwiseInverse();
    // Identical directions come out within a few rounding errors of 1; they are
    // taken as exactly +-1 so that duplicates meet kappa = 1 and report s = 1.
    const Scalar unit_slack =
        8 * std::sqrt(Scalar(rows.cols())) * std::numeric_limits<Scalar>::epsilon();
    const Scalar kappa = Scalar(options.kappa);
    const auto cap = std::size_t(options.max_neighbors);

    neighborhood result;
    result.offsets.assign(std::size_t(n + 1), 0);
    Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> products(
        std::min(options.block, count), count);
    std::vector<std::pair<Scalar, index_t>> found;  // (similarity, position)
    const auto more_similar = [](const auto& a, const auto& b) {
        return a.first > b.first || (a.first == b.first && a.second < b.second);
    };

    for (index_t first = 0; first < count; first += options.block) {
        const index_t block_rows = std::min(options.block, count - first);
        auto block = products.topRows(block_rows);
        block.noalias() = rows.middleRows(first, block_rows) * rows.transpose();
        for (index_t a = first; a < first + block_rows; ++a) {
            found.clear();
            for (index_t b = 0; b < count; ++b) {
                if (b == a) continue;
                Scalar s = block(a - first, b) * inverse_norm(a) * inverse_norm(b);
                if (std::abs(s) >= 1 - unit_slack) s = s > 0 ? Scalar(1) : Scalar(-1);
                if (s >= kappa) found.emplace_back(s, positions[std::size_t(b)]);
            }
            if (cap > 0 && found.size() > cap) {
                std::partial_sort(found.begin(), found.begin() + std::ptrdiff_t(cap), found.end(),
                                  more_similar);
                found.resize(cap);
            } else {
                std::sort(found.begin(), found.end(), more_similar);
            }
            for (const auto& [s, j] : found) {
                result.neighbors.push_back(j);
                result.similarity.push_back(float(s));
            }
            result.offsets[std::size_t(positions[std::size_t(a)] + 1)] = index_t(found.size());
        }
    }
    std::partial_sum(result.offsets.begin(), result.offsets.end(), result.offsets.begin());
    return result;
}

}  // namespace detail

// Neighbourhoods of the n positions whose embeddings are the rows of the
// row-major n x dim matrix `embeddings`. Throws invalid_argument on bad
// options or sizes, numeric_error on a non-finite embedding.
template <class Scalar>
neighborhood find_neighbors(const Scalar* embeddings, index_t n, index_t dim,
                            const neighborhood_options& options) {
    using detail::require;
    require(n >= 0, "find_neighbors: n must be >= 0, got " + std::to_string(n));
    require(dim >= 1, "find_neighbors: dim must be >= 1, got " + std::to_string(dim));
    require(n == 0 || embeddings != nullptr, "find_neighbors: embeddings is null");
    require(std::isfinite(options.kappa) && options.kappa >= -1 && options.kappa <= 1,
            "find_neighbors: kappa must lie in [-1, 1], got " + std::to_string(options.kappa));
    require(options.max_neighbors >= 0, "find_neighbors: max_neighbors must be >= 0, got " +
                                            std::to_string(options.max_neighbors));
    require(options.block >= 1,
            "find_neighbors: block must be >= 1, got " + std::to_string(options.block));

    std::vector<index_t> positions = options.candidates;
    for (index_t p : positions) {
        require(p >= 0 && p < n, "find_neighbors: candidate " + std::to_string(p) +
                                     " lies outside positions 0.." + std::to_string(n - 1));
    }
    if (options.candidates.empty()) {
        positions.resize(std::size_t(n));
        std::iota(positions.begin(), positions.end(), index_t(0));
    } else {
        std::sort(positions.begin(), positions.end());
        positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
    }

    using matrix = Eigen::Matrix<Scalar, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const Eigen::Map<const matrix> all(embeddings, n, dim);
    for (index_t p : positions) {
        if (!all.row(p).allFinite()) {
            throw numeric_error("find_neighbors: embedding of position " + std::to_string(p) +
                                " is not finite");
        }
    }
    if (index_t(positions.size()) == n)
        return detail::neighborhoods_of_rows(all, positions, n, options);
    matrix subset(index_t(positions.size()), dim);
    for (std::size_t r = 0; r < positions.size(); ++r)
        subset.row(index_t(r)) = all.row(positions[r]);
    return detail::neighborhoods_of_rows(subset, positions, n, options);
}

}  // namespace atman
