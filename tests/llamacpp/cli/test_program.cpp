// atman-explain-llamacpp run as a user runs it, beside atman-explain on the
// same prompt: the same JSON shape and tokens, scores in the same order,
// --factor 1 exactly zero, bad usage refused as atman-explain refuses it.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "support/default_model.hpp"
#include "support/run_program.hpp"

using nlohmann::json;
using atman_test::run_program;

namespace {

json explain_json(const std::string& program, const std::vector<std::string>& extra) {
    std::vector<std::string> args = {"--model", atman_test::model_path(), "--prompt", "What is the capital of France?",
                                     "--target", "Paris", "--format", "json", "--threads", "2", "-q"};
    args.insert(args.end(), extra.begin(), extra.end());
    const atman_test::program_result r = run_program(program, args);
    INFO(program << " stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(r.out);
}

}  // namespace

TEST_CASE("atman-explain-llamacpp: the same tokens and units as atman-explain, the same top unit") {
    for (const char* mode : {"multiplicative", "log_additive"}) {
        INFO(mode);
        const json expected = explain_json(ATMAN_EXPLAIN, {"--mode", mode});
        const json got = explain_json(ATMAN_EXPLAIN_LLAMACPP, {"--mode", mode});
        CHECK(got.at("model").at("engine") == "llama.cpp");
        CHECK(got.at("model").at("architecture") == "llama");
        REQUIRE(got.at("target_tokens").size() == expected.at("target_tokens").size());
        for (std::size_t t = 0; t < got.at("target_tokens").size(); ++t)
            CHECK(got.at("target_tokens")[t].at("id") == expected.at("target_tokens")[t].at("id"));
        REQUIRE(got.at("units").size() == expected.at("units").size());
        std::size_t top_got = 0, top_expected = 0;
        for (std::size_t u = 0; u < got.at("units").size(); ++u) {
            CHECK(got.at("units")[u].at("tokens") == expected.at("units")[u].at("tokens"));
            CHECK(got.at("units")[u].at("text") == expected.at("units")[u].at("text"));
            if (got.at("units")[u].at("score") > got.at("units")[top_got].at("score")) top_got = u;
            if (expected.at("units")[u].at("score") > expected.at("units")[top_expected].at("score")) top_expected = u;
        }
        CHECK(top_got == top_expected);
    }
}

TEST_CASE("atman-explain-llamacpp: --factor 1 gives exactly zero scores in both modes") {
    for (const char* mode : {"multiplicative", "log_additive"}) {
        INFO(mode);
        const json e = explain_json(ATMAN_EXPLAIN_LLAMACPP, {"--factor", "1", "--mode", mode});
        REQUIRE_FALSE(e.at("units").empty());
        for (const json& unit : e.at("units")) {
            CHECK(unit.at("score").get<double>() == 0.0);
            for (const json& d : unit.at("scores_per_target")) CHECK(d.get<double>() == 0.0);
        }
    }
}

TEST_CASE("atman-explain-llamacpp: a missing model file is a clear error, exit code 1") {
    const atman_test::program_result r =
        run_program(ATMAN_EXPLAIN_LLAMACPP, {"--model", "/nonexistent/model.gguf", "--prompt", "x", "--target", "y"});
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("/nonexistent/model.gguf") != std::string::npos);
}

TEST_CASE("atman-explain-llamacpp: what it cannot do is bad usage, before the model is opened") {
    const atman_test::program_result search = run_program(
        ATMAN_EXPLAIN_LLAMACPP, {"--model", "/nonexistent/model.gguf", "--prompt", "x", "--search", "hierarchical"});
    CHECK(search.exit_code == 2);
    CHECK(search.err.find("--search hierarchical runs in atman-explain only") != std::string::npos);
    const atman_test::program_result output = run_program(
        ATMAN_EXPLAIN_LLAMACPP, {"--model", "/nonexistent/model.gguf", "--prompt", "x", "-o", "/nonexistent/dir/out.json"});
    CHECK(output.exit_code == 2);
    CHECK(output.err.find("/nonexistent/dir/out.json") != std::string::npos);
    CHECK(output.err.find("model.gguf") == std::string::npos);  // refused before loading
}

TEST_CASE("atman-explain-llamacpp on Gemma 3: llama.cpp's tokenizer, the word the fact rests on first") {
    const std::vector<std::string> args = {"--model", atman_test::gemma_model_path(), "--prompt",
                                           "The Eiffel Tower is in the city of", "--target", " Paris", "--format", "json",
                                           "--threads", "2", "-q"};
    std::vector<std::string> raw = args;
    raw.push_back("--raw");
    const atman_test::program_result r = run_program(ATMAN_EXPLAIN_LLAMACPP, raw);
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const json e = json::parse(r.out);
    CHECK(e.at("model").at("architecture") == "gemma3");
    CHECK(e.at("model").at("tokenizer") == "llama.cpp");
    std::size_t top = 0;
    for (std::size_t u = 0; u < e.at("units").size(); ++u)
        if (e.at("units")[u].at("score") > e.at("units")[top].at("score")) top = u;
    CHECK(e.at("units")[top].at("text") == "Eiffel");  // chosen by hand: "Paris" rests on "Eiffel"

    // The base model has no chat template: without --raw that is said, with the way out.
    const atman_test::program_result templated = run_program(ATMAN_EXPLAIN_LLAMACPP, args);
    CHECK(templated.exit_code != 0);
    CHECK(templated.err.find("no chat template") != std::string::npos);
    CHECK(templated.err.find("--raw") != std::string::npos);
}
