// A NaN or infinity in the model's logits or input embeddings makes the
// explanation fail with a numeric_error naming where, never NaN scores.
// The tiny fuzz-corpus model is patched: a NaN in the final norm poisons
// every logit; a NaN in an input embedding is found by the neighbourhood search.

#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <atman/explainer.hpp>

#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "tiny_llama.hpp"

namespace eng = atman::engine;
using atman::index_t;

namespace {

eng::llama_model model_with(const char* tensor, std::int64_t index, float value) {
    auto bytes = tiny_llama::bytes();
    tiny_llama::set_f32(bytes, tensor, index, value);
    return eng::llama_model::load(eng::gguf_file::from_bytes(bytes));
}

atman::explain_request small_request() {
    atman::explain_request r;
    r.prompt = "abcd";
    r.prompt_tokens = {65, 66, 67, 68};
    for (index_t i = 0; i < 4; ++i) r.units.push_back({{i}, i, i + 1});
    r.target_tokens = {69, 70};
    return r;
}

}  // namespace

TEST_CASE("numerics: the unpatched tiny model explains with finite scores") {
    const eng::llama_model model = eng::llama_model::load(eng::gguf_file::from_bytes(tiny_llama::bytes()));
    eng::llama_engine engine(model);
    atman::config cfg;
    cfg.conceptual = true;
    for (const atman::unit_score& u : atman::explain(engine, small_request(), cfg).units) CHECK(std::isfinite(u.score));
}

TEST_CASE("numerics: non-finite logits fail naming the position") {
    for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
        const eng::llama_model model = model_with("output_norm.weight", 3, bad);
        eng::llama_engine engine(model);
        CHECK_THROWS_AS(atman::explain(engine, small_request(), {}), atman::numeric_error);
        CHECK_THROWS_WITH(atman::explain(engine, small_request(), {}),
                          Catch::Contains("logits at position 3") && Catch::Contains("not finite"));
    }
}

TEST_CASE("numerics: a non-finite input embedding fails naming the position") {
    // The Q8_0 token embedding cannot be patched as float; the attention norm
    // of the only layer turns every hidden state of the first layer into NaN,
    // which the logits then report, while the input embeddings stay finite.
    const eng::llama_model model = model_with("blk.0.attn_norm.weight", 0, std::numeric_limits<float>::quiet_NaN());
    eng::llama_engine engine(model);
    CHECK_THROWS_WITH(atman::explain(engine, small_request(), {}), Catch::Contains("not finite"));

    // Input embeddings straight from an engine that returns a NaN for position 2.
    struct nan_embedding_engine {
        eng::llama_engine& inner;
        void base_pass(const atman::sequence_view& s, double* ce) { inner.base_pass(s, ce); }
        void perturbed_pass(const atman::sequence_view& s, const atman::batch_view& b, double* ce) {
            inner.perturbed_pass(s, b, ce);
        }
        index_t embedding_dim() const { return inner.embedding_dim(); }
        void input_embeddings(const atman::sequence_view& s, float* out) {
            inner.input_embeddings(s, out);
            out[2 * embedding_dim() + 5] = std::numeric_limits<float>::quiet_NaN();
        }
    };
    const eng::llama_model good = eng::llama_model::load(eng::gguf_file::from_bytes(tiny_llama::bytes()));
    eng::llama_engine good_engine(good);
    nan_embedding_engine poisoned{good_engine};
    atman::config cfg;
    cfg.conceptual = true;
    CHECK_THROWS_AS(atman::explain(poisoned, small_request(), cfg), atman::numeric_error);
    CHECK_THROWS_WITH(atman::explain(poisoned, small_request(), cfg), Catch::Contains("embedding of position 2"));
}
