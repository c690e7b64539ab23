// atman-explain run as a user runs it: exit codes and messages, the JSON and
// HTML it writes, and one sensibility check on the default model.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/default_model.hpp"
#include "support/json_schema_check.hpp"
#include "support/run_program.hpp"

using nlohmann::json;
using atman_test::run_program;

namespace {

const std::string capital_prompt = "What is the capital of France?";

// One explanation of "Paris" after capital_prompt (templated), as JSON and
// HTML files, run once for all tests that read it.
struct capital_run {
    atman_test::program_result result;
    json explanation;
    std::string html;
};

const capital_run& explain_capital() {
    static const capital_run run = [] {
        const atman_test::scratch_dir dir("atman-cli-explain");
        capital_run r;
        r.result = run_program(ATMAN_EXPLAIN, {"--model", atman_test::model_path(), "--prompt", capital_prompt,
                                               "--target", "Paris", "--format", "json", "-o",
                                               (dir / "out.json").string(), "--html", (dir / "out.html").string(),
                                               "--threads", "1"});
        r.explanation = json::parse(atman_test::read_text(dir / "out.json"), nullptr, false);
        r.html = atman_test::read_text(dir / "out.html");
        return r;
    }();
    return run;
}

}  // namespace

TEST_CASE("atman-explain: --format json -o FILE satisfies the schema and names the model") {
    const capital_run& run = explain_capital();
    INFO("stderr: " << run.result.err);
    REQUIRE(run.result.exit_code == 0);
    CHECK(run.result.out.empty());  // the JSON went to the file
    REQUIRE_FALSE(run.explanation.is_discarded());
    for (const std::string& error : atman_test::schema_violations(run.explanation, atman_test::explanation_schema()))
        FAIL_CHECK(error);
    CHECK(run.explanation.at("schema") == "atman.explanation/1");
    CHECK(run.explanation.at("target") == "Paris");
    const json& model = run.explanation.at("model");
    CHECK(model.at("path") == atman_test::model_path());
    CHECK(model.at("architecture") == "llama");
    CHECK(model.at("name").is_string());
    CHECK(model.at("parameters").get<double>() > 1e8);  // SmolLM2-135M
    // Not raw: the chat template surrounds the user's words.
    CHECK(run.explanation.at("prompt").get<std::string>().find(capital_prompt) != std::string::npos);
    CHECK(run.explanation.at("prompt").get<std::string>() != capital_prompt);
    CHECK(run.result.err.find("units") != std::string::npos);  // the summary line
}

TEST_CASE("atman-explain: --html FILE writes the heatmap page") {
    const capital_run& run = explain_capital();
    REQUIRE(run.result.exit_code == 0);
    CHECK(run.html.find("<html") != std::string::npos);
    CHECK(run.html.find("capital") != std::string::npos);
}

// Sensibility: asked "What is the capital of France?", the model's "Paris"
// must rest on "France?" or "capital", so one of them is among the top two
// of the six word units.
TEST_CASE("atman-explain: Paris is explained by France or capital") {
    const capital_run& run = explain_capital();
    REQUIRE(run.result.exit_code == 0);
    std::vector<std::pair<double, std::string>> ranked;
    for (const json& unit : run.explanation.at("units")) ranked.emplace_back(unit.at("score"), unit.at("text"));
    REQUIRE(ranked.size() == 6);
    std::sort(ranked.rbegin(), ranked.rend());
    INFO("top two: " << ranked[0].second << " " << ranked[0].first << ", " << ranked[1].second << " "
                     << ranked[1].first);
    const auto top2 = [&](const std::string& text) { return ranked[0].second == text || ranked[1].second == text; };
    CHECK((top2("France?") || top2("capital")));
}

TEST_CASE("atman-explain: bad usage exits 2 with one line naming the problem") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--prompt", "x", "--no-such-option"}, "--no-such-option"},
        {{"--prompt", "x", "--factor", "-1"}, "factor"},
        {{"--prompt", "x", "--kappa", "2"}, "kappa"},
        {{"--target", "Paris"}, "--prompt"},
    };
    for (const auto& [args, named] : cases) {
        const atman_test::program_result r = run_program(ATMAN_EXPLAIN, args);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find(named) != std::string::npos);
        CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
        CHECK(r.out.empty());
    }
}

