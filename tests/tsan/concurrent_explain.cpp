// Threads explain different prompts at once with one shared, read-only model
// and tokenizer, each with its own engine; every result must equal the same
// explanation computed alone. Run under ThreadSanitizer (see CMakeLists.txt),
// which reports any data race; exits non-zero on a mismatch.
//
// The model: the tiny one of the fuzz corpus (random weights, the same code
// paths), or the GGUF file given as the argument. The real SmolLM2 takes more
// than 15 minutes under ThreadSanitizer on two cores.

#include <atman/explainer.hpp>

#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "engine/prompt.hpp"
#include "engine/tokenizer.hpp"

namespace eng = atman::engine;

namespace {

const char* const prompts[] = {"the capital is the city", "is the is the", "Paris is the capital of France",
                               "the end is near, the end"};
constexpr int repeats = 3;  // explanations per thread

std::vector<double> scores_of(const eng::llama_model& model, const eng::tokenizer& tok, const std::string& text,
                              const atman::config& cfg) {
    eng::llama_engine engine(model);
    const eng::prompt_tokens prompt = eng::tokenize_prompt(tok, nullptr, text);
    const atman::explain_request request = eng::make_request(tok, prompt, tok.encode_ids(" the is"), {});
    std::vector<double> scores;
    for (const atman::unit_score& u : atman::explain(engine, request, cfg).units) scores.push_back(u.score);
    return scores;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string path = argc > 1 ? argv[1] : ATMAN_TINY_MODEL;
    const eng::gguf_file file = eng::gguf_file::open(path);
    const eng::tokenizer tok(file);
    const eng::llama_model model = eng::llama_model::load(file);
    atman::config cfg;
    cfg.conceptual = true;  // input embeddings and neighbourhoods too
    cfg.max_batch_rows = 2;

    std::vector<std::vector<double>> expected;
    for (const char* text : prompts) expected.push_back(scores_of(model, tok, text, cfg));

    const int n_threads = int(std::size(prompts));
    std::vector<int> mismatches(std::size_t(n_threads), 0);
    std::vector<std::thread> threads;
    for (int t = 0; t < n_threads; ++t) {
        threads.emplace_back([&, t] {
            for (int r = 0; r < repeats; ++r) {
                const int k = (t + r) % n_threads;  // threads explain different prompts at any moment
                if (scores_of(model, tok, prompts[k], cfg) != expected[std::size_t(k)]) ++mismatches[std::size_t(t)];
            }
        });
    }
    for (std::thread& thread : threads) thread.join();

    int failed = 0;
    for (int m : mismatches) failed += m;
    std::cout << "tsan_concurrent_explain: " << n_threads << " threads x " << repeats << " explanations on " << path
              << ": " << failed << " mismatches\n";
    return failed == 0 ? 0 : 1;
}
