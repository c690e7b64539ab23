#include "engine/llama_layers.hpp"

#include <algorithm>
#include <cmath>

#include <omp.h>

namespace atman::engine {
namespace {

// out = in * weight^T (+ out when accumulate). Inside a parallel region the
// calling thread computes it alone; outside, the threads share it by panels of
// output features (whole register panels of the packed weight), so that each
// reads only its part of the weights.
template <class Out, class In>
void project(Out&& out, const In& in, const packed_weight& weight, bool accumulate) {
    const auto multiply = [&](index_t first, index_t count) {
        weight.multiply(&out(0, first), out.outerStride(), in.data(), in.outerStride(), in.rows(), first, count,
                        accumulate);
    };
    if (omp_in_parallel()) {
        multiply(0, weight.rows());
        return;
    }
    const index_t n_panels = 2 * omp_get_max_threads();
    const index_t step = n_panels * packed_weight::row_block();
    const index_t width = (weight.rows() + step - 1) / step * packed_weight::row_block();
#pragma omp parallel for schedule(dynamic, 1)
    for (index_t panel = 0; panel < n_panels; ++panel) {
        const index_t first = panel * width, count = std::min(width, weight.rows() - first);
        if (count > 0) multiply(first, count);
    }
}

}  // namespace

void rope_table::reserve(const llama_hparams& hp, index_t length) {
    if (length <= length_) return;
    length_ = std::max(length, std::min(2 * length_, hp.n_ctx));
    pairs_ = hp.head_dim / 2;
    cos_.resize(static_cast<std::size_t>(length_ * pairs_));
    sin_.resize(cos_.size());
    for (index_t p = 0; p < length_; ++p) {
        for (index_t i = 0; i < pairs_; ++i) {
            // theta = p * base^(-2i / head_dim), in double: angles reach thousands of radians.
            const double theta = double(p) * std::pow(hp.rope_base, -2.0 * double(i) / double(hp.head_dim));
            cos_[static_cast<std::size_t>(p * pairs_ + i)] = float(std::cos(theta));
            sin_[static_cast<std::size_t>(p * pairs_ + i)] = float(std::sin(theta));
        }
    }
}

void rms_norm_row(const float* in, const Eigen::VectorXf& weight, double eps, float* out) {
    const index_t n = weight.size();
    Eigen::Map<const Eigen::VectorXf> x(in, n);
    const float inverse_rms = 1.0f / std::sqrt(x.squaredNorm() / float(n) + float(eps));
    Eigen::Map<Eigen::VectorXf>(out, n) = x.cwiseProduct(weight) * inverse_rms;
}

void attention_input(const llama_hparams& hp, const llama_layer& layer, const rope_table& rope,
                     const index_t* positions, pass_buffers& b, index_t first, index_t count) {
    const index_t head_dim = hp.head_dim, pairs = head_dim / 2;
    const index_t rotated_heads = hp.n_head + hp.n_kv_head;  // Q heads then K heads, contiguous
    for (index_t i = first; i < first + count; ++i) rms_norm_row(&b.x(i, 0), layer.attn_norm, hp.rms_eps, &b.normed(i, 0));
    project(b.qkv.middleRows(first, count), b.normed.middleRows(first, count), layer.qkv, false);
    for (index_t i = first; i < first + count; ++i) {
        // RoPE on adjacent pairs (x[2i], x[2i+1]) of each Q and K head, as llama.cpp for LLAMA.
        const float* cos = rope.cos(positions[i]);
        const float* sin = rope.sin(positions[i]);
        for (index_t h = 0; h < rotated_heads; ++h) {
            float* v = &b.qkv(i, h * head_dim);
            for (index_t j = 0; j < pairs; ++j) {
                const float x0 = v[2 * j], x1 = v[2 * j + 1];
                v[2 * j] = x0 * cos[j] - x1 * sin[j];
                v[2 * j + 1] = x0 * sin[j] + x1 * cos[j];
            }
        }
    }
}

void attention_output_and_mlp(const llama_hparams& hp, const llama_layer& layer, pass_buffers& b,
                              index_t first, index_t count) {
    const index_t ff = hp.n_ff;
    auto block_x = b.x.middleRows(first, count);
    auto block_normed = b.normed.middleRows(first, count);
    auto block_gate_up = b.gate_up.middleRows(first, count);
    project(block_x, b.attention.middleRows(first, count), layer.attn_output, true);
    for (index_t i = first; i < first + count; ++i) rms_norm_row(&b.x(i, 0), layer.ffn_norm, hp.rms_eps, &b.normed(i, 0));
    project(block_gate_up, block_normed, layer.gate_up, false);
    auto gate = block_gate_up.leftCols(ff).array();
    gate = gate / (1.0f + (-gate).exp()) * block_gate_up.rightCols(ff).array();  // SiLU(gate) * up
    project(block_x, block_gate_up.leftCols(ff), layer.ffn_down, true);
}

double cross_entropy(const float* logits, index_t n_vocab, std::int32_t target) {
    const Eigen::Map<const Eigen::ArrayXf> row(logits, n_vocab);
    const float peak = row.maxCoeff();
    const double sum = (row - peak).exp().cast<double>().sum();
    return std::log(sum) + double(peak) - double(logits[target]);
}

}  // namespace atman::engine
