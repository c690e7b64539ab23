#include <atman/explainer.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "unit/tiny_transformer.hpp"

namespace {

using atman::index_t;
using atman_test::matrix;
using atman_test::tiny_transformer;
using deltas_table = std::vector<std::vector<double>>;  // [perturbation][target]

// ---------------------------------------------------------------------------
// The brute-force reference: one full pass from position 0 per perturbation,
// no cache, no batching, attention from the full T x T score matrix.

std::vector<double> reference_ce(const tiny_transformer& model,
                                 const std::vector<std::int32_t>& tokens,
                                 const std::vector<std::int32_t>& targets,
                                 const std::vector<float>& factors, atman::manipulation_mode mode) {
    const index_t length = index_t(tokens.size());
    const index_t hd = tiny_transformer::head_dim,
                  group = tiny_transformer::n_head / tiny_transformer::n_kv_head;
    matrix x = model.embed(tokens.data(), 0, length);
    for (const auto& w : model.layers) {
        const matrix h = tiny_transformer::rms_norm(x, w.attn_norm);
        matrix q = h * w.wq, k = h * w.wk;
        const matrix v = h * w.wv;
        tiny_transformer::rope(q, tiny_transformer::n_head, 0);
        tiny_transformer::rope(k, tiny_transformer::n_kv_head, 0);
        matrix out = matrix::Zero(length, tiny_transformer::n_head * hd);
        for (index_t head = 0; head < tiny_transformer::n_head; ++head) {
            const index_t kv = head / group;
            const Eigen::MatrixXd scores =
                (q.middleCols(head * hd, hd) * k.middleCols(kv * hd, hd).transpose())
                    .cast<double>() /
                std::sqrt(double(hd));
            for (index_t i = 0; i < length; ++i) {
                std::vector<double> s(std::size_t(i + 1));
                for (index_t j = 0; j <= i; ++j) s[j] = scores(i, j);
                const double row_min = *std::min_element(s.begin(), s.end());
                for (index_t j = 0; j <= i; ++j) {
                    const double phi = factors[j];
                    if (mode == atman::manipulation_mode::multiplicative) {
                        s[j] = row_min + phi * (s[j] - row_min);
                    } else {
                        s[j] += phi == 0 ? -1e4 : std::log(phi);
                    }
                }
                const double top = *std::max_element(s.begin(), s.end());
                double sum = 0;
                for (double& e : s) sum += (e = std::exp(e - top));
                for (index_t j = 0; j <= i; ++j)
                    for (index_t d = 0; d < hd; ++d)
                        out(i, head * hd + d) += float(s[j] / sum * v(j, kv * hd + d));
            }
        }
        x += out * w.wo;
        x += tiny_transformer::mlp(w, tiny_transformer::rms_norm(x, w.mlp_norm));
    }
    const index_t first_scored = length - index_t(targets.size());
    std::vector<double> ce;
    for (index_t t = 0; t < index_t(targets.size()); ++t)
        ce.push_back(model.cross_entropy(x.row(first_scored + t), targets[t]));
    return ce;
}

// The dense key factors of suppressing `positions`, written from the method's
// definition: conceptual neighbours by cosine similarity of the input
// embeddings, among the candidate positions, combined by minimum.
std::vector<float> reference_factors(const tiny_transformer& model,
                                     const std::vector<std::int32_t>& tokens,
                                     const std::vector<index_t>& positions,
                                     const std::vector<index_t>& candidates,
                                     const atman::config& cfg) {
    std::vector<float> factors(tokens.size(), 1.0f);
    const auto cosine = [&](index_t i, index_t j) {
        const Eigen::VectorXd a = model.embedding.row(tokens[i]).transpose().cast<double>();
        const Eigen::VectorXd b = model.embedding.row(tokens[j]).transpose().cast<double>();
        return a.dot(b) / (a.norm() * b.norm());
    };
    if (cfg.conceptual) {
        for (index_t i : positions) {
            for (index_t j : candidates) {
                if (j == i) continue;
                const double s = std::min(cosine(i, j), 1.0);
                if (s >= cfg.kappa)
                    factors[j] = std::min(factors[j], float(1 - (1 - cfg.factor) * s));
            }
        }
    }
    for (index_t i : positions) factors[i] = float(cfg.factor);
    return factors;
}

// ---------------------------------------------------------------------------
// A prompt of 11 tokens (BOS + 10 words' tokens, with repeated words) and targets.

struct case_data {
    atman::explain_request request;
    std::vector<std::int32_t> sequence;  // teacher-forced
};

case_data make_case(std::vector<std::int32_t> target = {3, 17, 8, 21}) {
    const std::vector<std::string> pieces = {"<s>",  "The",  " cat", "s",    " sat", " on",
                                             " the", " mat", " of",  " the", " cat"};
    const std::map<std::string, std::int32_t> ids = {{"<s>", 1},  {"The", 40},  {" cat", 5},
                                                     {"s", 9},    {" sat", 12}, {" on", 30},
                                                     {" the", 7}, {" mat", 44}, {" of", 25}};
    case_data c;
    std::vector<atman::token_offsets> offsets;
    for (const std::string& piece : pieces) {
        offsets.push_back({index_t(c.request.prompt.size()),
                           index_t(c.request.prompt.size() + piece.size()), piece == "<s>"});
        c.request.prompt += piece;
        c.request.prompt_tokens.push_back(ids.at(piece));
    }
    c.request.units = atman::make_units(c.request.prompt, offsets, {});
    c.request.target_tokens = target;
    for (std::int32_t id : target) {
        c.request.target_texts.push_back(" t" + std::to_string(id));
        c.request.target += c.request.target_texts.back();
    }
    c.sequence = c.request.prompt_tokens;
    c.sequence.insert(c.sequence.end(), target.begin(), target.end() - 1);
    return c;
}

std::vector<index_t> unit_positions(const atman::explain_request& request) {
    std::vector<index_t> all;
    for (const auto& u : request.units)
        all.insert(all.end(), u.positions.begin(), u.positions.end());
    std::sort(all.begin(), all.end());
    return all;
}

// Reference deltas: prompt units in order, then (optionally) earlier targets.
deltas_table reference_deltas(const tiny_transformer& model, const case_data& c,
                              const atman::config& cfg, const std::vector<std::int32_t>& targets) {
    std::vector<std::int32_t> sequence = c.request.prompt_tokens;
    sequence.insert(sequence.end(), targets.begin(), targets.end() - 1);
    const std::vector<float> ones(sequence.size(), 1.0f);
    const std::vector<double> base = reference_ce(model, sequence, targets, ones, cfg.mode);
    const auto delta = [&](const std::vector<float>& factors) {
        std::vector<double> ce = reference_ce(model, sequence, targets, factors, cfg.mode);
        for (std::size_t t = 0; t < ce.size(); ++t) ce[t] -= base[t];
        return ce;
    };
    deltas_table table;
    for (const auto& u : c.request.units)
        table.push_back(
            delta(reference_factors(model, sequence, u.positions, unit_positions(c.request), cfg)));
    if (cfg.explain_targets_by_earlier_targets) {
        const index_t n = index_t(c.request.prompt_tokens.size());
        for (index_t t = 0; t + 1 < index_t(targets.size()); ++t) {
            std::vector<float> factors = ones;
            factors[n + t] = float(cfg.factor);
            table.push_back(delta(factors));
        }
    }
    return table;
}

void check_raw_scores(const atman::explanation& e, const deltas_table& expected) {
    REQUIRE(e.units.size() == expected.size());
    for (std::size_t k = 0; k < expected.size(); ++k) {
        double complete = 0;
        REQUIRE(e.units[k].scores_per_target.size() == expected[k].size());
        for (std::size_t t = 0; t < expected[k].size(); ++t) {
            INFO("unit " << k << " target " << t);
            CHECK(e.units[k].scores_per_target[t] == Approx(expected[k][t]).margin(1e-5));
            complete += expected[k][t];
        }
        CHECK(e.units[k].score == Approx(complete).margin(1e-5));
    }
}

struct engine_without_embeddings {
    tiny_transformer model;
    void base_pass(const atman::sequence_view& s, double* ce) { model.base_pass(s, ce); }
    void perturbed_pass(const atman::sequence_view& s, const atman::batch_view& b, double* ce) {
        model.perturbed_pass(s, b, ce);
    }
};

// Reports NaN for the perturbation whose first affected position is `poisoned` (or in the base
// pass).
struct nan_engine : engine_without_embeddings {
    index_t poisoned = -1;
    bool poison_base = false;
    void base_pass(const atman::sequence_view& s, double* ce) {
        model.base_pass(s, ce);
        if (poison_base) ce[1] = std::numeric_limits<double>::quiet_NaN();
    }
    void perturbed_pass(const atman::sequence_view& s, const atman::batch_view& b, double* ce) {
        model.perturbed_pass(s, b, ce);
        for (index_t r = 0; r < b.n_rows; ++r)
            if (b.rows[r].first_affected == poisoned)
                ce[r * s.n_targets + 2] = std::numeric_limits<double>::infinity();
    }
};

}  // namespace

