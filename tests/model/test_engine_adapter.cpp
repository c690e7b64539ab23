// The engine as an atman adapter: prefix reuse and batching must not change
// any CE (each row equals the same perturbation recomputed from position 0,
// alone), the base CE agrees with the plain logits, and bad input throws.

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include <atman/adapter.hpp>

#include "engine/dequant.hpp"
#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "support/default_model.hpp"
#include "support/perturbed_rows.hpp"

using atman::index_t;
using atman::manipulation_mode;
using atman::engine::llama_engine;
using atman::engine::llama_model;

namespace {

constexpr double ce_tolerance = 1e-4;

const llama_model& default_model() {
    static const llama_model model = llama_model::load(atman::engine::gguf_file::open(atman_test::model_path()));
    return model;
}

// A teacher-forced sequence of T tokens whose last n_targets positions are
// scored; by default T = 24: prompt of 16, 9 targets scored at 15..23.
struct test_sequence {
    std::vector<std::int32_t> tokens, targets;
    index_t first_scored;

    explicit test_sequence(index_t length = 24, index_t n_targets = 9) : first_scored(length - n_targets) {
        for (index_t i = 0; i < length; ++i) tokens.push_back(static_cast<std::int32_t>(200 + (i * 7919) % 30000));
        targets.assign(tokens.begin() + first_scored + 1, tokens.end());
        targets.push_back(504);
    }
    atman::sequence_view view() const {
        return {tokens.data(), static_cast<index_t>(tokens.size()), first_scored, targets.data(),
                static_cast<index_t>(targets.size())};
    }
};

using atman_test::perturbation_at;
using perturbation = atman::perturbation;

std::vector<double> run_batch(llama_engine& engine, const test_sequence& seq, manipulation_mode mode,
                              const std::vector<perturbation>& rows, bool reuse_prefix) {
    const atman_test::perturbed_rows batch(rows, static_cast<index_t>(seq.tokens.size()), mode, reuse_prefix);
    std::vector<double> ce(rows.size() * seq.targets.size());
    engine.perturbed_pass(seq.view(), batch.view(), ce.data());
    return ce;
}

// Each row alone, recomputed from position 0.
std::vector<double> run_one_at_a_time(llama_engine& engine, const test_sequence& seq, manipulation_mode mode,
                                      const std::vector<perturbation>& rows) {
    std::vector<double> ce;
    for (const perturbation& row : rows) {
        const std::vector<double> one = run_batch(engine, seq, mode, {row}, false);
        ce.insert(ce.end(), one.begin(), one.end());
    }
    return ce;
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::abs(a[i] - b[i]));
    return worst;
}

}  // namespace

TEST_CASE("base CE equals -log softmax of the plain logits") {
    llama_engine engine(default_model());
    const test_sequence seq;
    std::vector<double> ce(seq.targets.size());
    engine.base_pass(seq.view(), ce.data());

    const Eigen::MatrixXf logits = engine.logits(seq.tokens, seq.first_scored, seq.first_scored + 9);
    for (index_t t = 0; t < 9; ++t) {
        double sum = 0;
        const double peak = logits.row(t).maxCoeff();
        for (index_t v = 0; v < logits.cols(); ++v) sum += std::exp(double(logits(t, v)) - peak);
        const double expected = peak + std::log(sum) - logits(t, seq.targets[static_cast<std::size_t>(t)]);
        CHECK(std::abs(ce[static_cast<std::size_t>(t)] - expected) < 1e-5);
    }
}