TEST_CASE("atman-explain: a missing model file exits 1 naming the file") {
    const atman_test::program_result r =
        run_program(ATMAN_EXPLAIN, {"--model", "/nonexistent/model.gguf", "--prompt", "x", "--target", "y"});
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("/nonexistent/model.gguf") != std::string::npos);
    CHECK(r.out.empty());
}

TEST_CASE("atman-explain: --help exits 0 listing the options") {
    const atman_test::program_result r = run_program(ATMAN_EXPLAIN, {"--help"});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("--prompt-file") != std::string::npos);
    CHECK(r.err.empty());
}

TEST_CASE("atman-explain: --factor 1 gives exactly zero scores in both modes") {
    for (const char* mode : {"multiplicative", "log_additive"}) {
        INFO(mode);
        const atman_test::program_result r =
            run_program(ATMAN_EXPLAIN, {"--model", atman_test::model_path(), "--prompt", capital_prompt, "--target",
                                        "Paris", "--factor", "1", "--mode", mode, "--format", "json", "-q"});
        REQUIRE(r.exit_code == 0);
        const json e = json::parse(r.out);
        REQUIRE(e.at("units").size() == 6);
        for (const json& unit : e.at("units")) {
            CHECK(unit.at("score").get<double>() == 0.0);
            for (const json& d : unit.at("scores_per_target")) CHECK(d.get<double>() == 0.0);
        }
    }
}

TEST_CASE("atman-explain: --search hierarchical measures fewer units and marks the others") {
    const std::string prompt = "Paris is the capital of France. It lies on the Seine.\n\n"
                               "Berlin is the capital of Germany. It is large.\n\n"
                               "Rome is old. It has many churches.";
    const atman_test::program_result r =
        run_program(ATMAN_EXPLAIN, {"--model", atman_test::model_path(), "--prompt", prompt, "--target", " Paris",
                                    "--search", "hierarchical", "--refine-top-k", "1", "--format", "json", "-q",
                                    "--threads", "1"});
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    const json e = json::parse(r.out);
    for (const std::string& error : atman_test::schema_violations(e, atman_test::explanation_schema()))
        FAIL_CHECK(error);
    CHECK(e.at("search") == json({{"strategy", "hierarchical"},
                                  {"levels", {"paragraph", "sentence", "word"}},
                                  {"top_k", 1},
                                  {"rank", "score"},
                                  {"threshold", nullptr},
                                  {"max_units", 0}}));
    REQUIRE(e.at("units").size() == 27);
    long measured = 0;
    for (const json& unit : e.at("units")) measured += unit.at("measured").get<bool>() ? 1 : 0;
    // 3 paragraphs, the 2 sentences of the best one, the 3 to 6 words of its best sentence.
    CHECK(measured >= 3);
    CHECK(measured <= 6);
    CHECK(e.at("stats").at("units_measured").get<long>() == 3 + 2 + measured);
}

TEST_CASE("atman-explain: --search options are checked") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--prompt", "x", "--search", "greedy"}, "--search"},
        {{"--prompt", "x", "--levels", "sentence"}, "--levels needs --search hierarchical"},
        {{"--prompt", "x", "--max-units", "9"}, "--max-units needs --search hierarchical"},
        {{"--prompt", "x", "--refine-rank", "magnitude"}, "--refine-rank needs --search hierarchical"},
        {{"--prompt", "x", "--search", "hierarchical", "--refine-rank", "loudest"},
         "must be score, magnitude or per_unit, got 'loudest'"},
        {{"--prompt", "x", "--search", "hierarchical", "--levels", "sentence,paragraph"},
         "--levels must go from coarse to fine"},
        {{"--prompt", "x", "--search", "hierarchical", "--granularity", "delimiter", "--delimiter", ";"},
         "--search hierarchical needs --granularity token, word or sentence"},
        {{"--prompt", "x", "--search", "hierarchical", "--conceptual"}, "cannot be used with --conceptual"},
        {{"--prompt", "x", "--search", "hierarchical", "--refine-top-k", "-1"}, "--refine-top-k"},
        {{"--prompt", "x", "--search", "hierarchical", "--levels", "chapter"},
         "must be paragraph, sentence or word, got 'chapter'"},
        {{"--prompt", "x", "--search", "hierarchical", "--max-units", "1e99"}, "--max-units"},
    };
    for (const auto& [args, named] : cases) {
        const atman_test::program_result r = run_program(ATMAN_EXPLAIN, args);
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK(r.err.find(named) != std::string::npos);
        CHECK(r.out.empty());
    }
}