TEST_CASE("the explainer equals the brute-force reference in every configuration") {
    const case_data c = make_case();
    REQUIRE(c.request.units.size() == 9);  // The cats sat on the mat of the cat
    const tiny_transformer model;
    const std::vector<std::pair<index_t, index_t>> budgets = {{1, 0}, {3, 0}, {0, 20}, {1000, 0}};

    for (auto mode :
         {atman::manipulation_mode::multiplicative, atman::manipulation_mode::log_additive}) {
        for (double kappa : {-2.0, 0.7, 0.0}) {  // -2: no conceptual suppression
            for (bool earlier : {false, true}) {
                atman::config cfg;
                cfg.mode = mode;
                cfg.conceptual = kappa > -2;
                cfg.kappa = cfg.conceptual ? kappa : 0.7;
                cfg.explain_targets_by_earlier_targets = earlier;
                const deltas_table expected =
                    reference_deltas(model, c, cfg, c.request.target_tokens);
                for (auto [rows, token_rows] : budgets) {
                    cfg.max_batch_rows = rows;
                    cfg.max_batch_token_rows = token_rows;
                    INFO(atman::to_string(mode)
                         << ", kappa " << kappa << ", earlier " << earlier << ", budget "
                         << rows << "/" << token_rows);
                    tiny_transformer engine;
                    const atman::explanation e = atman::explain(engine, c.request, cfg);
                    check_raw_scores(e, expected);

                    const index_t length = index_t(c.sequence.size());
                    const index_t perturbations = index_t(expected.size());
                    CHECK(e.stats.passes == perturbations + 1);
                    CHECK(e.stats.token_forwards == engine.positions_computed);
                    CHECK(e.stats.token_forwards_naive == (perturbations + 1) * length);
                    CHECK(e.stats.token_forwards < e.stats.token_forwards_naive);
                }
            }
        }
    }
}