TEST_CASE("prefix reuse and batching leave every row's CE unchanged") {
    llama_engine engine(default_model());
    const test_sequence seq;
    std::vector<double> base(seq.targets.size());
    engine.base_pass(seq.view(), base.data());

    const std::vector<perturbation> mixed = {
        perturbation_at({3}, 0.1f),  perturbation_at({0, 1}, 0.1f), perturbation_at({12, 13, 14}, 0.0f),
        perturbation_at({7}, 0.1f),  perturbation_at({15}, 0.1f),   perturbation_at({20}, 0.1f),
        perturbation_at({5, 19}, 0.3f), perturbation_at({10}, 2.0f), perturbation_at({23}, 0.1f),
        perturbation_at({1}, 0.1f),  perturbation_at({8, 9}, 0.1f), perturbation_at({2, 4, 6}, 0.5f),
    };
    const std::vector<std::vector<perturbation>> batches = {
        mixed,                                    // many rows, mixed first_affected
        {mixed[2]},                               // one row
        {mixed[0], mixed[9], mixed[3]},           // a few, unsorted
        {mixed[5], mixed[8]},                     // first_affected after first_scored
    };
    for (manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        for (const auto& rows : batches) {
            const std::vector<double> batched = run_batch(engine, seq, mode, rows, true);
            const std::vector<double> alone = run_one_at_a_time(engine, seq, mode, rows);
            INFO(atman::to_string(mode) << ", " << rows.size() << " rows");
            CHECK(max_abs_difference(batched, alone) <= ce_tolerance);
        }
        // Scored positions before first_affected keep the base CE exactly.
        const std::vector<double> late = run_batch(engine, seq, mode, {mixed[5]}, true);
        for (std::size_t t = 0; t < 5; ++t) CHECK(late[t] == base[t]);
        // Suppressing early tokens does change the targets' CE.
        CHECK(max_abs_difference(run_batch(engine, seq, mode, {mixed[1]}, true), base) > 1e-3);
    }
}

TEST_CASE("a batch of many positions (split into row blocks) equals its rows alone") {
    llama_engine engine(default_model());
    const test_sequence seq;
    const auto T = static_cast<index_t>(seq.tokens.size());
    std::vector<double> base(seq.targets.size());
    engine.base_pass(seq.view(), base.data());
    // 32 rows recomputed from position 0: 768 stacked positions, several row blocks at 1-2 threads.
    std::vector<perturbation> rows;
    for (index_t r = 0; r < 32; ++r) rows.push_back(perturbation_at({r % T, (5 * r + 3) % T}, r % 2 ? 0.1f : 0.0f));
    for (manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        INFO(atman::to_string(mode));
        CHECK(max_abs_difference(run_batch(engine, seq, mode, rows, false),
                                 run_one_at_a_time(engine, seq, mode, rows)) <= ce_tolerance);
    }
}

// Stronger than the tolerance above: where a row sits in its batch changes no
// bit of its CE (tests/model/test_determinism.cpp relies on it). Rows of a
// 300-token sequence stacked after longer ones; without the attention kernel's
// padded score rows the CE differed by 6e-6, without the LM head's padded
// positions by 2e-9.
TEST_CASE("a row's CE is bit-identical alone and stacked after other rows") {
    llama_engine engine(default_model());
    const test_sequence seq(300, 3);
    std::vector<double> base(seq.targets.size());
    engine.base_pass(seq.view(), base.data());

    std::vector<perturbation> rows;
    for (index_t p : {50, 100, 150, 200}) rows.push_back(perturbation_at({p}, 0.1f));
    const std::vector<double> stacked = run_batch(engine, seq, manipulation_mode::multiplicative, rows, true);
    for (std::size_t r = 0; r < rows.size(); ++r) {
        INFO("row " << r);
        const std::vector<double> alone = run_batch(engine, seq, manipulation_mode::multiplicative, {rows[r]}, true);
        for (std::size_t t = 0; t < alone.size(); ++t)
            CHECK(stacked[r * alone.size() + t] == alone[t]);
    }
}

