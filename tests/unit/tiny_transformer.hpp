#pragma once
// A tiny Llama-style transformer for tests: 2 layers, d = 16, 4 query heads
// sharing 2 KV heads (GQA), RMSNorm, RoPE, SwiGLU MLP, a vocabulary of 48,
// random weights from a fixed seed. It implements the atman adapter contract
// the way a real engine would: the base pass keeps every layer's K/V, a
// perturbed row recomputes only positions >= its first affected position,
// with atman::attend reading keys < p from the base cache.
//
// The building blocks (embed, rms_norm, rope, mlp, cross_entropy) are public
// so a test can assemble an independent full-sequence reference around its
// own attention.

#include <Eigen/Core>
#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include <atman/adapter.hpp>
#include <atman/attention.hpp>
#include <atman/error.hpp>

namespace atman_test {

using atman::index_t;
using matrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using row_vector = Eigen::RowVectorXf;

class tiny_transformer {
public:
    static constexpr index_t vocab = 48, dim = 16, n_head = 4, n_kv_head = 2, head_dim = 4;
    static constexpr index_t hidden = 32, n_layer = 2;

    struct layer_weights {
        row_vector attn_norm, mlp_norm;
        matrix wq, wk, wv, wo;  // x * wq: (positions x n_head * head_dim), ...
        matrix gate, up, down;
    };
    matrix embedding;  // vocab x dim
    std::vector<layer_weights> layers;
    row_vector final_norm;
    matrix lm_head;  // dim x vocab

    index_t positions_computed = 0;  // every position a pass ran, base passes included

    explicit tiny_transformer(std::uint32_t seed = 2024) {
        std::mt19937 rng(seed);
        // Uniform in [-scale, scale], portable (no std distribution).
        const auto random = [&](index_t rows, index_t cols, double scale) {
            matrix m(rows, cols);
            for (index_t i = 0; i < m.size(); ++i)
                m.data()[i] = float(scale * (2.0 * double(rng()) / 4294967295.0 - 1.0));
            return m;
        };
        const auto norm_weights = [&](index_t n) -> row_vector {
            return (random(1, n, 0.2).array() + 1.0f).matrix();
        };
        embedding = random(vocab, dim, 1.0);
        for (index_t l = 0; l < n_layer; ++l) {
            layer_weights w;
            w.attn_norm = norm_weights(dim);
            w.mlp_norm = norm_weights(dim);
            w.wq = random(dim, n_head * head_dim, 0.9);
            w.wk = random(dim, n_kv_head * head_dim, 0.9);
            w.wv = random(dim, n_kv_head * head_dim, 0.6);
            w.wo = random(n_head * head_dim, dim, 0.4);
            w.gate = random(dim, hidden, 0.4);
            w.up = random(dim, hidden, 0.4);
            w.down = random(hidden, dim, 0.3);
            layers.push_back(std::move(w));
        }
        final_norm = norm_weights(dim);
        lm_head = random(dim, vocab, 0.8);
    }

    matrix embed(const std::int32_t* tokens, index_t begin, index_t end) const {
        matrix x(end - begin, dim);
        for (index_t i = begin; i < end; ++i) {
            if (tokens[i] < 0 || tokens[i] >= vocab)
                throw atman::invalid_argument("tiny_transformer: token id out of range");
            x.row(i - begin) = embedding.row(tokens[i]);
        }
        return x;
    }

    static matrix rms_norm(const matrix& x, const row_vector& weight) {
        matrix y(x.rows(), x.cols());
        for (index_t i = 0; i < x.rows(); ++i) {
            const float inverse_rms =
                1.0f / std::sqrt(x.row(i).squaredNorm() / float(x.cols()) + 1e-5f);
            y.row(i) = (x.row(i) * inverse_rms).cwiseProduct(weight);
        }
        return y;
    }

    // Rotary position embedding in place; row i of x is position first_position + i.
    static void rope(matrix& x, index_t heads, index_t first_position) {
        for (index_t i = 0; i < x.rows(); ++i) {
            for (index_t h = 0; h < heads; ++h) {
                for (index_t k = 0; k < head_dim / 2; ++k) {
                    const double angle = double(first_position + i) *
                                         std::pow(10000.0, -2.0 * double(k) / double(head_dim));
                    const float c = float(std::cos(angle)), s = float(std::sin(angle));
                    float& a = x(i, h * head_dim + 2 * k);
                    float& b = x(i, h * head_dim + 2 * k + 1);
                    const float a0 = a, b0 = b;
                    a = a0 * c - b0 * s;
                    b = a0 * s + b0 * c;
                }
            }
        }
    }

