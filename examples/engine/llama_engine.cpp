#include "engine/llama_engine.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include <omp.h>

#include <atman/error.hpp>

namespace atman::engine {
namespace {

// Rows of the LM head computed at once: bounds the logits buffer (rows x n_vocab).
constexpr index_t logits_chunk_rows = 64;
// Eigen's GEMM takes the positions (its columns here) in register blocks of 4
// and the rest one by one; for output features past the last full register
// panel of 48 (the vocabulary panels below end in one) the two sum in different
// orders. The LM head therefore always gets a multiple of 4 positions, zero rows
// padding the last ones: a position's logits must not depend on how many
// positions share its chunk, i.e. on the batch.
constexpr index_t gemm_column_block = 4;
// Positions per block of the position-wise work (norms, projections, MLP),
// about (row_blocks). Chosen when every block's GEMM still packed the weights
// anew (~25% at 64 rows, little from 256 on); not re-tuned since they are
// packed at load.
constexpr index_t block_rows_target = 256;
// Vocabulary entries per task of the LM head.
constexpr index_t vocab_panel = 4096;  // fixed: results must not depend on the thread count
// Queries per attention task (times the KV heads): balances the causal rows' uneven cost.
constexpr index_t attention_query_rows = 64;

using detail::require;

float* grown(aligned_floats& buffer, index_t size) {
    if (static_cast<index_t>(buffer.size()) < size) buffer.resize(static_cast<std::size_t>(size));
    return buffer.data();
}

}  // namespace

llama_engine::llama_engine(const llama_model& model)
    : model_(model),
      shape_{model.hparams().n_head, model.hparams().n_kv_head, model.hparams().head_dim, 0.0},
      cache_k_(static_cast<std::size_t>(model.hparams().n_layer)),
      cache_v_(static_cast<std::size_t>(model.hparams().n_layer)) {}

// ---- validation ----------------------------------------------------------------------------

void llama_engine::validate_tokens(const std::int32_t* tokens, index_t length, const char* where) const {
    const llama_hparams& hp = model_.hparams();
    const std::string prefix = std::string(where) + ": ";
    require(length >= 1, prefix + "the sequence is empty");
    require(tokens != nullptr, prefix + "tokens is null");
    require(length <= hp.n_ctx, prefix + "sequence length " + std::to_string(length) +
                                    " exceeds the context length " + std::to_string(hp.n_ctx));
    for (index_t i = 0; i < length; ++i) {
        require(tokens[i] >= 0 && tokens[i] < hp.n_vocab,
                prefix + "token id " + std::to_string(tokens[i]) + " at position " + std::to_string(i) +
                    " is outside the vocabulary [0, " + std::to_string(hp.n_vocab) + ")");
    }
}

void llama_engine::validate_sequence(const sequence_view& seq, const char* where) const {
    validate_tokens(seq.tokens, seq.length, where);
    const std::string prefix = std::string(where) + ": ";
    require(seq.first_scored >= 0 && seq.n_targets >= 0 &&
                seq.first_scored + seq.n_targets <= seq.length,
            prefix + "scored positions [" + std::to_string(seq.first_scored) + ", " +
                std::to_string(seq.first_scored + seq.n_targets) + ") do not lie in [0, " +
                std::to_string(seq.length) + ")");
    require(seq.n_targets == 0 || seq.targets != nullptr, prefix + "targets is null");
    for (index_t t = 0; t < seq.n_targets; ++t) {
        require(seq.targets[t] >= 0 && seq.targets[t] < model_.hparams().n_vocab,
                prefix + "target id " + std::to_string(seq.targets[t]) + " (target " +
                    std::to_string(t) + ") is outside the vocabulary");
    }
}

// What this engine relies on beyond the library's promises (adapter.hpp),
// which hold for batches from atman::explain and are not checked again here.
void llama_engine::validate_batch(const sequence_view& seq, const batch_view& batch) const {
    require(batch.n_rows >= 0, "perturbed_pass: n_rows must be >= 0, got " + std::to_string(batch.n_rows));
    require(batch.n_rows == 0 || batch.rows != nullptr, "perturbed_pass: rows is null");
    for (index_t r = 0; r < batch.n_rows; ++r) {
        const row_view& row = batch.rows[r];
        // Prefix reuse is exact only if nothing before first_affected is touched.
        const bool well_formed = row.key_factors != nullptr && row.touched != nullptr && row.n_touched >= 1 &&
                                 row.touched[0] >= row.first_affected && row.first_affected >= 0 &&
                                 row.touched[row.n_touched - 1] < seq.length;
        if (!well_formed) {
            throw invalid_argument("perturbed_pass: row " + std::to_string(r) +
                                   " must have key factors and touched keys at or after first_affected (" +
                                   std::to_string(row.first_affected) + ") inside the sequence of " +
                                   std::to_string(seq.length) + " positions");
        }
    }
}

bool llama_engine::is_base_sequence(const sequence_view& seq) const {
    return has_base_ && seq.length == static_cast<index_t>(base_tokens_.size()) &&
           std::equal(seq.tokens, seq.tokens + seq.length, base_tokens_.begin()) &&
           seq.first_scored == base_first_scored_ &&
           seq.n_targets == static_cast<index_t>(base_targets_.size()) &&
           std::equal(seq.targets, seq.targets + seq.n_targets, base_targets_.begin());
}

// ---- the adapter ---------------------------------------------------------------------------

void llama_engine::base_pass(const sequence_view& seq, double* ce) {
    validate_sequence(seq, "base_pass");
    require(ce != nullptr || seq.n_targets == 0, "base_pass: ce is null");
    has_base_ = false;
    run_layers(seq.tokens, seq.length, {plain_row(0)}, manipulation_mode::multiplicative, true);

    std::vector<index_t> hidden_rows, positions;
    for (index_t t = 0; t < seq.n_targets; ++t) {
        hidden_rows.push_back(seq.first_scored + t);
        positions.push_back(seq.first_scored + t);
    }
    base_targets_.assign(seq.targets, seq.targets + seq.n_targets);
    score(hidden_rows, base_targets_, positions, base_ce_);
    std::copy(base_ce_.begin(), base_ce_.end(), ce);

    base_tokens_.assign(seq.tokens, seq.tokens + seq.length);
    base_first_scored_ = seq.first_scored;
    has_base_ = true;
}

void llama_engine::perturbed_pass(const sequence_view& seq, const batch_view& batch, double* ce) {
    validate_sequence(seq, "perturbed_pass");
    require(is_base_sequence(seq),
            "perturbed_pass: base_pass must run on the same sequence and targets first");
    validate_batch(seq, batch);
    require(ce != nullptr || batch.n_rows * seq.n_targets == 0, "perturbed_pass: ce is null");

    const std::vector<row_view> rows(batch.rows, batch.rows + batch.n_rows);
    run_layers(seq.tokens, seq.length, rows, batch.mode, false);

    // Scored positions before a row's first affected position equal the base pass.
    std::vector<index_t> hidden_rows, positions, slots;
    std::vector<std::int32_t> targets;
    for (index_t r = 0; r < batch.n_rows; ++r) {
        for (index_t t = 0; t < seq.n_targets; ++t) {
            const index_t position = seq.first_scored + t;
            const index_t slot = r * seq.n_targets + t;
            if (position < rows[r].first_affected) {
                ce[slot] = base_ce_[static_cast<std::size_t>(t)];
                continue;
            }
            hidden_rows.push_back(row_offset_[r] + position - rows[r].first_affected);
            positions.push_back(position);
            targets.push_back(seq.targets[t]);
            slots.push_back(slot);
        }
    }
    std::vector<double> recomputed;
    score(hidden_rows, targets, positions, recomputed);
    for (std::size_t k = 0; k < slots.size(); ++k) ce[slots[k]] = recomputed[k];
}

void llama_engine::input_embeddings(const sequence_view& seq, float* out) {
    validate_tokens(seq.tokens, seq.length, "input_embeddings");
    require(out != nullptr, "input_embeddings: out is null");
    const index_t embd = embedding_dim();
    for (index_t i = 0; i < seq.length; ++i) {
        Eigen::Map<Eigen::RowVectorXf>(out + i * embd, embd) = model_.token_embedding().row(seq.tokens[i]);
    }
}

// ---- utilities -----------------------------------------------------------------------------

Eigen::MatrixXf llama_engine::logits(const std::vector<std::int32_t>& tokens, index_t first, index_t last,
                                     const std::vector<float>& key_factors, manipulation_mode mode) {
    const auto length = static_cast<index_t>(tokens.size());
    validate_tokens(tokens.data(), length, "logits");
    require(first >= 0 && first <= last && last <= length,
            "logits: positions [" + std::to_string(first) + ", " + std::to_string(last) +
                ") do not lie in [0, " + std::to_string(length) + ")");
    require(key_factors.empty() || static_cast<index_t>(key_factors.size()) == length,
            "logits: " + std::to_string(key_factors.size()) + " key factors for " +
                std::to_string(length) + " tokens");
    const index_t vocab = model_.hparams().n_vocab;
    Eigen::MatrixXf result(last - first, vocab);
    if (first == last) return result;

    has_base_ = false;
    // Factors out of their domain make the attention kernel throw invalid_argument.
    run_layers(tokens.data(), length, {plain_row(0, key_factors.empty() ? nullptr : key_factors.data())}, mode, true);
    std::vector<index_t> hidden_rows;
    for (index_t p = first; p < last; ++p) hidden_rows.push_back(p);
    for_each_logits_chunk(hidden_rows, [&](index_t chunk_first, index_t count, const float* chunk) {
        result.middleRows(chunk_first, count) = Eigen::Map<const matrix_rm>(chunk, count, vocab);
    });
    return result;
}

std::vector<std::int32_t> llama_engine::generate(const std::vector<std::int32_t>& prompt,
                                                 index_t max_new_tokens,
                                                 const std::vector<std::int32_t>& stop_ids) {
    validate_tokens(prompt.data(), static_cast<index_t>(prompt.size()), "generate");
    require(max_new_tokens >= 0, "generate: max_new_tokens must be >= 0, got " + std::to_string(max_new_tokens));
    has_base_ = false;
    std::vector<std::int32_t> sequence = prompt, generated;
    if (max_new_tokens == 0) return generated;

    const index_t vocab = model_.hparams().n_vocab;
    index_t cached = 0;  // positions whose keys and values are in the cache
    for (;;) {
        const auto length = static_cast<index_t>(sequence.size());
        run_layers(sequence.data(), length, {plain_row(cached)}, manipulation_mode::multiplicative, true);
        cached = length;
        std::int32_t next = 0;
        for_each_logits_chunk({n_computed_ - 1}, [&](index_t, index_t, const float* chunk) {
            index_t best = 0;
            Eigen::Map<const Eigen::VectorXf>(chunk, vocab).maxCoeff(&best);
            next = static_cast<std::int32_t>(best);
        });
        if (std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end()) break;
        generated.push_back(next);
        if (static_cast<index_t>(generated.size()) == max_new_tokens || length == model_.hparams().n_ctx)
            break;
        sequence.push_back(next);
    }
    return generated;
}

std::vector<Eigen::MatrixXf> llama_engine::attention_maps(const std::vector<std::int32_t>& tokens) {
    const auto length = static_cast<index_t>(tokens.size());
    validate_tokens(tokens.data(), length, "attention_maps");
    has_base_ = false;
    std::vector<Eigen::MatrixXf> maps;
    run_layers(tokens.data(), length, {plain_row(0)}, manipulation_mode::multiplicative, true, &maps);
    return maps;
}

// ---- the forward pass ----------------------------------------------------------------------

Eigen::Map<matrix_rm> llama_engine::hidden() {
    return {hidden_.data(), n_computed_, model_.hparams().n_embd};
}

void llama_engine::reserve_cache(index_t length) {
    if (length <= cache_capacity_) return;
    cache_capacity_ = std::max(length, std::min(2 * cache_capacity_, model_.hparams().n_ctx));
    const auto size = static_cast<std::size_t>(cache_capacity_ * model_.hparams().kv_dim());
    for (auto& layer : cache_k_) layer.resize(size);
    for (auto& layer : cache_v_) layer.resize(size);
}

Eigen::MatrixXf llama_engine::average_attention(const float* qkv, const float* cache_k, index_t length) const {
    const llama_hparams& hp = model_.hparams();
    const index_t head_dim = hp.head_dim, kv_dim = hp.kv_dim(), qkv_dim = hp.q_dim() + 2 * kv_dim;
    const index_t group_size = hp.n_head / hp.n_kv_head;
    const float scale = 1.0f / std::sqrt(float(head_dim));
    using strided = Eigen::Map<const matrix_rm, 0, Eigen::OuterStride<>>;
    Eigen::MatrixXf average = Eigen::MatrixXf::Zero(length, length);
    for (index_t h = 0; h < hp.n_head; ++h) {
        const strided q(qkv + h * head_dim, length, head_dim, Eigen::OuterStride<>(qkv_dim));
        const strided k(cache_k + (h / group_size) * head_dim, length, head_dim, Eigen::OuterStride<>(kv_dim));
        const matrix_rm scores = (q * k.transpose()) * scale;
        for (index_t i = 0; i < length; ++i) {
            const auto visible = scores.row(i).head(i + 1).array();
            const Eigen::ArrayXf weights = (visible - visible.maxCoeff()).exp();
            average.row(i).head(i + 1) += (weights / (weights.sum() * float(hp.n_head))).matrix().transpose();
        }
    }
    return average;
}

void llama_engine::split_attention_rows(const std::vector<row_view>& rows, index_t length, manipulation_mode mode,
                                        const float* cache_k, const float* cache_v) {
    const llama_hparams& hp = model_.hparams();
    const index_t head_dim = hp.head_dim, q_dim = hp.q_dim(), kv_dim = hp.kv_dim(), qkv_dim = q_dim + 2 * kv_dim;
    attention_rows_.clear();
    for (std::size_t r = 0; r < rows.size(); ++r) {
        const index_t begin = rows[r].first_affected;
        const float* const row_qkv = qkv_.data() + row_offset_[r] * qkv_dim;
        float* const row_out = attention_out_.data() + row_offset_[r] * q_dim;
        for (index_t first = begin; first < length; first += attention_query_rows) {
            attention_row<float> a;
            a.q = row_qkv + (first - begin) * qkv_dim;
            a.q_pos_stride = qkv_dim;
            a.q_head_stride = head_dim;
            a.q_begin = first;
            a.n_queries = std::min(attention_query_rows, length - first);
            // Queries up to first + n_queries - 1 see the row's own keys up to there.
            a.prefix = {cache_k, cache_v, begin, kv_dim, head_dim};
            a.own = {row_qkv + q_dim, row_qkv + q_dim + kv_dim, first + a.n_queries - begin, qkv_dim, head_dim};
            a.key_factors = rows[r].key_factors;
            a.touched = rows[r].touched;
            a.n_touched = rows[r].n_touched;
            a.mode = mode;
            a.out = row_out + (first - begin) * q_dim;
            a.out_pos_stride = q_dim;
            a.out_head_stride = head_dim;
            attention_rows_.push_back(a);
        }
    }
}

// How the position-wise work of a pass is shared between threads. Given
// enough positions it runs on blocks of rows, one thread per block (as many
// blocks as threads, or a multiple, of about block_rows_target rows): Eigen
// then computes each product on the calling thread, which spares its per-GEMM
// hand-offs between threads, costly on a busy machine. With few positions, one
// block, and the threads share each product by output features (project).
struct llama_engine::row_blocks {
    index_t n = 0, n_blocks = 1, block_rows = 0;

