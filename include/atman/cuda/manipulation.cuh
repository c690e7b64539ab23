#pragma once
// Score manipulation in place on a materialised score tensor, for engines whose
// attention writes the scores out (GEMM, manipulate, softmax, GEMM). The GPU
// twin of manipulate_scores in manipulation.hpp, applied to every query row.

#include <cuda_runtime.h>

#include <algorithm>
#include <string>

#include "../config.hpp"
#include "../error.hpp"
#include "check.cuh"
#include "../manipulation.hpp"
#include "scalar.cuh"
#include "warp.cuh"

namespace atman::cuda {

// scores[((row * n_head + head) * n_queries + i) * n_keys + j]: pre-softmax score
// (after the scale) of query i, at absolute position q_offset + i, for key j.
// Query i sees keys 0 .. min(q_offset + i, n_keys - 1); later keys stay untouched.
struct score_tensor_shape {
    index_t n_rows = 0, n_head = 0, n_queries = 0, n_keys = 0;
    index_t q_offset = 0;
};

namespace detail {

// One warp per query row: the row minimum over the visible keys (multiplicative
// only), then every visible score rewritten.
template <class Scalar>
__global__ void manipulate_scores_kernel(manipulation_mode mode, Scalar* scores,
                                         score_tensor_shape shape, const float* key_factors) {
    const int lane = static_cast<int>(threadIdx.x) % warp_size;
    const index_t n_query_rows = shape.n_rows * shape.n_head * shape.n_queries;
    const index_t warps_in_grid = index_t(gridDim.x) * blockDim.x / warp_size;
    for (index_t r = (index_t(blockIdx.x) * blockDim.x + threadIdx.x) / warp_size;
         r < n_query_rows; r += warps_in_grid) {
        const index_t query = r % shape.n_queries;
        const index_t batch_row = r / (shape.n_queries * shape.n_head);
        const index_t n_visible = min(shape.q_offset + query + 1, shape.n_keys);
        Scalar* row = scores + r * shape.n_keys;
        const float* phi = key_factors + batch_row * shape.n_keys;
        float row_min = INFINITY;
        if (mode == manipulation_mode::multiplicative) {
            for (index_t j = lane; j < n_visible; j += warp_size) row_min = fminf(row_min, to_float(row[j]));
            row_min = warp_min(row_min);
        }
        for (index_t j = lane; j < n_visible; j += warp_size) {
            const float manipulated =
                manipulated_score(mode, to_float(row[j]), key_coefficient(mode, phi[j]), row_min);
            row[j] = from_float<Scalar>(manipulated);
        }
    }
}

}  // namespace detail

// Manipulates every query row of the device tensor `scores` in place with the
// device array key_factors[row * n_keys + j] = phi_j of batch row `row`
// (nullptr leaves the scores untouched). Factors are not validated on the GPU:
// check them on the host with validate_key_factors before uploading.
// Enqueued on `stream`; throws invalid_argument for a bad shape, cuda_error on failure.
template <class Scalar>
void manipulate_scores(manipulation_mode mode, Scalar* scores, const score_tensor_shape& shape,
                       const float* key_factors, cudaStream_t stream = nullptr) {
    static_assert(is_supported_scalar<Scalar>, "scores must be float, __half or __nv_bfloat16");
    atman::detail::require(shape.n_rows >= 0 && shape.n_head >= 0 && shape.n_queries >= 0 &&
                               shape.n_keys >= 0 && shape.q_offset >= 0,
                           "score tensor shape must be non-negative, got rows " +
                               std::to_string(shape.n_rows) + ", heads " + std::to_string(shape.n_head) +
                               ", queries " + std::to_string(shape.n_queries) + ", keys " +
                               std::to_string(shape.n_keys) + ", q_offset " +
                               std::to_string(shape.q_offset));
    const index_t n_query_rows = shape.n_rows * shape.n_head * shape.n_queries;
    if (key_factors == nullptr || n_query_rows == 0 || shape.n_keys == 0) return;
    atman::detail::require(scores != nullptr, "scores is null");
    constexpr int threads = 256;
    constexpr index_t rows_per_block = threads / detail::warp_size;
    const index_t blocks = std::min<index_t>((n_query_rows + rows_per_block - 1) / rows_per_block, 65535);
    detail::manipulate_scores_kernel<<<static_cast<unsigned>(blocks), threads, 0, stream>>>(
        mode, scores, shape, key_factors);
    check_launch("manipulate_scores_kernel");
}

}  // namespace atman::cuda