// The library never sends a row without a factor other than 1 (batch_rows.hpp);
// an engine given one anyway recomputes its suffix with plain attention.
TEST_CASE("phi = 1 at the touched keys gives the base CE") {
    llama_engine engine(default_model());
    const test_sequence seq;
    const auto T = static_cast<index_t>(seq.tokens.size());
    std::vector<double> base(seq.targets.size());
    engine.base_pass(seq.view(), base.data());
    const std::vector<float> ones(static_cast<std::size_t>(T), 1.0f);
    const std::vector<index_t> touched = {0, 4};
    const std::vector<atman::row_view> rows = {{4, ones.data(), &touched[1], &ones[4], 1},
                                               {0, ones.data(), touched.data(), ones.data(), 2}};
    for (manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        std::vector<double> ce(rows.size() * 9);
        engine.perturbed_pass(seq.view(), {mode, rows.data(), static_cast<index_t>(rows.size())}, ce.data());
        for (std::size_t r = 0; r < rows.size(); ++r) {
            const std::vector<double> row(ce.begin() + r * 9, ce.begin() + (r + 1) * 9);
            CHECK(max_abs_difference(row, base) <= ce_tolerance);
        }
    }
}

TEST_CASE("input embeddings are the token embedding rows") {
    llama_engine engine(default_model());
    const test_sequence seq;
    const index_t dim = engine.embedding_dim();
    REQUIRE(dim == 576);
    std::vector<float> out(seq.tokens.size() * static_cast<std::size_t>(dim));
    engine.input_embeddings(seq.view(), out.data());

    // Dequantise each row straight from the file's bytes (dims[0] = 576 contiguous).
    const auto file = atman::engine::gguf_file::open(atman_test::model_path());
    const auto& embedding = file.tensor("token_embd.weight");
    const std::size_t row_bytes = embedding.n_bytes / static_cast<std::size_t>(embedding.rows());
    std::vector<float> row(static_cast<std::size_t>(dim));
    for (std::size_t i = 0; i < seq.tokens.size(); ++i) {
        atman::engine::dequantize(embedding.type, embedding.data + row_bytes * std::size_t(seq.tokens[i]), dim, row.data());
        CHECK(std::equal(row.begin(), row.end(), out.begin() + std::ptrdiff_t(i) * dim));
    }
}

