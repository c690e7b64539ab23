// The engine's forward pass against an independent numpy forward of the same
// GGUF file (tests/fixtures/make_logit_fixtures.py -> logits_smollm2.json):
// plain logits, manipulated logits in both modes, and greedy generation.

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "support/default_model.hpp"
#include "support/perturbed_rows.hpp"

using atman::index_t;
using atman::engine::llama_engine;
using atman::engine::llama_model;
using nlohmann::json;

namespace {

constexpr double logit_tolerance = 1e-3;

const llama_model& default_model() {
    static const llama_model model = llama_model::load(atman::engine::gguf_file::open(atman_test::model_path()));
    return model;
}

const json& fixture() {
    static const json data = [] {
        std::ifstream in(std::string(ATMAN_FIXTURES_DIR) + "/logits_smollm2.json");
        REQUIRE(in.good());
        return json::parse(in);
    }();
    return data;
}

// Compares one row of engine logits with a fixture position; returns the max abs error.
double compare_position(const Eigen::MatrixXf& logits, index_t row, const json& expected) {
    const auto subset = fixture()["vocab_subset"].get<std::vector<int>>();
    const auto subset_logits = expected["subset_logits"].get<std::vector<double>>();
    const auto top_ids = expected["top_ids"].get<std::vector<int>>();
    const auto top_logits = expected["top_logits"].get<std::vector<double>>();
    double max_error = 0;
    for (std::size_t k = 0; k < subset.size(); ++k)
        max_error = std::max(max_error, std::abs(logits(row, subset[k]) - subset_logits[k]));
    for (std::size_t k = 0; k < top_ids.size(); ++k)
        max_error = std::max(max_error, std::abs(logits(row, top_ids[k]) - top_logits[k]));

    index_t argmax = 0;
    logits.row(row).maxCoeff(&argmax);
    INFO("position " << expected["position"]);
    CHECK(argmax == top_ids[0]);
    const Eigen::ArrayXd shifted = (logits.row(row).cast<double>().array() - logits.row(row).maxCoeff());
    const double logsumexp = logits.row(row).maxCoeff() + std::log(shifted.exp().sum());
    CHECK(std::abs(logsumexp - expected["logsumexp"].get<double>()) <= logit_tolerance);
    return max_error;
}

std::vector<float> suppression_factors(const json& manipulated, index_t length) {
    std::vector<float> factors(static_cast<std::size_t>(length), 1.0f);
    for (int position : manipulated["suppressed"].get<std::vector<int>>())
        factors[static_cast<std::size_t>(position)] = manipulated["factor"].get<float>();
    return factors;
}

}  // namespace

TEST_CASE("the default model has SmolLM2-135M's hyperparameters") {
    const auto& hp = default_model().hparams();
    CHECK(hp.n_layer == 30);
    CHECK(hp.n_embd == 576);
    CHECK(hp.n_ff == 1536);
    CHECK(hp.n_head == 9);
    CHECK(hp.n_kv_head == 3);
    CHECK(hp.head_dim == 64);
    CHECK(hp.n_vocab == 49152);
    CHECK(hp.n_ctx == 8192);
    CHECK(hp.rope_base == 100000.0);
    CHECK(std::abs(hp.rms_eps - 1e-5) < 1e-9);
    // 30 layers x (2 x 576 norms + 576 x (576 + 2 x 192 + 576) + 3 x 576 x 1536) + 576 + 49152 x 576
    CHECK(default_model().parameter_count() == 134515008);
}

TEST_CASE("plain logits match the numpy reference") {
    llama_engine engine(default_model());
    double max_error = 0;
    for (const json& sequence : fixture()["sequences"]) {
        const auto tokens = sequence["tokens"].get<std::vector<std::int32_t>>();
        const Eigen::MatrixXf logits = engine.logits(tokens, 0, static_cast<index_t>(tokens.size()));
        REQUIRE(logits.rows() == static_cast<index_t>(tokens.size()));
        REQUIRE(logits.cols() == default_model().hparams().n_vocab);
        for (const json& position : sequence["positions"])
            max_error = std::max(max_error, compare_position(logits, position["position"].get<index_t>(), position));
    }
    std::cout << "plain logits: max abs error vs numpy " << max_error << "\n";
    CHECK(max_error <= logit_tolerance);
}

