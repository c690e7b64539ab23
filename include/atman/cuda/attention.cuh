#pragma once
// Fused causal attention with AtMan manipulation on the GPU, flash-attention
// style: the GPU twin of attention.hpp, with the same row descriptors holding
// device pointers. Scores live only in registers, keys and values pass through
// shared memory a tile at a time, accumulation is float32 for every input type.
//
// Work split: one block per (row, query head, 16 consecutive queries); each of
// its 4 warps owns 4 of the queries; per key tile of 32 keys, lane j scores key
// j, the warp updates its query's online softmax (running max, sum, output).
//
// The multiplicative mode needs m, the minimum of the query's scores over all
// keys it sees, before it can score any manipulated key. Rather than a second
// full pass over K to find m first, the kernel sweeps once over all keys with
// the manipulated keys (phi != 1) left out of the softmax, tracking m alongside
// the running max; a key with phi = 1 keeps its score exactly, so every other
// term is already final. A second sweep then visits only the key tiles that
// hold a manipulated key and merges S' = S + (phi - 1)(S - m) for those keys
// into the same online softmax. For AtMan's usual perturbation (one unit, a few
// contiguous keys) that is one or two extra tiles; the result is exact for any
// factors, the worst case (every tile manipulated) costing one more pass over
// K and V. log_additive needs no minimum and runs in the first sweep alone.

#include <cuda_runtime.h>

#include <cmath>
#include <string>
#include <vector>

#include "../attention_types.hpp"
#include "../config.hpp"
#include "../error.hpp"
#include "check.cuh"
#include "device_buffer.cuh"
#include "../manipulation.hpp"
#include "scalar.cuh"
#include "warp.cuh"

