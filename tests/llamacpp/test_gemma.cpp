// A second architecture through the llama.cpp adapter: Gemma 3 270M (base
// model, Q4_K_M, $ATMAN_GEMMA_MODEL), with sliding-window layers in their own
// kv cache and a SentencePiece vocabulary atman's tokenizer lacks, so the
// tokens come from llama.cpp's tokenizer. No reference engine runs Gemma: the
// checks are what holds for any correct explanation (phi = 1 changes nothing,
// the word a fact rests on ranks first) and llama.cpp against itself.

#include <catch2/catch.hpp>

#include <llama.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <atman/atman.hpp>

#include "engine/gguf.hpp"
#include "engine/prompt.hpp"
#include "llamacpp_engine.hpp"
#include "llamacpp_text.hpp"
#include "support/default_model.hpp"
#include "support/perturbed_rows.hpp"

using atman::index_t;
using atman::manipulation_mode;
namespace eng = atman::engine;

namespace {

constexpr int threads = 2;
constexpr index_t gemma_layers = 18;

const atman::llamacpp::prompt_text& text() {
    static const atman::llamacpp::prompt_text t = atman::llamacpp::load_prompt_text(
        eng::gguf_file::open(atman_test::gemma_model_path()), atman_test::gemma_model_path(), true);
    return t;
}

atman::llamacpp::engine& gemma() {
    static atman::llamacpp::engine e(atman_test::gemma_model_path(), {64, threads});
    return e;
}

// The model with its sliding window overridden to `window` positions (GGUF
// key gemma3.attention.sliding_window; Gemma 3's own is 512, longer than any
// prompt here), so that short prompts reach past it.
atman::llamacpp::engine& gemma_with_window(std::int64_t window) {
    static llama_model_kv_override overrides[2] = {};
    overrides[0].tag = LLAMA_KV_OVERRIDE_TYPE_INT;
    std::strcpy(overrides[0].key, "gemma3.attention.sliding_window");
    overrides[0].val_i64 = window;
    atman::llamacpp::engine_options options{64, threads};
    options.model_params = [](llama_model_params& mp) { mp.kv_overrides = overrides; };
    static atman::llamacpp::engine e(atman_test::gemma_model_path(), options);
    return e;
}

// Raw prompts (the base model has no chat template), word units over the whole prompt.
atman::explain_request request_for(const std::string& prompt, const std::string& target) {
    const eng::prompt_tokens tokens = eng::tokenize_prompt(*text().tok, nullptr, prompt);
    atman::unit_options units;
    units.by = atman::granularity::word;
    return eng::make_request(*text().tok, tokens, text().tok->encode_ids(target), units);
}

std::string top_unit(const atman::explanation& e) {
    const auto top = std::max_element(e.units.begin(), e.units.end(),
                                      [](const atman::unit_score& a, const atman::unit_score& b) { return a.score < b.score; });
    return top->text;
}

// llama.cpp's CE of one sequence moves with the KV cells it occupies (see
// test_adapter.cpp): on Gemma 3 by up to 0.32 nats (measured with the
// 4-position window below); the bound keeps a margin. A misplaced cell or a
// lost prefix moves it by nats.
constexpr double cell_noise = 0.5;

}  // namespace

TEST_CASE("Gemma 3: llama.cpp's tokenizer, since atman's lacks SentencePiece, with tiling byte ranges") {
    REQUIRE(text().by == "llama.cpp");
    const std::string prompt = "The capital of France is Paris. Ünïcödé, 12345 and  two spaces\n";
    const std::vector<eng::token> tokens = text().tok->encode(prompt, false);
    REQUIRE_FALSE(tokens.empty());
    index_t at = 0;
    std::string joined;
    for (const eng::token& t : tokens) {
        CHECK(t.start == at);
        CHECK(t.end > t.start);
        CHECK(prompt.substr(std::size_t(t.start), std::size_t(t.end - t.start)) == text().tok->token_bytes(t.id));
        at = t.end;
    }
    CHECK(at == index_t(prompt.size()));
    CHECK(text().tok->add_bos());
    CHECK(text().tok->is_special(text().tok->bos_id()));
    CHECK(text().tok->find("<start_of_turn>") >= 0);
}

TEST_CASE("Gemma 3: the base model completes the prompts with the words the tests explain") {
    // The targets below are the facts a human expects; the model's own greedy
    // answer is checked to start with them, so the explanations are of what it says.
    for (const auto& [prompt, answer] : std::vector<std::pair<std::string, std::string>>{
             {"The opposite of hot is", " cold"}, {"Water is made of hydrogen and", " oxygen"}}) {
        INFO(prompt);
        const eng::prompt_tokens tokens = eng::tokenize_prompt(*text().tok, nullptr, prompt);
        const std::vector<std::int32_t> said = gemma().generate(tokens.ids, 3, {});
        CHECK(text().tok->decode(said).rfind(answer, 0) == 0);
    }
}