// phi = 1 leaves every key untouched: the scores must be exactly 0, not the
// rounding noise of recomputing a suffix (the row is recognised and not run).
TEST_CASE("factor 1 gives exactly zero scores and runs no perturbed pass") {
    const case_data c = make_case();
    for (auto mode : {atman::manipulation_mode::multiplicative, atman::manipulation_mode::log_additive}) {
        for (bool conceptual : {false, true}) {
            atman::config cfg;
            cfg.mode = mode;
            cfg.factor = 1.0;
            cfg.conceptual = conceptual;
            cfg.explain_targets_by_earlier_targets = !conceptual;
            INFO(atman::to_string(mode) << ", conceptual " << conceptual);
            tiny_transformer engine;
            const atman::explanation e = atman::explain(engine, c.request, cfg);
            for (const atman::unit_score& u : e.units) {
                CHECK(u.score == 0.0);
                for (double d : u.scores_per_target) CHECK(d == 0.0);
            }
            CHECK(e.stats.passes == 1);
            CHECK(e.stats.token_forwards == index_t(c.sequence.size()));
            CHECK(engine.positions_computed == index_t(c.sequence.size()));
        }
    }
}

TEST_CASE("conceptual suppression changes the scores of repeated words") {
    const case_data c = make_case();
    const tiny_transformer model;
    atman::config plain, conceptual;
    conceptual.conceptual = true;
    const deltas_table a = reference_deltas(model, c, plain, c.request.target_tokens);
    const deltas_table b = reference_deltas(model, c, conceptual, c.request.target_tokens);
    // " the" at units 4 and 7 share a token: suppressing one suppresses the other.
    CHECK(std::abs(a[4][3] - b[4][3]) > 1e-4);
}

