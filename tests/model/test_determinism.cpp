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

const std::string short_prompt = "Alice lives in Paris. Bob lives in Rome. Where does Alice live?";

// About 300 tokens in the chat template: a batch of its sentences stacks over a
// thousand positions, past the engine's row blocks (256 per thread) and past
// the widths at which the attention kernel's score buffer grows.
const std::string long_prompt =
    "The harbour town of Lindmere sits at the mouth of a cold river, and for three centuries its "
    "people lived from herring, salt and the timber that came down from the northern forests. "
    "In 1871 a railway reached the town, and within ten years the old wooden quays had been "
    "replaced by a stone pier long enough for steamships. The fish market moved to the new pier, "
    "while the salt works closed because cheaper salt now arrived by train from the south. "
    "A young engineer named Clara Voss designed the town's first waterworks in 1889; her "
    "reservoir on Beacon Hill still supplies the old quarter today. The town hall, finished in "
    "1902, was built from red granite quarried at Holt, a village twelve kilometres upriver. "
    "During the great storm of 1953 the sea broke through the dunes west of the harbour and "
    "flooded the lower streets for nine days, after which the council raised the sea wall by two "
    "metres. Tourism began slowly in the 1960s, when a ferry service to the islands opened, and "
    "the former customs house became a maritime museum in 1978. Lindmere now has about "
    "fourteen thousand inhabitants, a small university college specialising in marine biology, "
    "and a festival every August in which the fishing boats are decorated with lanterns. "
    "Who designed the waterworks of Lindmere?";

atman::explain_request request(const std::string& text, const std::string& target, atman::granularity by) {
    const default_model& m = model();
    const eng::prompt_tokens prompt = eng::tokenize_prompt(m.tok, &m.tmpl, text);
    atman::unit_options units;
    units.by = by;
    return eng::make_request(m.tok, prompt, m.tok.encode_ids(target), units);
}

atman::explanation explain_with(const atman::explain_request& request, index_t batch_rows, int threads) {
    omp_set_num_threads(threads);
    eng::llama_engine engine(model().model);
    atman::config cfg;
    cfg.max_batch_rows = batch_rows;
    atman::explanation e = atman::explain(engine, request, cfg);
    e.stats.seconds = 0;  // the one field that may differ
    return e;
}

atman::explanation explain_with(const std::string& target, index_t batch_rows, int threads) {
    return explain_with(request(short_prompt, target, atman::granularity::word), batch_rows, threads);
}

// Batches of the given rows (0: the automatic budget) and thread counts agree
// within 1e-5 with batches of 1 on one thread.
void check_batches_and_threads_agree(const atman::explain_request& request,
                                     const std::vector<std::pair<index_t, int>>& configurations) {
    const int all = omp_get_max_threads();
    const atman::explanation reference = explain_with(request, 1, 1);
    REQUIRE(reference.units.size() >= 8);
    double largest = 0;
    for (auto [rows, threads] : configurations) {
        if (threads == 0) threads = all;
        INFO("batch rows " << rows << ", threads " << threads);
        const atman::explanation e = explain_with(request, rows, threads);
        REQUIRE(e.units.size() == reference.units.size());
        for (std::size_t k = 0; k < e.units.size(); ++k) {
            CHECK(std::abs(e.units[k].score - reference.units[k].score) <= 1e-5);
            largest = std::max(largest, std::abs(e.units[k].score - reference.units[k].score));
        }
    }
    omp_set_num_threads(all);
    WARN("largest score difference across batch sizes and thread counts: " << largest);
}

void check_batches_and_threads_agree(const std::string& target) {
    INFO("target \"" << target << "\"");
    check_batches_and_threads_agree(request(short_prompt, target, atman::granularity::word),
                                    {{3, 1}, {64, 1}, {1, 2}, {5, 0}, {7, 4}});
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

// Rows stacked after longer ones, and stacks past the row blocks: before the
// attention kernel padded its score rows and the LM head its positions, these
// differed by up to 3.4e-5 from batches of one.
TEST_CASE("determinism: batch sizes and thread counts agree within 1e-5 (a prompt of 300 tokens)") {
    const atman::explain_request long_request =
        request(long_prompt, "Clara Voss designed them in 1889.", atman::granularity::sentence);
    REQUIRE(long_request.prompt_tokens.size() >= 280);
    check_batches_and_threads_agree(long_request, {{4, 1}, {0, 0}, {5, 2}});
}
