#pragma once
// The reference engine's forward pass for a llama_model, in float32 with
// Eigen, implementing atman's adapter contract (atman/adapter.hpp).
//
// base_pass keeps the post-RoPE keys and values of every layer. A
// perturbation row with first affected position p recomputes positions
// p..T-1 only: its attention reads keys < p from that cache and its own keys
// >= p, with the row's key factors. All rows of a batch are stacked, so each
// projection of a layer is one GEMM over all recomputed positions. The LM
// head runs only at the scored positions.

#include <cstdint>
#include <vector>

#include <Eigen/Core>

#include <atman/adapter.hpp>
#include <atman/attention.hpp>

#include "engine/llama_layers.hpp"
#include "engine/llama_model.hpp"

namespace atman::engine {

// One per thread of work: owns the KV cache of its current sequence and its
// scratch buffers. Threads inside a pass come from OpenMP (OMP_NUM_THREADS).
// The position-wise math of a layer is in llama_layers.hpp; this class
// batches the rows, shares the work between threads, and runs the attention
// and the LM head.
class llama_engine {
public:
    // The model must outlive the engine.
    explicit llama_engine(const llama_model& model);

    // atman adapter. Invalid input throws atman::invalid_argument; a
    // non-finite logit throws atman::numeric_error naming the position.
    void base_pass(const sequence_view& seq, double* ce);
    // Requires a preceding base_pass on the same sequence (tokens and targets).
    void perturbed_pass(const sequence_view& seq, const batch_view& batch, double* ce);
    index_t embedding_dim() const { return model_.hparams().n_embd; }
    // The token embedding rows of the sequence, T x embedding_dim(), row-major.
    void input_embeddings(const sequence_view& seq, float* out);

    // One pass over tokens; the logits of positions [first, last), one row each.
    // key_factors: empty for the plain pass, else one factor per token applied
    // in `mode` (for steering and for checking the manipulation path).
    Eigen::MatrixXf logits(const std::vector<std::int32_t>& tokens, index_t first, index_t last,
                           const std::vector<float>& key_factors = {},
                           manipulation_mode mode = manipulation_mode::multiplicative);
    // Greedy decoding with the KV cache. Returns the new tokens; stops after
    // max_new_tokens, at the context length, or at a token of stop_ids (which
    // is not included in the result).
    std::vector<std::int32_t> generate(const std::vector<std::int32_t>& prompt,
                                       index_t max_new_tokens,
                                       const std::vector<std::int32_t>& stop_ids);
    // Head-averaged attention probabilities of a plain pass over `tokens`: one T x T
    // matrix per layer (row = query position, column = key position; causal, so the
    // upper triangle is 0). For attention-based baselines; memory n_layer * T * T floats.
    std::vector<Eigen::MatrixXf> attention_maps(const std::vector<std::int32_t>& tokens);

private:
    // A pass recomputing positions begin..length-1 with key_factors (length
    // factors; nullptr: plain attention) and no touched list: attend scans them.
    static row_view plain_row(index_t begin, const float* key_factors = nullptr) {
        return {begin, key_factors, nullptr, nullptr, 0};
    }

    void validate_tokens(const std::int32_t* tokens, index_t length, const char* where) const;
    void validate_sequence(const sequence_view& seq, const char* where) const;
    void validate_batch(const sequence_view& seq, const batch_view& batch) const;
    bool is_base_sequence(const sequence_view& seq) const;

    // Runs all layers for the stacked rows; the final hidden state of row r at
    // position p is left in row row_offset_[r] + p - begin of hidden(). With
    // extend_cache (one row only), its keys and values are stored in the cache
    // at positions begin..length-1, and the cache then holds 0..length-1.
    // maps (plain pass from position 0 with extend_cache only): receives one
    // head-averaged attention map per layer.
    void run_layers(const std::int32_t* tokens, index_t length, const std::vector<row_view>& rows,
                    manipulation_mode mode, bool extend_cache,
                    std::vector<Eigen::MatrixXf>* maps = nullptr);
    // attention_rows_ for layer l: each row's queries in chunks of attention_query_rows,
    // reading keys < begin from the layer's cache and the rest from qkv_.
    void split_attention_rows(const std::vector<row_view>& rows, index_t length, manipulation_mode mode,
                              const float* cache_k, const float* cache_v);
    // The head average of softmax(Q K^T * scale) under the causal mask, from the
    // layer's rotated queries (rows 0..length-1 of qkv) and its cached keys.
    Eigen::MatrixXf average_attention(const float* qkv, const float* cache_k, index_t length) const;
    // Calls consume(first, count, logits) for consecutive chunks of the given
    // hidden-state rows; logits is count x n_vocab, row-major.
    template <class Consume>
    void for_each_logits_chunk(const std::vector<index_t>& hidden_rows, Consume&& consume);
    // ce[k] = CE of hidden row hidden_rows[k] against targets[k]; positions[k]
    // names the sequence position in errors.
    void score(const std::vector<index_t>& hidden_rows, const std::vector<std::int32_t>& targets,
               const std::vector<index_t>& positions, std::vector<double>& ce);

    struct row_blocks;
    void reserve_cache(index_t length);
    Eigen::Map<matrix_rm> hidden();

    const llama_model& model_;
    attention_shape shape_;

    // KV cache: per layer, (position, kv_head, d) at [position * kv_dim + kv_head * head_dim + d].
    std::vector<aligned_floats> cache_k_, cache_v_;
    index_t cache_capacity_ = 0;

    // The sequence of the last base_pass and its CE, for perturbed_pass.
    bool has_base_ = false;
    std::vector<std::int32_t> base_tokens_, base_targets_;
    index_t base_first_scored_ = 0;
    std::vector<double> base_ce_;

    rope_table rope_;

    // Scratch, grown on demand and reused across passes.
    index_t n_computed_ = 0;
    std::vector<index_t> row_offset_, position_;
    aligned_floats hidden_, normed_, qkv_, attention_out_, gate_up_, logits_;
    std::vector<attention_row<float>> attention_rows_;
};

}  // namespace atman::engine