TEST_CASE("earlier-target units: texts, positions, and no effect on earlier targets") {
    const case_data c = make_case();
    atman::config cfg;
    cfg.explain_targets_by_earlier_targets = true;
    tiny_transformer engine;
    const atman::explanation e = atman::explain(engine, c.request, cfg);
    REQUIRE(e.units.size() == 9 + 3);
    for (index_t t = 0; t < 3; ++t) {
        const atman::unit_score& s = e.units[9 + t];
        CHECK(s.text == c.request.target_texts[t]);
        CHECK(e.target.substr(s.start, s.end - s.start) == s.text);
        CHECK(s.first_token == 11 + t);
        CHECK(s.last_token == 12 + t);
        for (index_t later = 0; later <= t; ++later) CHECK(s.scores_per_target[later] == 0.0);
    }
}

TEST_CASE("the explanation carries texts, tokens and base CE") {
    const case_data c = make_case();
    const tiny_transformer model;
    tiny_transformer engine;
    const atman::explanation e = atman::explain(engine, c.request, atman::config{});
    CHECK(e.prompt == c.request.prompt);
    CHECK(e.target == " t3 t17 t8 t21");
    std::vector<std::string> texts;
    for (const auto& u : e.units) texts.push_back(u.text);
    CHECK(texts ==
          std::vector<std::string>{"The", "cats", "sat", "on", "the", "mat", "of", "the", "cat"});
    CHECK(e.units[1].first_token == 2);
    CHECK(e.units[1].last_token == 4);
    const std::vector<double> base = reference_ce(model, c.sequence, c.request.target_tokens,
                                                  std::vector<float>(c.sequence.size(), 1.0f),
                                                  atman::manipulation_mode::multiplicative);
    REQUIRE(e.targets.size() == 4);
    for (std::size_t t = 0; t < 4; ++t) {
        CHECK(e.targets[t].id == c.request.target_tokens[t]);
        CHECK(e.targets[t].text == c.request.target_texts[t]);
        CHECK(e.targets[t].base_ce == Approx(base[t]).margin(1e-5));
    }
}

TEST_CASE("postprocessing and min-max normalisation") {
    const case_data c = make_case();
    const tiny_transformer model;
    const deltas_table raw = reference_deltas(model, c, atman::config{}, c.request.target_tokens);
    for (auto post : {atman::postprocess::absolute, atman::postprocess::square}) {
        for (bool normalize : {false, true}) {
            atman::config cfg;
            cfg.post = post;
            cfg.normalize = normalize;
            INFO(atman::to_string(post) << ", normalize " << normalize);
            const auto f = [&](double v) {
                return post == atman::postprocess::absolute ? std::abs(v) : v * v;
            };
            std::vector<double> expected;
            for (const auto& row : raw) {
                double sum = 0;
                for (double d : row) sum += d;
                expected.push_back(f(sum));
            }
            std::vector<double> expected_first_target;
            for (const auto& row : raw) expected_first_target.push_back(f(row[0]));
            if (normalize) {
                for (auto* column : {&expected, &expected_first_target}) {
                    const auto [lo, hi] = std::minmax_element(column->begin(), column->end());
                    const double a = *lo, b = *hi;
                    for (double& v : *column) v = (v - a) / (b - a);
                }
            }
            tiny_transformer engine;
            const atman::explanation e = atman::explain(engine, c.request, cfg);
            for (std::size_t k = 0; k < raw.size(); ++k) {
                CHECK(e.units[k].score == Approx(expected[k]).margin(1e-5));
                CHECK(e.units[k].scores_per_target[0] ==
                      Approx(expected_first_target[k]).margin(1e-5));
            }
        }
    }
}

