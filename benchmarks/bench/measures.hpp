#pragma once
// What atman-bench measures, each inside a child (child.hpp): an explanation
// in one of its variants (prefix reuse or full passes, batched or not), the
// plain forward and a pass of the target's positions only, the GEMM peak, and
// the attention kernel with and without key factors.

#include <atman/atman.hpp>

#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <random>
#include <vector>

#include "bench/workload.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"

namespace atman::bench {

namespace eng = atman::engine;
using json = nlohmann::json;

inline double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The engine as an adapter that cannot reuse a prefix: every row recomputes all positions.
struct full_pass_engine {
    eng::llama_engine& engine;

    void base_pass(const atman::sequence_view& seq, double* ce) { engine.base_pass(seq, ce); }
    void perturbed_pass(const atman::sequence_view& seq, const atman::batch_view& batch, double* ce) {
        std::vector<atman::row_view> rows(batch.rows, batch.rows + batch.n_rows);
        for (atman::row_view& row : rows) row.first_affected = 0;
        engine.perturbed_pass(seq, {batch.mode, rows.data(), batch.n_rows}, ce);
    }
};

// Floating-point operations of recomputing `rows` positions from first..length-1
// (their attention sees keys 0..q) and the LM head at `scored` positions.
inline double pass_flops(const eng::llama_hparams& hp, index_t first, index_t length, index_t scored) {
    const double embd = double(hp.n_embd), q_dim = double(hp.q_dim()), kv_dim = double(hp.kv_dim());
    const double linear = 2 * (embd * (q_dim + 2 * kv_dim) + q_dim * embd + 3 * embd * double(hp.n_ff));
    // QK^T and PV: 4 * q_dim per visible key; sum over q of (q + 1) keys.
    const double keys = (double(length) * double(length + 1) - double(first) * double(first + 1)) / 2;
    const double rows = double(length - first);
    return double(hp.n_layer) * (rows * linear + 4 * q_dim * keys) +
           double(scored) * 2 * embd * double(hp.n_vocab);
}

// One explanation of `request`: prefix reuse or full passes, batches of at most
// batch_rows (0: the scheduler's default). Returns seconds, token_forwards,
// flops and the complete score of each unit.
inline json explain_variant(const eng::llama_model& model, const atman::explain_request& request, bool prefix_reuse,
                            index_t batch_rows) {
    eng::llama_engine engine(model);
    atman::config cfg;
    cfg.max_batch_rows = batch_rows;
    const atman::plan p = atman::plan_explanation(engine, request, cfg);
    const auto started = std::chrono::steady_clock::now();
    atman::raw_deltas deltas;
    if (prefix_reuse) {
        deltas = atman::explain_deltas(engine, request, cfg, p);
    } else {
        full_pass_engine full{engine};
        deltas = atman::explain_deltas(full, request, cfg, p);
    }
    const double seconds = seconds_since(started);

    const index_t length = p.length, first_scored = length - index_t(request.target_tokens.size());
    double flops = pass_flops(model.hparams(), 0, length, length - first_scored);
    index_t token_forwards = length;
    for (const atman::perturbation& x : p.perturbations) {
        const index_t first = prefix_reuse ? x.first_affected : 0;
        flops += pass_flops(model.hparams(), first, length, length - std::max(first, first_scored));
        token_forwards += length - first;
    }
    std::vector<double> scores(request.units.size(), 0.0);
    for (const atman::perturbation_deltas& row : deltas.rows)
        for (double d : row.target) scores[std::size_t(row.index)] += d;
    return {{"seconds", seconds}, {"token_forwards", token_forwards}, {"flops", flops}, {"scores", scores}};
}

// The median time of `repeats` calls of run, after one more to warm up
// (buffers, RoPE table, cache).
template <class Run>
inline double median_seconds(index_t repeats, Run&& run) {
    run();
    std::vector<double> times;
    for (index_t i = 0; i < repeats; ++i) {
        const auto started = std::chrono::steady_clock::now();
        run();
        times.push_back(seconds_since(started));
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

// The plain forward: one pass over the sequence, logits only at the scored
// positions. Also a perturbed pass that recomputes only the positions from the
// last prompt token on: what a pass costs beyond its positions (the weights
// stream through memory once per pass, however few positions share them).
inline json plain_forward(const eng::llama_model& model, const atman::explain_request& request, index_t repeats) {
    eng::llama_engine engine(model);
    const atman::teacher_forced_sequence seq(request.prompt_tokens, request.target_tokens);
    std::vector<double> ce(request.target_tokens.size());
    const double seconds = median_seconds(repeats, [&] { engine.base_pass(seq.view(), ce.data()); });

    const index_t length = seq.length(), tail_first = seq.view().first_scored;
    atman::batch_rows tail_row;
    tail_row.assign({{atman::perturbation_kind::unit, 0, tail_first, {tail_first}, {0.1f}}}, 0, 1, length,
                    atman::manipulation_mode::multiplicative);
    const double tail_seconds =
        median_seconds(repeats, [&] { engine.perturbed_pass(seq.view(), tail_row.view(), ce.data()); });
    return {{"seconds", seconds},
            {"flops", pass_flops(model.hparams(), 0, length, index_t(request.target_tokens.size()))},
            {"tail_seconds", tail_seconds},
            {"tail_positions", length - tail_first}};
}

// The best of a few runs of an n x n x n float32 Eigen GEMM on the same threads.
inline json gemm_peak(index_t n) {
    const Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n);
    Eigen::MatrixXf c(n, n);
    double best = 1e300;
    for (int i = 0; i < 5; ++i) {
        const auto started = std::chrono::steady_clock::now();
        c.noalias() = a * b;
        best = std::min(best, seconds_since(started));
    }
    return {{"gflops", 2.0 * double(n) * double(n) * double(n) / best / 1e9}, {"checksum", double(c.sum())}};
}

// The library's attention kernel on a batch of rows as an explanation runs them,
// with and without key factors; the best of several alternating runs each.
inline json attention_overhead(index_t length, index_t n_rows) {
    const atman::attention_shape shape{9, 3, 64, 0.0};  // SmolLM2-135M
    const index_t q_dim = shape.n_head * shape.head_dim, kv_dim = shape.n_kv_head * shape.head_dim;
    std::mt19937 rng(sample_seed);
    std::normal_distribution<float> normal;
    const auto random_vector = [&](index_t size) {
        std::vector<float> v(static_cast<std::size_t>(size));
        for (float& x : v) x = normal(rng);
        return v;
    };
    const std::vector<float> cache_k = random_vector(length * kv_dim), cache_v = random_vector(length * kv_dim);
    std::vector<std::vector<float>> q, k, v, out, factors;
    std::vector<atman::attention_row<float>> plain, manipulated;
    for (index_t r = 0; r < n_rows; ++r) {
        const index_t begin = (2 * r + 1) * length / (2 * n_rows), count = length - begin;
        q.push_back(random_vector(count * q_dim));
        k.push_back(random_vector(count * kv_dim));
        v.push_back(random_vector(count * kv_dim));
        out.emplace_back(std::size_t(count * q_dim));
        factors.emplace_back(std::size_t(length), 1.0f);
        factors.back()[std::size_t(begin)] = 0.1f;
        atman::attention_row<float> row;
        row.q = q.back().data();
        row.q_pos_stride = q_dim, row.q_head_stride = shape.head_dim;
        row.q_begin = begin, row.n_queries = count;
        row.prefix = {cache_k.data(), cache_v.data(), begin, kv_dim, shape.head_dim};
        row.own = {k.back().data(), v.back().data(), count, kv_dim, shape.head_dim};
        row.out = out.back().data();
        row.out_pos_stride = q_dim, row.out_head_stride = shape.head_dim;
        plain.push_back(row);
        row.key_factors = factors.back().data();
        manipulated.push_back(row);
    }
    double best_plain = 1e300, best_manipulated = 1e300;
    for (int i = 0; i < 60; ++i) {  // a few ms each: the best of many is stable to a percent or two
        for (bool manipulate : {false, true}) {
            const auto& rows = manipulate ? manipulated : plain;
            const auto started = std::chrono::steady_clock::now();
            atman::attend(shape, rows.data(), index_t(rows.size()));
            double& best = manipulate ? best_manipulated : best_plain;
            best = std::min(best, seconds_since(started));
        }
    }
    return {{"plain_s", best_plain}, {"manipulated_s", best_manipulated},
            {"attention_overhead", best_manipulated / best_plain - 1}};
}

}  // namespace atman::bench