namespace {

// atman-explain with args, started by /bin/sh after `setup` (a shell command
// run first; "$0" "$@" is the program and its arguments, for redirections).
atman_test::program_result run_in_shell(const std::string& setup, const std::string& exec_redirect,
                                        std::vector<std::string> args) {
    args.insert(args.begin(), {"-c", setup + "; exec \"$0\" \"$@\" " + exec_redirect, ATMAN_EXPLAIN});
    return run_program("/bin/sh", args);
}

std::vector<std::string> paris_args() {
    return {"--model", atman_test::model_path(), "--prompt", capital_prompt, "--target", "Paris",
            "--format", "json", "-q", "--threads", "1"};
}

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
    args.insert(args.end(), more.begin(), more.end());
    return args;
}

}  // namespace

TEST_CASE("atman-explain: a failed write to standard output exits 1 saying why") {
    const atman_test::program_result full = run_in_shell(":", ">/dev/full", paris_args());
    CHECK(full.exit_code == 1);
    CHECK(full.err == "atman-explain: cannot write the output to standard output: No space left on device\n");
    // A closed stdout is found before any work (it would be the next file opened).
    const atman_test::program_result closed = run_in_shell(":", ">&-", paris_args());
    CHECK(closed.exit_code == 2);
    CHECK_THAT(closed.err, Catch::Contains("standard output is closed"));
}

TEST_CASE("atman-explain: an output that cannot be written is refused before the model is opened") {
    const atman_test::scratch_dir dir("atman-cli-unwritable");
    const std::string kept = (dir / "kept.json").string();
    std::ofstream(kept) << "old";
    // The model does not exist: refusing the output first proves the order.
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"-o", kept, "--html", "/nonexistent/dir/page.html"},
         "cannot write --html /nonexistent/dir/page.html: No such file or directory"},
        {{"-o", kept, "--html", kept}, "-o and --html name the same file"},
        {{"-o", (dir / ".").string()}, "it is a directory"},
    };
    for (const auto& [outputs, named] : cases) {
        const atman_test::program_result r = run_program(
            ATMAN_EXPLAIN, with({"--model", "/nonexistent/model.gguf", "--prompt", "x", "--target", "y"}, outputs));
        INFO("stderr: " << r.err);
        CHECK(r.exit_code == 2);
        CHECK_THAT(r.err, Catch::Contains(named));
        CHECK(atman_test::read_text(kept) == "old");
    }
}

TEST_CASE("atman-explain: past a file-size limit the old outputs stay whole and no temporary is left") {
    const atman_test::scratch_dir dir("atman-cli-fsize");
    const std::string json_path = (dir / "out.json").string(), html_path = (dir / "out.html").string();
    std::ofstream(json_path) << "old json";
    std::ofstream(html_path) << "old html";
    // 1 block (512 or 1024 bytes, by shell) holds neither the JSON nor the page.
    const atman_test::program_result r =
        run_in_shell("ulimit -f 1", "", with(paris_args(), {"-o", json_path, "--html", html_path}));
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err == "atman-explain: cannot write -o " + json_path + ": File too large\n");
    CHECK(atman_test::read_text(json_path) == "old json");
    CHECK(atman_test::read_text(html_path) == "old html");
    CHECK(std::distance(std::filesystem::directory_iterator(dir / "."), {}) == 2);

    // The JSON fits, the page cannot be written: neither is replaced.
    const atman_test::program_result second =
        run_program(ATMAN_EXPLAIN, with(paris_args(), {"-o", json_path, "--html", "/dev/full"}));
    CHECK(second.exit_code == 1);
    CHECK_THAT(second.err, Catch::Contains("cannot write --html /dev/full"));
    CHECK(atman_test::read_text(json_path) == "old json");
    CHECK(std::distance(std::filesystem::directory_iterator(dir / "."), {}) == 2);
}