TEST_CASE("contrastive explanations subtract the contrast target's deltas") {
    case_data c = make_case();
    const std::vector<std::int32_t> contrast = {3, 29, 8};
    c.request.contrast = " t3 t29 t8";
    c.request.contrast_tokens = contrast;
    const tiny_transformer model;
    atman::config cfg;
    cfg.mode = atman::manipulation_mode::log_additive;
    const deltas_table a = reference_deltas(model, c, cfg, c.request.target_tokens);
    const deltas_table b = reference_deltas(model, c, cfg, contrast);
    tiny_transformer engine;
    const atman::explanation e = atman::explain(engine, c.request, cfg);
    REQUIRE(e.units.size() == a.size());
    for (std::size_t k = 0; k < a.size(); ++k) {
        double expected = 0;
        for (double d : a[k]) expected += d;
        for (double d : b[k]) expected -= d;
        CHECK(e.units[k].score == Approx(expected).margin(1e-5));
        CHECK(e.units[k].scores_per_target[1] == Approx(a[k][1]).margin(1e-5));
    }
    CHECK(e.contrast == c.request.contrast);
    CHECK(e.stats.passes == 2 + 2 * index_t(a.size()));
    CHECK(e.stats.token_forwards_naive == (index_t(a.size()) + 1) * (14 + 13));

    cfg.explain_targets_by_earlier_targets = true;
    CHECK_THROWS_AS(atman::explain(engine, c.request, cfg), atman::invalid_argument);
}

TEST_CASE("shards run separately and merged give the same explanation") {
    const case_data c = make_case();
    atman::config cfg;
    cfg.conceptual = true;
    cfg.kappa = 0.3;
    cfg.max_batch_rows = 2;
    cfg.explain_targets_by_earlier_targets = true;
    tiny_transformer engine;
    const atman::explanation whole = atman::explain(engine, c.request, cfg);
    const atman::plan full = atman::plan_explanation(engine, c.request, cfg);
    std::vector<atman::raw_deltas> parts;
    for (index_t k = 0; k < 3; ++k)
        parts.push_back(
            atman::explain_deltas(engine, c.request, cfg, atman::shard(full, 2 - k, 3)));
    const atman::explanation merged =
        atman::make_explanation(c.request, cfg, atman::merge_deltas(parts));
    REQUIRE(merged.units.size() == whole.units.size());
    for (std::size_t k = 0; k < whole.units.size(); ++k) {
        CHECK(merged.units[k].score == Approx(whole.units[k].score).margin(1e-12));
        CHECK(merged.units[k].scores_per_target == whole.units[k].scores_per_target);
    }
    CHECK(merged.stats.passes == whole.stats.passes + 2);  // each shard ran its own base pass

    parts.pop_back();
    CHECK_THROWS_AS(atman::make_explanation(c.request, cfg, atman::merge_deltas(parts)),
                    atman::invalid_argument);
    parts.push_back(parts.front());
    CHECK_THROWS_AS(atman::make_explanation(c.request, cfg, atman::merge_deltas(parts)),
                    atman::invalid_argument);
}

