#pragma once
// The position-wise math of a Llama block in float32 (Eigen): RMSNorm, the
// projections, RoPE and the SwiGLU MLP, and the cross-entropy of a row of
// logits. Each function works on rows first..first+count-1 of a pass's
// stacked buffers, one position per row; how rows are batched and shared
// between threads is llama_engine's business (attention too: it needs the
// KV cache and the key factors).

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include <atman/config.hpp>

#include "engine/llama_model.hpp"

namespace atman::engine {

// Buffers aligned for the widest vectors: Eigen's reductions split their work
// by the data's alignment, so an unaligned buffer would make results depend on
// where malloc happened to put it (run-to-run differences around 1e-5).
using aligned_floats = std::vector<float, Eigen::aligned_allocator<float>>;

// The activations of a pass, one row per recomputed position.
struct pass_buffers {
    Eigen::Map<matrix_rm> x;          // the residual stream, n_embd wide
    Eigen::Map<matrix_rm> normed;     // RMSNorm of x, n_embd
    Eigen::Map<matrix_rm> qkv;        // Q, K, V after RoPE, q_dim + 2 kv_dim
    Eigen::Map<matrix_rm> attention;  // the attention's output, q_dim
    Eigen::Map<matrix_rm> gate_up;    // the MLP's gate and up, 2 n_ff
};

// cos and sin of RoPE's angles per (position, pair), computed in double once.
class rope_table {
public:
    // Grows the table to at least `length` positions (doubling, up to n_ctx).
    void reserve(const llama_hparams& hp, index_t length);
    const float* cos(index_t position) const { return &cos_[static_cast<std::size_t>(position * pairs_)]; }
    const float* sin(index_t position) const { return &sin_[static_cast<std::size_t>(position * pairs_)]; }

private:
    aligned_floats cos_, sin_;
    index_t length_ = 0, pairs_ = 0;
};

// out = in / sqrt(mean(in^2) + eps) * weight; out may alias in.
void rms_norm_row(const float* in, const Eigen::VectorXf& weight, double eps, float* out);

// Before a layer's attention: its RMSNorm, the QKV projection and RoPE of Q
// and K, row i at sequence position positions[i].
void attention_input(const llama_hparams& hp, const llama_layer& layer, const rope_table& rope,
                     const index_t* positions, pass_buffers& b, index_t first, index_t count);

// After a layer's attention: the output projection and the MLP, each added
// to the residual stream.
void attention_output_and_mlp(const llama_hparams& hp, const llama_layer& layer, pass_buffers& b,
                              index_t first, index_t count);

// -log softmax(logits)[target], shifted by the maximum; the sum in double.
// NaN when a logit is not finite.
double cross_entropy(const float* logits, index_t n_vocab, std::int32_t target);

}  // namespace atman::engine
