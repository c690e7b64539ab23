#pragma once
// Cosine-similarity neighbourhoods on the GPU: the twin of find_neighbors in
// neighborhood.hpp, with the same result (CSR on the host) and the same rules:
// s_ij = clip(e_i . e_j / (max(|e_i|, 1e-8) max(|e_j|, 1e-8))), values within a
// few rounding errors of +-1 snapped to +-1, neighbours j != i with s_ij >= kappa,
// sorted by decreasing similarity (ties: increasing position), at most
// max_neighbors each, only among the candidates.
//
// Per block of rows: one cuBLAS GEMM of the block against all candidates
// (memory O(block x n)), a count pass (one warp per row: how many pass the
// threshold), a fill pass into per-row segments at the counted offsets, and a
// stable segmented sort by similarity. Similarities agree with the CPU up to
// float rounding, so a pair whose similarity lies within ~1e-6 of kappa may be
// kept by one and not the other.
//
// Includes neighborhood.hpp, which uses Eigen: nvcc needs --expt-relaxed-constexpr
// to compile Eigen's headers without warnings.

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cub/device/device_segmented_sort.cuh>
#include <numeric>
#include <string>
#include <vector>

#include "../config.hpp"
#include "../error.hpp"
#include "../neighborhood.hpp"
#include "check.cuh"
#include "device_buffer.cuh"
#include "scalar.cuh"
#include "warp.cuh"