TEST_CASE("progress is reported after each batch, and cancellation throws") {
    const case_data c = make_case();
    atman::config cfg;
    cfg.max_batch_rows = 2;
    tiny_transformer engine;
    std::vector<std::pair<index_t, index_t>> calls;
    atman::explain_options options;
    options.progress = [&](index_t done, index_t total) {
        calls.emplace_back(done, total);
        return true;
    };
    atman::explain(engine, c.request, cfg, options);
    REQUIRE(calls.size() == 5);  // 9 units in batches of 2
    for (std::size_t i = 0; i < calls.size(); ++i) {
        CHECK(calls[i].first == std::min<index_t>(2 * index_t(i + 1), 9));
        CHECK(calls[i].second == 9);
    }

    options.progress = [&](index_t done, index_t) { return done < 4; };
    CHECK_THROWS_AS(atman::explain(engine, c.request, cfg, options), atman::cancelled);

    std::atomic<bool> stop{true};
    atman::explain_options stopped;
    stopped.cancel = &stop;
    tiny_transformer fresh;
    CHECK_THROWS_AS(atman::explain(fresh, c.request, cfg, stopped), atman::cancelled);
    CHECK(fresh.positions_computed == 0);
}

TEST_CASE("non-finite CE from the engine is a numeric_error naming the unit") {
    const case_data c = make_case();
    nan_engine engine;
    engine.poisoned = 4;  // the unit "sat"
    try {
        atman::explain(engine, c.request, atman::config{});
        FAIL("no exception");
    } catch (const atman::numeric_error& error) {
        const std::string message = error.what();
        CHECK(message.find("\"sat\"") != std::string::npos);
        CHECK(message.find("target 2") != std::string::npos);
    }
    nan_engine base;
    base.poison_base = true;
    CHECK_THROWS_AS(atman::explain(base, c.request, atman::config{}), atman::numeric_error);
}

TEST_CASE("bad requests and configs are invalid_argument") {
    const case_data c = make_case();
    tiny_transformer engine;
    atman::config bad;
    bad.factor = -1;
    CHECK_THROWS_AS(atman::explain(engine, c.request, bad), atman::invalid_argument);
    bad = atman::config{};
    bad.kappa = 2;
    CHECK_THROWS_AS(atman::explain(engine, c.request, bad), atman::invalid_argument);

    atman::config conceptual;
    conceptual.conceptual = true;
    engine_without_embeddings plain;
    CHECK_THROWS_AS(atman::explain(plain, c.request, conceptual), atman::invalid_argument);
    CHECK_NOTHROW(atman::explain(plain, c.request, atman::config{}));

    auto request = c.request;
    request.units.clear();
    CHECK_THROWS_AS(atman::explain(engine, request, atman::config{}), atman::invalid_argument);
    request = c.request;
    request.target_texts.pop_back();
    CHECK_THROWS_AS(atman::explain(engine, request, atman::config{}), atman::invalid_argument);
    request = c.request;
    request.target_tokens.clear();
    CHECK_THROWS_AS(atman::explain(engine, request, atman::config{}), atman::invalid_argument);
    request = c.request;
    request.units.back().positions.push_back(11);  // a target position
    CHECK_THROWS_AS(atman::explain(engine, request, atman::config{}), atman::invalid_argument);
    request = c.request;
    request.units.back().end = index_t(request.prompt.size()) + 1;
    CHECK_THROWS_AS(atman::explain(engine, request, atman::config{}), atman::invalid_argument);

    const atman::plan p = atman::plan_explanation(engine, c.request, atman::config{});
    request = c.request;
    request.target_tokens.push_back(2);
    request.target_texts.push_back(" t2");
    CHECK_THROWS_AS(atman::explain_deltas(engine, request, atman::config{}, p),
                    atman::invalid_argument);
}

TEST_CASE("the explanation names the request's units") {
    case_data c = make_case();
    tiny_transformer engine;
    CHECK(atman::explain(engine, c.request, {}).units_by == atman::granularity::spans);  // by hand
    c.request.units_by = atman::granularity::sentence;
    CHECK(atman::explain(engine, c.request, {}).units_by == atman::granularity::sentence);
}