namespace atman::cuda {

// The CPU's descriptors (attention_types.hpp), their pointers here in device memory.
using atman::attention_row;
using atman::attention_shape;
using atman::kv_segment;

namespace detail {

inline constexpr int attention_warps = 4;
inline constexpr int attention_queries_per_warp = 4;
inline constexpr int attention_queries_per_block = attention_warps * attention_queries_per_warp;
inline constexpr int attention_keys_per_tile = warp_size;

// One query's online softmax: running max and sum of exp(score - max), and the
// output accumulator, lane l holding dimensions l, l + 32, ...
template <int HeadDim>
struct online_softmax {
    float max = -INFINITY;
    float sum = 0;
    float out[HeadDim / warp_size] = {};
};

// Adds one key tile to a query's softmax; lane j holds the score of key j
// (-inf for a key left out). Identical in all lanes of the warp afterwards.
template <int HeadDim>
__device__ void accumulate_tile(online_softmax<HeadDim>& state, float score,
                                const float (*values)[HeadDim]) {
    const float new_max = fmaxf(state.max, warp_max(score));
    if (new_max == -INFINITY) return;  // nothing counted yet
    const float rescale = expf(state.max - new_max);
    const float weight = expf(score - new_max);
    state.sum = state.sum * rescale + warp_sum(weight);
    const int lane = static_cast<int>(threadIdx.x) % warp_size;
    for (int i = 0; i < HeadDim / warp_size; ++i) state.out[i] *= rescale;
    for (int j = 0; j < attention_keys_per_tile; ++j) {
        const float w = __shfl_sync(full_warp, weight, j);
        for (int i = 0; i < HeadDim / warp_size; ++i) state.out[i] += w * values[j][lane + i * warp_size];
    }
    state.max = new_max;
}

template <int HeadDim>
struct attention_tiles {
    float queries[attention_queries_per_block][HeadDim];  // pre-scaled
    float keys[attention_keys_per_tile][HeadDim + 1];     // padded: lane j reads row j conflict-free
    float values[attention_keys_per_tile][HeadDim];
    float coefficients[attention_keys_per_tile];          // key_coefficient, 0 = untouched
};

// Loads keys tile_begin .. tile_begin + 31 (zeros past last_key) and their coefficients.
template <class Scalar, int HeadDim>
__device__ void load_key_tile(const attention_row<Scalar>& row, index_t kv_head, index_t tile_begin,
                              index_t last_key, attention_tiles<HeadDim>& tiles) {
    for (int e = threadIdx.x; e < attention_keys_per_tile * HeadDim; e += blockDim.x) {
        const int j = e / HeadDim, d = e % HeadDim;
        const index_t key = tile_begin + j;
        float k = 0, v = 0;
        if (key <= last_key) {
            const bool in_prefix = key < row.prefix.length;
            const kv_segment<Scalar>& segment = in_prefix ? row.prefix : row.own;
            const index_t pos = in_prefix ? key : key - row.prefix.length;
            const index_t offset = pos * segment.pos_stride + kv_head * segment.head_stride + d;
            k = to_float(segment.k[offset]);
            v = to_float(segment.v[offset]);
        }
        tiles.keys[j][d] = k;
        tiles.values[j][d] = v;
    }
    for (int j = threadIdx.x; j < attention_keys_per_tile; j += blockDim.x) {
        const index_t key = tile_begin + j;
        tiles.coefficients[j] = row.key_factors != nullptr && key <= last_key
                                    ? key_coefficient(row.mode, row.key_factors[key])
                                    : 0.0f;
    }
}

template <int HeadDim>
__device__ float dot_row(const float* query, const float* key) {
    float sum = 0;
    for (int d = 0; d < HeadDim; ++d) sum += query[d] * key[d];
    return sum;
}

// Adds the loaded key tile to the softmax of each of the warp's queries; lane j
// holds key tile_begin + j. counted(qi, visible, coefficient, score) gives what
// the key adds to the warp's query qi (-inf: nothing), score() its unmanipulated
// score, computed only when asked for. Forced inline so that the per-query
// state stays in registers.
template <int HeadDim, class Counted>
__device__ __forceinline__ void accumulate_loaded_tile(
    const attention_tiles<HeadDim>& tiles, online_softmax<HeadDim> (&state)[attention_queries_per_warp],
    index_t tile_begin, index_t first_position, index_t n_block_queries, Counted counted) {
    const int warp = static_cast<int>(threadIdx.x) / warp_size;
    const int lane = static_cast<int>(threadIdx.x) % warp_size;
    const index_t key = tile_begin + lane;
    const float coefficient = tiles.coefficients[lane];
    for (int qi = 0; qi < attention_queries_per_warp; ++qi) {
        const int query = warp + qi * attention_warps;
        if (query >= n_block_queries) break;
        const auto score = [&] { return dot_row<HeadDim>(tiles.queries[query], tiles.keys[lane]); };
        const bool visible = key <= first_position + query;
        accumulate_tile(state[qi], counted(qi, visible, coefficient, score), tiles.values);
    }
}

template <class Scalar, int HeadDim>
__global__ void __launch_bounds__(attention_warps* warp_size)
    attend_kernel(const attention_row<Scalar>* rows, index_t group_size, float scale) {
    __shared__ attention_tiles<HeadDim> tiles;
    const attention_row<Scalar>& row = rows[blockIdx.z];
    const index_t first_query = index_t(blockIdx.x) * attention_queries_per_block;
    if (first_query >= row.n_queries) return;  // the whole block leaves together
    const index_t n_block_queries = min(index_t(attention_queries_per_block), row.n_queries - first_query);
    const index_t head = blockIdx.y;
    const index_t kv_head = head / group_size;
    const index_t first_position = row.q_begin + first_query;  // of the block's first query
    const index_t last_key = first_position + n_block_queries - 1;
    const int warp = static_cast<int>(threadIdx.x) / warp_size;
    const int lane = static_cast<int>(threadIdx.x) % warp_size;

    for (int e = threadIdx.x; e < attention_queries_per_block * HeadDim; e += blockDim.x) {
        const int i = e / HeadDim, d = e % HeadDim;
        tiles.queries[i][d] =
            i < n_block_queries
                ? scale * to_float(row.q[(first_query + i) * row.q_pos_stride + head * row.q_head_stride + d])
                : 0.0f;
    }

    // Warp w owns block queries w, w + 4, w + 8, w + 12.
    online_softmax<HeadDim> state[attention_queries_per_warp];
    float row_min[attention_queries_per_warp];  // over the visible keys, before any manipulation
    for (float& m : row_min) m = INFINITY;
    const bool defer_manipulated =
        row.key_factors != nullptr && row.mode == manipulation_mode::multiplicative;

    for (index_t tile_begin = 0; tile_begin <= last_key; tile_begin += attention_keys_per_tile) {
        __syncthreads();  // the previous tile is consumed
        load_key_tile(row, kv_head, tile_begin, last_key, tiles);
        __syncthreads();
        accumulate_loaded_tile(tiles, state, tile_begin, first_position, n_block_queries,
                               [&](int qi, bool visible, float coefficient, const auto& score) -> float {
                                   if (!visible) return -INFINITY;
                                   const float s = score();
                                   row_min[qi] = fminf(row_min[qi], s);
                                   // Deferred keys wait for the second sweep; otherwise the coefficient
                                   // is log_additive's bias, or 0 when the row has no factors.
                                   if (defer_manipulated) return coefficient != 0.0f ? -INFINITY : s;
                                   return manipulated_score(manipulation_mode::log_additive, s,
                                                            coefficient, 0.0f);
                               });
    }

    if (defer_manipulated) {
        for (int qi = 0; qi < attention_queries_per_warp; ++qi) row_min[qi] = warp_min(row_min[qi]);
        for (index_t tile_begin = 0; tile_begin <= last_key; tile_begin += attention_keys_per_tile) {
            const index_t own_key = tile_begin + threadIdx.x;
            const bool manipulated = threadIdx.x < attention_keys_per_tile && own_key <= last_key &&
                                     row.key_factors[own_key] != 1.0f;
            if (!__syncthreads_or(manipulated)) continue;  // also: the previous tile is consumed
            load_key_tile(row, kv_head, tile_begin, last_key, tiles);
            __syncthreads();
            accumulate_loaded_tile(tiles, state, tile_begin, first_position, n_block_queries,
                                   [&](int qi, bool visible, float coefficient, const auto& score) -> float {
                                       if (!visible || coefficient == 0.0f) return -INFINITY;
                                       return manipulated_score(row.mode, score(), coefficient, row_min[qi]);
                                   });
        }
    }

    for (int qi = 0; qi < attention_queries_per_warp; ++qi) {
        const int query = warp + qi * attention_warps;
        if (query >= n_block_queries) break;
        Scalar* out = row.out + (first_query + query) * row.out_pos_stride + head * row.out_head_stride;
        for (int i = 0; i < HeadDim / warp_size; ++i)
            out[lane + i * warp_size] = from_float<Scalar>(state[qi].out[i] / state[qi].sum);
    }
}

// The shape's checks plus this kernel's limits: head_dim is a template argument,
// heads and rows are grid dimensions.
inline void validate_attention_launch(const attention_shape& shape, index_t n_rows) {
    using atman::detail::require;
    atman::detail::validate_attention_shape(shape);
    require(shape.n_head <= 65535, "cuda::attend: at most 65535 heads, got " + std::to_string(shape.n_head));
    require(shape.head_dim == 64 || shape.head_dim == 128,
            "cuda::attend: head_dim must be 64 or 128, got " + std::to_string(shape.head_dim));
    require(n_rows <= 65535, "cuda::attend: at most 65535 rows, got " + std::to_string(n_rows));
}

}  // namespace detail

// Causal attention of n_rows rows, enqueued on `stream`. `rows` is a host array
// of descriptors whose pointers (q, k, v, key_factors, out) are device memory;
// it is copied to the device, so it may be reused as soon as attend returns.
// Key factors are not validated on the GPU: check them on the host with
// validate_key_factors before uploading. head_dim must be 64 or 128.
// Throws invalid_argument for bad descriptors (before any work is enqueued),
// cuda_error when the runtime fails.
template <class Scalar>
void attend(const attention_shape& shape, const attention_row<Scalar>* rows, index_t n_rows,
            cudaStream_t stream = nullptr) {
    static_assert(is_supported_scalar<Scalar>, "attention inputs must be float, __half or __nv_bfloat16");
    detail::validate_attention_launch(shape, n_rows);
    atman::detail::validate_attention_rows(rows, n_rows, "cuda::attend");
    index_t max_queries = 0;
    for (index_t r = 0; r < n_rows; ++r) max_queries = std::max(max_queries, rows[r].n_queries);
    if (max_queries == 0) return;

    detail::device_buffer<attention_row<Scalar>> device_rows(static_cast<std::size_t>(n_rows), stream);
    device_rows.upload(rows);
    const float scale =
        static_cast<float>(shape.scale == 0 ? 1 / std::sqrt(double(shape.head_dim)) : shape.scale);
    const index_t query_blocks =
        (max_queries + detail::attention_queries_per_block - 1) / detail::attention_queries_per_block;
    const dim3 grid(static_cast<unsigned>(query_blocks), static_cast<unsigned>(shape.n_head),
                    static_cast<unsigned>(n_rows));
    const dim3 block(detail::attention_warps * detail::warp_size);
    const index_t group_size = shape.n_head / shape.n_kv_head;
    if (shape.head_dim == 64) {
        detail::attend_kernel<Scalar, 64><<<grid, block, 0, stream>>>(device_rows.data(), group_size, scale);
    } else {
        detail::attend_kernel<Scalar, 128><<<grid, block, 0, stream>>>(device_rows.data(), group_size, scale);
    }
    check_launch("attend_kernel");
}

}  // namespace atman::cuda
