// The same explanation twice is byte-identical JSON (the timing aside), and
// batch sizes and thread counts change no score by more than 1e-5. On the
// default model (ATMAN_MODEL), with the chat template, word units.

#include <catch2/catch.hpp>

#include <omp.h>

#include <cmath>
#include <string>
#include <vector>

#include <atman/explainer.hpp>
#include <atman/report/json.hpp>

#include "engine/chat_template.hpp"
#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "engine/prompt.hpp"
#include "engine/tokenizer.hpp"
#include "support/default_model.hpp"

namespace eng = atman::engine;
using atman::index_t;

namespace {

struct default_model {
    eng::gguf_file file;
    eng::tokenizer tok;
    eng::chat_template tmpl;
    eng::llama_model model;

    explicit default_model(const std::string& path)
        : file(eng::gguf_file::open(path)), tok(file), tmpl(eng::chat_template::from_gguf(file)),
          model(eng::llama_model::load(file)) {}
};

const default_model& model() {
    static const default_model m(atman_test::model_path());
    return m;
}

atman::explain_request request(const std::string& target) {
    const default_model& m = model();
    const eng::prompt_tokens prompt = eng::tokenize_prompt(
        m.tok, &m.tmpl, "Alice lives in Paris. Bob lives in Rome. Where does Alice live?");
    return eng::make_request(m.tok, prompt, m.tok.encode_ids(target), {});
}

atman::explanation explain_with(const std::string& target, index_t batch_rows, int threads) {
    omp_set_num_threads(threads);
    eng::llama_engine engine(model().model);
    atman::config cfg;
    cfg.max_batch_rows = batch_rows;
    atman::explanation e = atman::explain(engine, request(target), cfg);
    e.stats.seconds = 0;  // the one field that may differ
    return e;
}

// Batches of 1 (the reference), 3, 5, 7, 64 rows and 1, 2, 4, all threads agree within 1e-5.
void check_batches_and_threads_agree(const std::string& target) {
    const int all = omp_get_max_threads();
    const atman::explanation reference = explain_with(target, 1, 1);
    REQUIRE(reference.units.size() >= 10);
    double largest = 0;
    for (const auto& [rows, threads] : std::vector<std::pair<index_t, int>>{{3, 1}, {64, 1}, {1, 2}, {5, all}, {7, 4}}) {
        INFO("target \"" << target << "\", batch rows " << rows << ", threads " << threads);
        const atman::explanation e = explain_with(target, rows, threads);
        REQUIRE(e.units.size() == reference.units.size());
        for (std::size_t k = 0; k < e.units.size(); ++k) {
            CHECK(std::abs(e.units[k].score - reference.units[k].score) <= 1e-5);
            largest = std::max(largest, std::abs(e.units[k].score - reference.units[k].score));
        }
    }
    omp_set_num_threads(all);
    WARN("target \"" << target << "\": largest score difference across batch sizes and thread counts: "
                      << largest);
}

}  // namespace

TEST_CASE("determinism: the same explanation twice is byte-identical JSON") {
    const int threads = omp_get_max_threads();
    const std::string first = atman::to_json(explain_with("Paris", 0, threads));
    const std::string second = atman::to_json(explain_with("Paris", 0, threads));
    CHECK(first == second);
    CHECK(first.find("\"seconds\": 0") != std::string::npos);
}

TEST_CASE("determinism: batch sizes and thread counts agree within 1e-5 (target of several tokens)") {
    check_batches_and_threads_agree("Alice lives in Paris.");
}

TEST_CASE("determinism: batch sizes and thread counts agree within 1e-5 (one-token target)") {
    check_batches_and_threads_agree("Paris");
}