TEST_CASE("atman-explain: --prompt-file - reads the prompt from standard input") {
    std::vector<std::string> args = paris_args();
    args[3] = "-";
    args[2] = "--prompt-file";
    const atman_test::program_result r =
        run_in_shell("printf '%s' " + atman_test::shell_quoted(capital_prompt) + " >\"${TMPDIR:-/tmp}/atman-stdin-$$\"",
                     "<\"${TMPDIR:-/tmp}/atman-stdin-$$\"", args);
    INFO("stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    CHECK_THAT(json::parse(r.out).at("prompt").get<std::string>(), Catch::Contains(capital_prompt));
}

// The report labels come from what was asked: the units' granularity, and
// the per-token views only with --target-granularity token.
TEST_CASE("atman-explain: --granularity and --target-granularity reach the reports") {
    const std::vector<std::string> base = {"--model", atman_test::model_path(), "--raw", "--prompt",
                                           "Paris is big. The capital of France is", "--target", " Paris",
                                           "--threads", "1", "-q"};
    auto args = base;
    for (const char* a : {"--format", "json", "--granularity", "sentence", "--target-granularity", "token"})
        args.push_back(a);
    const atman_test::program_result sentences = run_program(ATMAN_EXPLAIN, args);
    REQUIRE(sentences.exit_code == 0);
    const json e = json::parse(sentences.out);
    CHECK(e.at("config").at("granularity") == "sentence");
    CHECK(e.at("config").at("target_granularity") == "token");
    CHECK(e.at("units").size() == 2);

    args = base;
    args.push_back("--target-granularity");
    args.push_back("token");
    const atman_test::program_result per_token = run_program(ATMAN_EXPLAIN, args);
    REQUIRE(per_token.exit_code == 0);
    CHECK(per_token.out.find("target token 0 \" Paris\"") != std::string::npos);
    const atman_test::program_result whole = run_program(ATMAN_EXPLAIN, base);
    REQUIRE(whole.exit_code == 0);
    CHECK(whole.out.find("target token") == std::string::npos);
}

// A raw prompt's first position is the model's attention sink: suppressing it
// raises the CE whatever the word. With <|endoftext|> first (--sink bos, the
// default) the sink is outside every unit, and a first word without content is
// not ranked first; with --sink none it is (the artefact the default avoids).
TEST_CASE("atman-explain --raw: the attention sink is not ranked first by default") {
    const std::vector<std::pair<std::string, std::string>> prompts = {
        {"The capital of France is", " Paris"}, {"The quick brown fox jumps over the lazy", " dog"}};
    for (const auto& [prompt, target] : prompts) {
        for (const char* sink : {"bos", "none"}) {
            const atman_test::program_result r =
                run_program(ATMAN_EXPLAIN, {"--model", atman_test::model_path(), "--raw", "--sink", sink, "--prompt",
                                            prompt, "--target", target, "--format", "json", "--threads", "1", "-q"});
            INFO(prompt << " --sink " << sink << ": " << r.err);
            REQUIRE(r.exit_code == 0);
            const json units = json::parse(r.out).at("units");
            REQUIRE(units.size() > 2);
            const auto top = std::max_element(units.begin(), units.end(), [](const json& a, const json& b) {
                return a.at("score").get<double>() < b.at("score").get<double>();
            });
            CHECK(units.front().at("text") == "The");
            if (std::string(sink) == "bos") {
                CHECK(top != units.begin());
            } else {
                CHECK(top == units.begin());
            }
        }
    }
}
