#pragma once
// A Llama-family model loaded from GGUF: hyperparameters and float32 weights.
//
// Weights are dequantised once at load into (out x in) matrices so that a
// projection of all positions of a batch is one GEMM X * W^T; the layers'
// matrices are then packed for the GEMM kernel (packed_weight.hpp). The
// attention projections Q, K, V are stacked into one matrix, and so are the
// MLP's gate and up projections: one GEMM each instead of three and two.

#include <cstdint>
#include <string>
#include <vector>

#include <Eigen/Core>

#include <atman/config.hpp>

#include "engine/gguf.hpp"
#include "engine/packed_weight.hpp"

namespace atman::engine {

struct llama_hparams {
    index_t n_layer = 0, n_embd = 0, n_ff = 0, n_head = 0, n_kv_head = 0, head_dim = 0;
    index_t n_vocab = 0, n_ctx = 0;
    double rope_base = 10000.0, rms_eps = 1e-5;

    index_t q_dim() const { return n_head * head_dim; }
    index_t kv_dim() const { return n_kv_head * head_dim; }
};

struct llama_layer {
    Eigen::VectorXf attn_norm;   // n_embd
    packed_weight qkv;           // (q_dim + 2 kv_dim) x n_embd: rows of Q, then K, then V
    packed_weight attn_output;   // n_embd x q_dim
    Eigen::VectorXf ffn_norm;    // n_embd
    packed_weight gate_up;       // 2 n_ff x n_embd: rows of gate, then up
    packed_weight ffn_down;      // n_embd x n_ff
};

// The file's general.architecture when it is one this engine runs ('llama');
// else throws gguf_error naming it. Check it first: another architecture's
// file fails any later check with a message that hides the real reason.
std::string require_llama_architecture(const gguf_file& file);

// Immutable after load; one model can serve any number of engines and threads.
class llama_model {
public:
    // Validates the architecture, the hyperparameters and every required
    // tensor's shape; throws gguf_error naming the problem.
    static llama_model load(const gguf_file& file);

    const llama_hparams& hparams() const { return hparams_; }
    std::string name() const { return name_; }
    std::int64_t parameter_count() const { return parameter_count_; }

    const matrix_rm& token_embedding() const { return token_embedding_; }  // n_vocab x n_embd
    const llama_layer& layer(index_t i) const { return layers_[static_cast<std::size_t>(i)]; }
    const Eigen::VectorXf& output_norm() const { return output_norm_; }
    // output.weight when the file has one, else the tied token embedding.
    const matrix_rm& lm_head() const { return has_output_ ? output_ : token_embedding_; }

private:
    llama_hparams hparams_;
    std::string name_;
    std::int64_t parameter_count_ = 0;
    matrix_rm token_embedding_;
    std::vector<llama_layer> layers_;
    Eigen::VectorXf output_norm_;
    matrix_rm output_;
    bool has_output_ = false;
};

}  // namespace atman::engine