TEST_CASE("invalid input throws invalid_argument") {
    using atman::invalid_argument;
    llama_engine engine(default_model());
    test_sequence seq;
    const auto T = static_cast<index_t>(seq.tokens.size());
    std::vector<double> ce(seq.targets.size() * 2);
    const atman_test::perturbed_rows good({perturbation_at({3}, 0.1f)}, T, manipulation_mode::multiplicative);
    const atman::row_view good_row = good.view().rows[0];
    const auto batch_of = [](const atman::row_view& row) {
        return atman::batch_view{manipulation_mode::multiplicative, &row, 1};
    };

    SECTION("perturbed_pass before any base_pass") {
        CHECK_THROWS_AS(engine.perturbed_pass(seq.view(), good.view(), ce.data()), invalid_argument);
    }
    SECTION("bad sequences") {
        test_sequence bad = seq;
        bad.tokens[5] = 49152;
        CHECK_THROWS_AS(engine.base_pass(bad.view(), ce.data()), invalid_argument);
        bad = seq;
        bad.tokens[5] = -1;
        CHECK_THROWS_AS(engine.base_pass(bad.view(), ce.data()), invalid_argument);
        bad = seq;
        bad.targets[0] = 49152;
        CHECK_THROWS_AS(engine.base_pass(bad.view(), ce.data()), invalid_argument);
        bad = seq;
        bad.first_scored = 16;  // 16 + 9 > 24
        CHECK_THROWS_AS(engine.base_pass(bad.view(), ce.data()), invalid_argument);
        bad.first_scored = -1;
        CHECK_THROWS_AS(engine.base_pass(bad.view(), ce.data()), invalid_argument);
        bad = seq;
        bad.tokens.assign(8193, 504);
        bad.targets.assign(1, 504);
        bad.first_scored = 8192;
        CHECK_THROWS_AS(engine.base_pass(bad.view(), ce.data()), invalid_argument);
        bad.tokens.clear();
        bad.targets.clear();
        bad.first_scored = 0;
        CHECK_THROWS_AS(engine.base_pass(bad.view(), ce.data()), invalid_argument);
    }
    SECTION("bad rows") {
        engine.base_pass(seq.view(), ce.data());
        for (index_t first_affected : {index_t(-1), T + 1}) {
            atman::row_view view = good_row;
            view.first_affected = first_affected;
            CHECK_THROWS_AS(engine.perturbed_pass(seq.view(), batch_of(view), ce.data()), invalid_argument);
        }
        atman::row_view no_factors = good_row;
        no_factors.key_factors = nullptr;
        CHECK_THROWS_AS(engine.perturbed_pass(seq.view(), batch_of(no_factors), ce.data()), invalid_argument);
        for (float bad : {-0.5f, std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
            const atman_test::perturbed_rows bad_rows({perturbation_at({3, 10}, {0.1f, bad})}, T,
                                                      manipulation_mode::multiplicative);
            CHECK_THROWS_AS(engine.perturbed_pass(seq.view(), bad_rows.view(), ce.data()), invalid_argument);
        }
        atman::row_view late = good_row;  // factor 0.1 at 3, but first_affected claims 4
        late.first_affected = 4;
        CHECK_THROWS_AS(engine.perturbed_pass(seq.view(), batch_of(late), ce.data()), invalid_argument);
        CHECK_THROWS_AS(engine.perturbed_pass(seq.view(), {manipulation_mode::multiplicative, nullptr, 1}, ce.data()),
                        invalid_argument);
    }
    SECTION("a different sequence than the base pass") {
        engine.base_pass(seq.view(), ce.data());
        const atman::row_view& row = good_row;
        test_sequence other = seq;
        other.targets[8] = 2;
        CHECK_THROWS_AS(engine.perturbed_pass(other.view(), batch_of(row), ce.data()), invalid_argument);
        engine.logits(seq.tokens, 0, 1);  // replaces the cache
        CHECK_THROWS_AS(engine.perturbed_pass(seq.view(), batch_of(row), ce.data()), invalid_argument);
    }
    SECTION("utilities") {
        CHECK_THROWS_AS(engine.logits(seq.tokens, 3, 2), invalid_argument);
        CHECK_THROWS_AS(engine.logits(seq.tokens, 0, T + 1), invalid_argument);
        CHECK_THROWS_AS(engine.logits(seq.tokens, 0, 1, std::vector<float>(3, 1.0f)), invalid_argument);
        CHECK_THROWS_AS(engine.generate({}, 4, {}), invalid_argument);
        CHECK_THROWS_AS(engine.generate(seq.tokens, -1, {}), invalid_argument);
        CHECK_THROWS_AS(engine.input_embeddings(seq.view(), nullptr), invalid_argument);
    }
}

TEST_CASE("attention maps are causal probability rows, one per layer") {
    llama_engine engine(default_model());
    const test_sequence seq;
    const auto T = static_cast<index_t>(seq.tokens.size());
    const std::vector<Eigen::MatrixXf> maps = engine.attention_maps(seq.tokens);
    REQUIRE(static_cast<index_t>(maps.size()) == default_model().hparams().n_layer);
    for (std::size_t l = 0; l < maps.size(); ++l) {
        INFO("layer " << l);
        REQUIRE(maps[l].rows() == T);
        REQUIRE(maps[l].cols() == T);
        CHECK(maps[l].minCoeff() >= 0.0f);
        for (index_t q = 0; q < T; ++q) {
            CHECK(std::abs(maps[l].row(q).sum() - 1.0f) < 1e-5f);
            CHECK((maps[l].row(q).tail(T - q - 1).array() == 0.0f).all());
        }
    }
    // A token attends only to itself.
    for (const Eigen::MatrixXf& map : engine.attention_maps({seq.tokens[0]})) {
        REQUIRE(map.rows() == 1);
        REQUIRE(map.cols() == 1);
        CHECK(map(0, 0) == Approx(1.0f).epsilon(1e-6));
    }
    CHECK_THROWS_AS(engine.attention_maps({}), atman::invalid_argument);
}