namespace atman::cuda {

namespace detail {

// The similarity of two rows from their dot product and inverse norms, in the
// CPU's order of operations, snapped to +-1 within unit_slack.
ATMAN_HOST_DEVICE inline float cosine_similarity(float product, float inverse_norm_a,
                                                 float inverse_norm_b, float unit_slack) {
    const float s = product * inverse_norm_a * inverse_norm_b;
    if (fabsf(s) >= 1.0f - unit_slack) return s > 0 ? 1.0f : -1.0f;
    return s;
}

// One warp per candidate: gathers its embedding into row `r` of the float
// matrix, computes the inverse norm, and records the smallest non-finite position.
template <class Scalar>
__global__ void gather_rows_kernel(const Scalar* embeddings, index_t dim, const index_t* positions,
                                   index_t count, float* rows, float* inverse_norms,
                                   unsigned long long* first_non_finite) {
    const int lane = static_cast<int>(threadIdx.x) % warp_size;
    const index_t r = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / warp_size;
    if (r >= count) return;  // whole warps leave together
    const Scalar* source = embeddings + positions[r] * dim;
    float squares = 0;
    bool finite = true;
    for (index_t d = lane; d < dim; d += warp_size) {
        const float x = to_float(source[d]);
        finite = finite && isfinite(x);
        squares += x * x;
        rows[r * dim + d] = x;
    }
    squares = warp_sum(squares);
    if (__any_sync(full_warp, !finite) && lane == 0)
        atomicMin(first_non_finite, static_cast<unsigned long long>(positions[r]));
    if (lane == 0) inverse_norms[r] = 1.0f / fmaxf(sqrtf(squares), 1e-8f);
}

// Count pass (segment_begin == nullptr: counts[a] = number of neighbours of block
// row a) or fill pass (writes them, in increasing position, from segment_begin[a]).
__global__ void threshold_kernel(const float* products, index_t block_rows, index_t first_row,
                                 index_t count, const float* inverse_norms, const index_t* positions,
                                 float kappa, float unit_slack, index_t* counts,
                                 const index_t* segment_begin, float* similarities, index_t* neighbors) {
    const int lane = static_cast<int>(threadIdx.x) % warp_size;
    const index_t a = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / warp_size;
    if (a >= block_rows) return;
    const index_t self = first_row + a;
    const float* product_row = products + a * count;
    index_t found = 0;
    for (index_t chunk = 0; chunk < count; chunk += warp_size) {
        const index_t b = chunk + lane;
        float s = 0;
        bool keep = false;
        if (b < count && b != self) {
            s = cosine_similarity(product_row[b], inverse_norms[self], inverse_norms[b], unit_slack);
            keep = s >= kappa;
        }
        const unsigned mask = __ballot_sync(full_warp, keep);
        if (segment_begin != nullptr && keep) {
            const index_t k = segment_begin[a] + found + __popc(mask & ((1u << lane) - 1u));
            similarities[k] = s + 0.0f;  // -0 as +0: the sort must see them as equal, like the CPU
            neighbors[k] = positions[b];
        }
        found += __popc(mask);
    }
    if (segment_begin == nullptr && lane == 0) counts[a] = found;
}

inline void validate_neighborhood_input(index_t n, index_t dim, bool has_embeddings,
                                        const neighborhood_options& options) {
    using atman::detail::require;
    require(n >= 0, "cuda::find_neighbors: n must be >= 0, got " + std::to_string(n));
    require(dim >= 1, "cuda::find_neighbors: dim must be >= 1, got " + std::to_string(dim));
    require(n <= INT_MAX && dim <= INT_MAX, "cuda::find_neighbors: n and dim must fit cuBLAS's int");
    require(n == 0 || has_embeddings, "cuda::find_neighbors: embeddings is null");
    require(std::isfinite(options.kappa) && options.kappa >= -1 && options.kappa <= 1,
            "cuda::find_neighbors: kappa must lie in [-1, 1], got " + std::to_string(options.kappa));
    require(options.max_neighbors >= 0, "cuda::find_neighbors: max_neighbors must be >= 0, got " +
                                            std::to_string(options.max_neighbors));
    require(options.block >= 1,
            "cuda::find_neighbors: block must be >= 1, got " + std::to_string(options.block));
    for (index_t p : options.candidates) {
        require(p >= 0 && p < n, "cuda::find_neighbors: candidate " + std::to_string(p) +
                                     " lies outside positions 0.." + std::to_string(n - 1));
    }
}

inline unsigned warps_to_blocks(index_t warps, int threads) {
    const index_t per_block = threads / warp_size;
    return static_cast<unsigned>((warps + per_block - 1) / per_block);
}

}  // namespace detail

// Neighbourhoods of the n positions whose embeddings are the rows of the
// row-major n x dim device matrix `embeddings`. Runs on the stream of `cublas`
// and returns when the result is on the host. Throws invalid_argument on bad
// options or sizes, numeric_error on a non-finite embedding, cuda_error when
// the runtime or cuBLAS fails.
template <class Scalar>
neighborhood find_neighbors(const Scalar* embeddings, index_t n, index_t dim,
                            const neighborhood_options& options, cublasHandle_t cublas) {
    static_assert(is_supported_scalar<Scalar>, "embeddings must be float, __half or __nv_bfloat16");
    detail::validate_neighborhood_input(n, dim, embeddings != nullptr, options);
    cudaStream_t stream = nullptr;
    check(cublasGetStream(cublas, &stream), "cublasGetStream");

    std::vector<index_t> positions = options.candidates;
    if (positions.empty()) {
        positions.resize(std::size_t(n));
        std::iota(positions.begin(), positions.end(), index_t(0));
    } else {
        std::sort(positions.begin(), positions.end());
        positions.erase(std::unique(positions.begin(), positions.end()), positions.end());
    }
    const index_t count = index_t(positions.size());
    neighborhood result;
    result.offsets.assign(std::size_t(n + 1), 0);
    if (count == 0) return result;

    constexpr int threads = 256;
    detail::device_buffer<index_t> device_positions(positions.size(), stream);
    device_positions.upload(positions.data());
    detail::device_buffer<float> rows(std::size_t(count * dim), stream);
    detail::device_buffer<float> inverse_norms(std::size_t(count), stream);
    detail::device_buffer<unsigned long long> first_non_finite(1, stream);
    check(cudaMemsetAsync(first_non_finite.data(), 0xff, sizeof(unsigned long long), stream), "cudaMemsetAsync");
    detail::gather_rows_kernel<<<detail::warps_to_blocks(count, threads), threads, 0, stream>>>(
        embeddings, dim, device_positions.data(), count, rows.data(), inverse_norms.data(),
        first_non_finite.data());
    check_launch("gather_rows_kernel");
    unsigned long long bad = 0;
    first_non_finite.download(&bad, 1);
    if (bad != ULLONG_MAX) {
        throw numeric_error("cuda::find_neighbors: embedding of position " + std::to_string(bad) +
                            " is not finite");
    }

    const index_t block = std::min(options.block, count);
    const float kappa = static_cast<float>(options.kappa);
    const float unit_slack = 8 * std::sqrt(float(dim)) * FLT_EPSILON;
    const auto cap = std::size_t(options.max_neighbors);
    detail::device_buffer<float> products(std::size_t(block * count), stream);
    detail::device_buffer<index_t> counts(std::size_t(block), stream);
    std::vector<index_t> host_counts(static_cast<std::size_t>(block));
    std::vector<index_t> segment_offsets(static_cast<std::size_t>(block + 1));
    std::vector<float> found_similarity;
    std::vector<index_t> found_neighbors;

    for (index_t first = 0; first < count; first += block) {
        const index_t block_rows = std::min(block, count - first);
        // products (block_rows x count, row-major) = rows[first..] * rows^T, i.e.
        // column-major products^T = rows^T(col-major view) ^T * rows[first..]^T.
        const float one = 1, zero = 0;
        check(cublasGemmEx(cublas, CUBLAS_OP_T, CUBLAS_OP_N, int(count), int(block_rows), int(dim), &one,
                           rows.data(), CUDA_R_32F, int(dim), rows.data() + first * dim, CUDA_R_32F,
                           int(dim), &zero, products.data(), CUDA_R_32F, int(count),
                           CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx (similarity block)");
        const unsigned grid = detail::warps_to_blocks(block_rows, threads);
        detail::threshold_kernel<<<grid, threads, 0, stream>>>(
            products.data(), block_rows, first, count, inverse_norms.data(), device_positions.data(),
            kappa, unit_slack, counts.data(), nullptr, nullptr, nullptr);
        check_launch("threshold_kernel (count)");
        counts.download(host_counts.data(), std::size_t(block_rows));
        std::partial_sum(host_counts.begin(), host_counts.begin() + block_rows, segment_offsets.begin() + 1);
        const index_t total = segment_offsets[std::size_t(block_rows)];
        if (total == 0) continue;

        detail::device_buffer<index_t> device_offsets(std::size_t(block_rows + 1), stream);
        device_offsets.upload(segment_offsets.data());
        detail::device_buffer<float> similarities(std::size_t(total), stream), sorted_similarities(std::size_t(total), stream);
        detail::device_buffer<index_t> neighbors(std::size_t(total), stream), sorted_neighbors(std::size_t(total), stream);
        detail::threshold_kernel<<<grid, threads, 0, stream>>>(
            products.data(), block_rows, first, count, inverse_norms.data(), device_positions.data(),
            kappa, unit_slack, nullptr, device_offsets.data(), similarities.data(), neighbors.data());
        check_launch("threshold_kernel (fill)");

        // Stable and descending: equal similarities keep their increasing positions.
        std::size_t temp_bytes = 0;
        const auto sort = [&](void* temp) {
            check(cub::DeviceSegmentedSort::StableSortPairsDescending(
                      temp, temp_bytes, similarities.data(), sorted_similarities.data(), neighbors.data(),
                      sorted_neighbors.data(), total, block_rows, device_offsets.data(),
                      device_offsets.data() + 1, stream),
                  "cub::DeviceSegmentedSort::StableSortPairsDescending");
        };
        sort(nullptr);
        detail::device_buffer<unsigned char> temp(temp_bytes, stream);
        sort(temp.data());
        found_similarity.resize(std::size_t(total));
        found_neighbors.resize(std::size_t(total));
        sorted_similarities.download(found_similarity.data(), found_similarity.size());
        sorted_neighbors.download(found_neighbors.data(), found_neighbors.size());

        for (index_t a = 0; a < block_rows; ++a) {
            const auto begin = std::size_t(segment_offsets[std::size_t(a)]);
            std::size_t kept = std::size_t(host_counts[std::size_t(a)]);
            if (cap > 0) kept = std::min(kept, cap);
            result.neighbors.insert(result.neighbors.end(), found_neighbors.begin() + std::ptrdiff_t(begin),
                                    found_neighbors.begin() + std::ptrdiff_t(begin + kept));
            result.similarity.insert(result.similarity.end(), found_similarity.begin() + std::ptrdiff_t(begin),
                                     found_similarity.begin() + std::ptrdiff_t(begin + kept));
            result.offsets[std::size_t(positions[std::size_t(first + a)] + 1)] = index_t(kept);
        }
    }
    std::partial_sum(result.offsets.begin(), result.offsets.end(), result.offsets.begin());
    return result;
}

}  // namespace atman::cuda