    explicit row_blocks(index_t n_positions) : n(n_positions) {
        const index_t threads = omp_get_max_threads();
        n_blocks = n < threads * block_rows_target
                       ? 1
                       : threads * ((n + threads * block_rows_target / 2) / (threads * block_rows_target));
        block_rows = (n + n_blocks - 1) / n_blocks;
    }
    // Calls work(first, count) for every non-empty block, in parallel when there are several.
    template <class Work>
    void for_each(Work&& work) const {
#pragma omp parallel for schedule(dynamic, 1) if (n_blocks > 1)
        for (index_t b = 0; b < n_blocks; ++b) {
            const index_t first = b * block_rows, count = std::min(block_rows, n - first);
            if (count > 0) work(first, count);
        }
    }
};

void llama_engine::run_layers(const std::int32_t* tokens, index_t length, const std::vector<row_view>& rows,
                              manipulation_mode mode, bool extend_cache, std::vector<Eigen::MatrixXf>* maps) {
    const llama_hparams& hp = model_.hparams();
    const auto n_rows = static_cast<index_t>(rows.size());
    row_offset_.assign(static_cast<std::size_t>(n_rows + 1), 0);
    for (index_t r = 0; r < n_rows; ++r) row_offset_[r + 1] = row_offset_[r] + length - rows[r].first_affected;
    const index_t n = row_offset_[n_rows];
    n_computed_ = n;
    if (n == 0) return;

    position_.resize(static_cast<std::size_t>(n));
    for (index_t r = 0; r < n_rows; ++r)
        for (index_t p = rows[r].first_affected; p < length; ++p)
            position_[row_offset_[r] + p - rows[r].first_affected] = p;
    rope_.reserve(hp, length);
    if (extend_cache) reserve_cache(length);

    const index_t embd = hp.n_embd, q_dim = hp.q_dim(), kv_dim = hp.kv_dim(), qkv_dim = q_dim + 2 * kv_dim;
    pass_buffers b{{grown(hidden_, n * embd), n, embd},
                   {grown(normed_, n * embd), n, embd},
                   {grown(qkv_, n * qkv_dim), n, qkv_dim},
                   {grown(attention_out_, n * q_dim), n, q_dim},
                   {grown(gate_up_, n * 2 * hp.n_ff), n, 2 * hp.n_ff}};
    const row_blocks blocks(n);

    for (index_t l = 0; l < hp.n_layer; ++l) {
        float* const cache_k = cache_k_[static_cast<std::size_t>(l)].data();
        float* const cache_v = cache_v_[static_cast<std::size_t>(l)].data();
        blocks.for_each([&](index_t first, index_t count) {
            if (l == 0) {
                for (index_t i = first; i < first + count; ++i)
                    b.x.row(i) = model_.token_embedding().row(tokens[position_[i]]);
            } else {
                attention_output_and_mlp(hp, model_.layer(l - 1), b, first, count);
            }
            attention_input(hp, model_.layer(l), rope_, position_.data(), b, first, count);
            if (!extend_cache) return;
            for (index_t i = first; i < first + count; ++i) {
                std::copy_n(&b.qkv(i, q_dim), kv_dim, cache_k + position_[i] * kv_dim);
                std::copy_n(&b.qkv(i, q_dim + kv_dim), kv_dim, cache_v + position_[i] * kv_dim);
            }
        });
        if (maps != nullptr) maps->push_back(average_attention(b.qkv.data(), cache_k, length));
        split_attention_rows(rows, length, mode, cache_k, cache_v);
        attend(shape_, attention_rows_.data(), static_cast<index_t>(attention_rows_.size()));
    }
    blocks.for_each([&](index_t first, index_t count) {
        attention_output_and_mlp(hp, model_.layer(hp.n_layer - 1), b, first, count);
    });
}

// ---- the LM head ---------------------------------------------------------------------------

template <class Consume>
void llama_engine::for_each_logits_chunk(const std::vector<index_t>& hidden_rows, Consume&& consume) {
    const llama_hparams& hp = model_.hparams();
    const auto total = static_cast<index_t>(hidden_rows.size());
    const index_t chunk_rows = std::min(total, logits_chunk_rows);
    const index_t buffer_rows = detail::round_up(chunk_rows, gemm_column_block);
    const auto x = hidden();
    Eigen::Map<matrix_rm> normed(grown(normed_, buffer_rows * hp.n_embd), buffer_rows, hp.n_embd);
    Eigen::Map<matrix_rm> logits(grown(logits_, buffer_rows * hp.n_vocab), buffer_rows, hp.n_vocab);
    for (index_t first = 0; first < total; first += chunk_rows) {
        const index_t count = std::min(chunk_rows, total - first);
        const index_t padded = detail::round_up(count, gemm_column_block);
        for (index_t k = 0; k < count; ++k)
            rms_norm_row(&x(hidden_rows[first + k], 0), model_.output_norm(), hp.rms_eps, &normed(k, 0));
        normed.middleRows(count, padded - count).setZero();
        // In panels of the vocabulary, one thread each, for the reason given at row_blocks.
#pragma omp parallel for schedule(dynamic, 1)
        for (index_t panel = 0; panel < hp.n_vocab; panel += vocab_panel) {
            const index_t width = std::min(vocab_panel, hp.n_vocab - panel);
            logits.topRows(padded).middleCols(panel, width).noalias() =
                normed.topRows(padded) * model_.lm_head().middleRows(panel, width).transpose();
        }
        consume(first, count, logits.data());
    }
}

void llama_engine::score(const std::vector<index_t>& hidden_rows, const std::vector<std::int32_t>& targets,
                         const std::vector<index_t>& positions, std::vector<double>& ce) {
    const index_t vocab = model_.hparams().n_vocab;
    ce.assign(hidden_rows.size(), 0.0);
    for_each_logits_chunk(hidden_rows, [&](index_t first, index_t count, const float* chunk) {
#pragma omp parallel for schedule(static)
        for (index_t k = 0; k < count; ++k)
            ce[first + k] = cross_entropy(chunk + k * vocab, vocab, targets[first + k]);
    });
    for (std::size_t k = 0; k < ce.size(); ++k) {
        if (!std::isfinite(ce[k]))
            throw numeric_error("llama engine: the logits at position " + std::to_string(positions[k]) +
                                " are not finite (NaN or Inf)");
    }
}

}  // namespace atman::engine