TEST_CASE("logits of a position range equal those of the full pass") {
    llama_engine engine(default_model());
    const auto tokens = fixture()["sequences"][2]["tokens"].get<std::vector<std::int32_t>>();
    const Eigen::MatrixXf all = engine.logits(tokens, 0, static_cast<index_t>(tokens.size()));
    const Eigen::MatrixXf some = engine.logits(tokens, 3, 7);
    CHECK((some - all.middleRows(3, 4)).cwiseAbs().maxCoeff() <= 1e-4f);  // GEMM blocking may differ
    CHECK(engine.logits(tokens, 5, 5).rows() == 0);
}

TEST_CASE("manipulated logits match the numpy reference in both modes") {
    llama_engine engine(default_model());
    double max_error = 0;
    for (const json& manipulated : fixture()["manipulated"]) {
        const auto tokens = manipulated["tokens"].get<std::vector<std::int32_t>>();
        const auto length = static_cast<index_t>(tokens.size());
        const auto mode = manipulated["mode"] == "multiplicative" ? atman::manipulation_mode::multiplicative
                                                                   : atman::manipulation_mode::log_additive;
        const std::vector<float> factors = suppression_factors(manipulated, length);
        const Eigen::MatrixXf logits = engine.logits(tokens, 0, length, factors, mode);
        for (const json& position : manipulated["positions"])
            max_error = std::max(max_error, compare_position(logits, position["position"].get<index_t>(), position));

        // The adapter's manipulated path: the CE of the reference's top-1 token
        // at the last position equals logsumexp - logit there.
        const json& last = manipulated["positions"].back();
        const index_t scored = last["position"].get<index_t>();
        const std::int32_t target = last["top_ids"][0].get<std::int32_t>();
        const atman::sequence_view seq{tokens.data(), length, scored, &target, 1};
        double base_ce = 0, perturbed_ce = 0;
        engine.base_pass(seq, &base_ce);
        std::vector<index_t> suppressed = manipulated["suppressed"].get<std::vector<index_t>>();
        std::sort(suppressed.begin(), suppressed.end());
        const atman_test::perturbed_rows row({atman_test::perturbation_at(suppressed, manipulated["factor"].get<float>())},
                                             length, mode);
        engine.perturbed_pass(seq, row.view(), &perturbed_ce);
        const double expected = last["logsumexp"].get<double>() - last["top_logits"][0].get<double>();
        INFO(manipulated["mode"] << ": CE " << perturbed_ce << " vs reference " << expected);
        CHECK(std::abs(perturbed_ce - expected) <= 2 * logit_tolerance);
        CHECK(std::abs(perturbed_ce - base_ce) > 0.01);  // the suppression does change the prediction
    }
    std::cout << "manipulated logits: max abs error vs numpy " << max_error << "\n";
    CHECK(max_error <= logit_tolerance);
}

TEST_CASE("greedy generation matches the numpy reference") {
    llama_engine engine(default_model());
    for (const json& generation : fixture()["generation"]) {
        const auto prompt = generation["prompt"].get<std::vector<std::int32_t>>();
        const auto expected = generation["output"].get<std::vector<std::int32_t>>();
        CHECK(engine.generate(prompt, static_cast<index_t>(expected.size()), {}) == expected);
        // A stop token ends generation before it is emitted.
        const auto stop = std::find(expected.begin(), expected.end(), expected[2]);
        CHECK(engine.generate(prompt, 32, {expected[2]}) == std::vector<std::int32_t>(expected.begin(), stop));
    }
}