    static matrix mlp(const layer_weights& w, const matrix& h) {
        const matrix g = h * w.gate, u = h * w.up;
        matrix act(g.rows(), g.cols());
        for (index_t i = 0; i < g.size(); ++i) {
            const float v = g.data()[i];
            act.data()[i] = v / (1.0f + std::exp(-v)) * u.data()[i];
        }
        return act * w.down;
    }

    // -log softmax(head(final_norm(x)))[target], in double.
    double cross_entropy(const row_vector& x, std::int32_t target) const {
        const matrix normed = rms_norm(matrix(x), final_norm);
        const row_vector logits = normed * lm_head;
        const double top = double(logits.maxCoeff());
        double sum = 0;
        for (index_t v = 0; v < vocab; ++v) sum += std::exp(double(logits(v)) - top);
        return top + std::log(sum) - double(logits(target));
    }

    // The adapter contract (atman/adapter.hpp).
    index_t embedding_dim() const { return dim; }

    void input_embeddings(const atman::sequence_view& seq, float* out) const {
        Eigen::Map<matrix>(out, seq.length, dim) = embed(seq.tokens, 0, seq.length);
    }

    void base_pass(const atman::sequence_view& seq, double* ce) {
        cache_k_.assign(std::size_t(n_layer), matrix());
        cache_v_.assign(std::size_t(n_layer), matrix());
        base_ce_.assign(std::size_t(seq.n_targets), 0.0);
        run(seq, 0, nullptr, atman::manipulation_mode::multiplicative, true, base_ce_.data());
        std::copy(base_ce_.begin(), base_ce_.end(), ce);
    }

    void perturbed_pass(const atman::sequence_view& seq, const atman::batch_view& batch,
                        double* ce) {
        if (cache_k_.empty() || cache_k_[0].rows() != seq.length)
            throw atman::invalid_argument(
                "tiny_transformer: perturbed_pass needs a base pass of this sequence first");
        for (index_t r = 0; r < batch.n_rows; ++r) {
            run(seq, batch.rows[r].first_affected, batch.rows[r].key_factors, batch.mode, false,
                ce + r * seq.n_targets);
        }
    }

private:
    // Positions first..T-1 of seq, keys < first from the base cache. Targets
    // scored before `first` keep their base CE.
    void run(const atman::sequence_view& seq, index_t first, const float* factors,
             atman::manipulation_mode mode, bool keep_cache, double* ce) {
        const index_t length = seq.length, own = length - first;
        positions_computed += own;
        matrix x = embed(seq.tokens, first, length);
        const atman::attention_shape shape{n_head, n_kv_head, head_dim, 0};
        for (index_t l = 0; l < n_layer; ++l) {
            const layer_weights& w = layers[std::size_t(l)];
            const matrix h = rms_norm(x, w.attn_norm);
            matrix q = h * w.wq, k = h * w.wk;
            const matrix v = h * w.wv;
            rope(q, n_head, first);
            rope(k, n_kv_head, first);
            matrix attended(own, n_head * head_dim);
            atman::attention_row<float> row;
            row.q = q.data();
            row.q_pos_stride = n_head * head_dim;
            row.q_head_stride = head_dim;
            row.q_begin = first;
            row.n_queries = own;
            row.prefix = {cache_k_[l].data(), cache_v_[l].data(), first, n_kv_head * head_dim,
                          head_dim};
            row.own = {k.data(), v.data(), own, n_kv_head * head_dim, head_dim};
            row.key_factors = factors;
            row.mode = mode;
            row.out = attended.data();
            row.out_pos_stride = n_head * head_dim;
            row.out_head_stride = head_dim;
            atman::attend(shape, row);
            x += attended * w.wo;
            x += mlp(w, rms_norm(x, w.mlp_norm));
            if (keep_cache) cache_k_[l] = k, cache_v_[l] = v;
        }
        for (index_t t = 0; t < seq.n_targets; ++t) {
            const index_t position = seq.first_scored + t;
            ce[t] = position < first ? base_ce_[t]
                                     : cross_entropy(x.row(position - first), seq.targets[t]);
        }
    }

    std::vector<matrix> cache_k_, cache_v_;
    std::vector<double> base_ce_;
};

}  // namespace atman_test