TEST_CASE("Gemma 3: factor 1 leaves the base CE, exactly in explain and within llama.cpp's noise in a row") {
    const atman::explain_request request = request_for("The opposite of hot is", " cold");
    for (const manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        INFO(atman::to_string(mode));
        atman::config cfg;
        cfg.mode = mode;
        cfg.factor = 1.0;
        const atman::explanation e = atman::explain(gemma(), request, cfg);
        REQUIRE(e.units.size() == 5);
        for (const atman::unit_score& u : e.units) CHECK(u.score == 0.0);

        // The same by hand: a row of factor 1 everywhere, one position marked
        // touched, recomputed from position 3 on the base pass's cells and
        // from 0, gives the base CE.
        const atman::teacher_forced_sequence seq(request.prompt_tokens, request.target_tokens);
        const atman::sequence_view view = seq.view();
        std::vector<double> base(std::size_t(view.n_targets));
        gemma().base_pass(view, base.data());
        const std::vector<float> ones(std::size_t(view.length), 1.0f);
        const index_t touched = 3;
        const std::vector<atman::row_view> rows = {atman_test::all_ones_row(ones, touched, 3),
                                                   atman_test::all_ones_row(ones, touched, 0)};
        std::vector<double> ce(rows.size() * base.size());
        gemma().perturbed_pass(view, {mode, rows.data(), index_t(rows.size())}, ce.data());
        for (std::size_t t = 0; t < base.size(); ++t) {
            CHECK(std::abs(ce[t] - base[t]) <= cell_noise);
            CHECK(std::abs(ce[base.size() + t] - base[t]) <= cell_noise);
        }
        CHECK(gemma().manipulated_layers() == gemma_layers);
    }
}

TEST_CASE("Gemma 3: the word a fact rests on ranks first, both modes") {
    // Chosen by hand: "cold" rests on "hot", "oxygen" on "hydrogen" (of the
    // prompts tried, docs/llama-cpp.md lists those where Gemma ranks another word first).
    const std::vector<std::pair<std::string, std::pair<std::string, std::string>>> facts = {
        {"hot", {"The opposite of hot is", " cold"}}, {"hydrogen", {"Water is made of hydrogen and", " oxygen"}}};
    for (const manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        atman::config cfg;
        cfg.mode = mode;
        for (const auto& [word, fact] : facts) {
            INFO(atman::to_string(mode) << ": " << fact.first << " ->" << fact.second);
            const atman::explanation e = atman::explain(gemma(), request_for(fact.first, fact.second), cfg);
            CHECK(top_unit(e) == word);
            CHECK(gemma().manipulated_layers() == gemma_layers);
        }
    }
}

TEST_CASE("Gemma 3 with a 4-position sliding window: rows reach past the window, reuse changes nothing") {
    // Over 20 tokens the sliding-window layers' rows see only their last 4
    // positions (the adapter checks each row's mask against that), the global
    // layers all of them.
    const atman::explain_request request =
        request_for("Tom has three red apples and two green pears in a basket; the fruit he has most of is the", " apples");
    const atman::teacher_forced_sequence seq(request.prompt_tokens, request.target_tokens);
    const atman::sequence_view view = seq.view();
    REQUIRE(view.length > 16);
    std::vector<double> base(std::size_t(view.n_targets));
    gemma_with_window(4).base_pass(view, base.data());
    for (const manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        INFO(atman::to_string(mode));
        const std::vector<atman::perturbation> perturbations = {atman_test::perturbation_at({4, 5}, 0.0f),
                                                                atman_test::perturbation_at({view.first_scored - 2}, 0.0f)};
        const atman_test::perturbed_rows with_reuse(perturbations, view.length, mode, true);
        const atman_test::perturbed_rows without(perturbations, view.length, mode, false);
        std::vector<double> reused(perturbations.size() * base.size()), full(reused.size());
        gemma_with_window(4).perturbed_pass(view, with_reuse.view(), reused.data());
        gemma_with_window(4).perturbed_pass(view, without.view(), full.data());
        for (std::size_t i = 0; i < reused.size(); ++i) CHECK(std::abs(reused[i] - full[i]) <= cell_noise);
        CHECK(gemma_with_window(4).manipulated_layers() == gemma_layers);
        atman::config cfg;
        cfg.mode = mode;
        const atman::explanation e = atman::explain(gemma_with_window(4), request, cfg);
        CHECK(e.units.size() >= 15);
    }
}
