// atman-eval's exchange with methods computed elsewhere, on the default
// model: the inputs --write-inputs writes, and the scores --scores reads,
// evaluated by the same metrics (an oracle scores 1, its opposite 0), with
// bad scores files refused in one line that names the problem.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "support/default_model.hpp"
#include "support/run_program.hpp"

using nlohmann::json;
using atman_test::run_program;

namespace {

const atman_test::scratch_dir& scratch() {
    static const atman_test::scratch_dir dir("atman-cli-eval");
    return dir;
}

// Two questions; "France" is the answer of the first, "Rome" of the second.
std::string squad_file() {
    static const std::string path = [] {
        const std::string file = (scratch() / "squad.jsonl").string();
        std::ofstream(file) << R"({"id": "a", "context": "Paris is in France, a country.", "question": "Where is Paris?", )"
                            << R"("answers": [{"text": "France", "answer_start": 12}]})" << "\n"
                            << R"({"id": "b", "context": "The capital of Italy is Rome.", "question": "Which city?", )"
                            << R"("answers": [{"text": "Rome", "answer_start": 24}]})" << "\n";
        return file;
    }();
    return path;
}

atman_test::program_result eval(std::vector<std::string> args) {
    args.insert(args.begin(), {"--model", atman_test::model_path(), "--data", squad_file(), "--threads", "1", "-q"});
    return run_program(ATMAN_EVAL, args);
}

// The inputs of both questions, written once.
const std::vector<json>& inputs(const std::string& mode = "template") {
    static std::vector<json> templated, raw;
    std::vector<json>& out = mode == "raw" ? raw : templated;
    if (out.empty()) {
        const std::string file = (scratch() / ("inputs-" + mode + ".jsonl")).string();
        std::vector<std::string> args{"--write-inputs", file};
        if (mode == "raw") args.push_back("--raw");
        const atman_test::program_result r = eval(args);
        INFO(r.err);
        REQUIRE(r.exit_code == 0);
        std::istringstream lines(atman_test::read_text(file));
        for (std::string line; std::getline(lines, line);) out.push_back(json::parse(line));
    }
    return out;
}

// The words of the prompt the units of q stand for.
std::vector<std::string> unit_words(const json& q) {
    std::vector<std::string> words;
    const std::string prompt = q["prompt"];
    for (const json& u : q["units"]) words.push_back(prompt.substr(u["start"], u["end"].get<std::size_t>() - u["start"].get<std::size_t>()));
    return words;
}

// A scores file with one method whose relevance is f(label) per unit.
template <class F>
std::string scores_file(const std::string& name, const std::string& method, F f, double seconds = 1.5) {
    json methods = json::object(), questions = json::object();
    for (const json& q : inputs()) {
        json relevance = json::array();
        for (int label : q["labels"]) relevance.push_back(f(label));
        questions[std::to_string(q["line"].get<int>())] = {{"relevance", relevance}, {"seconds", seconds}, {"cpu_seconds", 2 * seconds}};
    }
    methods[method] = {{"questions", questions}, {"notes", {{"memory", 123}}}};
    const std::string file = (scratch() / name).string();
    std::ofstream(file) << json{{"schema", "atman.eval-scores/1"},
                                {"model", std::filesystem::path(atman_test::model_path()).filename().string()},
                                {"methods", methods}}.dump();
    return file;
}

std::string write(const std::string& name, const std::string& text) {
    const std::string file = (scratch() / name).string();
    std::ofstream(file) << text;
    return file;
}

void check_refused(const atman_test::program_result& r, const std::string& named) {
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 1);
    CHECK(r.err.rfind("atman-eval: ", 0) == 0);
    CHECK(r.err.find(named) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.out.empty());
}

}  // namespace

TEST_CASE("atman-eval --write-inputs: tokens, units over the context's words, labels on the answer") {
    const std::vector<json>& qs = inputs();
    REQUIRE(qs.size() == 2);
    CHECK(qs[0]["line"] == 0);
    CHECK(qs[1]["line"] == 1);
    const std::vector<std::string> words = unit_words(qs[0]);
    CHECK(words == std::vector<std::string>{"Paris", "is", "in", "France,", "a", "country."});
    CHECK(qs[0]["labels"] == json{0, 0, 0, 1, 0, 0});
    CHECK(unit_words(qs[1]).back() == "Rome.");
    for (const json& q : qs) {
        CHECK(q["prompt"].get<std::string>().rfind("<|im_start|>", 0) == 0);  // the chat template
        CHECK(q["units"].size() == q["labels"].size());
        for (const json& u : q["units"])
            for (const json& p : u["positions"]) CHECK(p.get<std::size_t>() < q["prompt_tokens"].size());
    }
}

TEST_CASE("atman-eval --raw: the prompt as text, a sink token first outside every unit, the answer after a space") {
    const std::vector<json>& qs = inputs("raw");
    REQUIRE(qs.size() == 2);
    const std::string prompt = qs[0]["prompt"];
    CHECK(prompt.rfind("Paris is in France", 0) == 0);
    CHECK(prompt.size() > 8);
    CHECK(prompt.substr(prompt.size() - 8) == "\nAnswer:");
    CHECK(qs[0]["target"] == " France");
    CHECK(qs[0]["prompt_tokens"][0] == 0);            // <|endoftext|>, SmolLM2's document separator
    CHECK(qs[0]["units"][0]["positions"][0] == 1);  // outside every unit
    CHECK(unit_words(qs[0]) == unit_words(inputs()[0]));
}

TEST_CASE("atman-eval --scores: external relevance is evaluated like the built-in methods") {
    const std::string oracle = scores_file("oracle.json", "oracle", [](int label) { return double(label); });
    const atman_test::program_result r = eval({"--scores", oracle, "--methods", "uniform"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const json out = json::parse(r.out);
    REQUIRE(out["methods"].contains("oracle"));
    const json& m = out["methods"]["oracle"];
    CHECK(m["mAP"].get<double>() == Approx(1.0));
    CHECK(m["mAR"].get<double>() == Approx(1.0));
    CHECK(m["seconds"].get<double>() == Approx(3.0));  // the file's 1.5 s per question
    CHECK(m["cpu_seconds"].get<double>() == Approx(6.0));
    CHECK(m["notes"]["memory"] == 123);
    CHECK(m["deletion"]["10"].is_number());
    REQUIRE(m["questions"].size() == 2);  // per question, by line number
    for (const char* line : {"0", "1"}) {
        CHECK(m["questions"][line]["AP"].get<double>() == Approx(1.0));
        CHECK(m["questions"][line]["deletion"]["50"].is_number());
    }
    CHECK(out["methods"]["uniform"]["notes"].is_null());

    const std::string opposite = scores_file("opposite.json", "opposite", [](int label) { return 1.0 - label; });
    const json out2 = json::parse(eval({"--scores", opposite, "--methods", "uniform"}).out);
    CHECK(out2["methods"]["opposite"]["mAP"].get<double>() == 0.0);
    CHECK(out2["methods"]["opposite"]["mAR"].get<double>() == 0.0);
}

TEST_CASE("atman-eval --scores: bad files are refused, naming the problem") {
    const auto label = [](int l) { return double(l); };
    check_refused(eval({"--scores", (scratch() / "absent.json").string()}), "cannot read the scores file");
    check_refused(eval({"--scores", write("text.json", "not json")}), "not JSON");
    check_refused(eval({"--scores", write("schema.json", R"({"schema": "other", "model": "m", "methods": {}})")}),
                  "expected \"atman.eval-scores/1\"");
    check_refused(eval({"--scores", scores_file("taken.json", "uniform", label)}), "taken by a built-in method");
    check_refused(eval({"--scores", write("model.json", R"({"schema": "atman.eval-scores/1", "model": "other.gguf",)"
                                                        R"( "methods": {"x": {"questions": {}}}})")}),
                  "the scores are of model other.gguf");
    check_refused(eval({"--scores", write("missing.json", R"({"schema": "atman.eval-scores/1", "model": ")" +
                                                          std::filesystem::path(atman_test::model_path()).filename().string() +
                                                          R"(", "methods": {"x": {"questions": {}}}})")}),
                  "method \"x\" has no scores for question 0");
    const json good = json::parse(atman_test::read_text(scores_file("good.json", "m", label)));
    const std::size_t n_units = inputs()[1]["units"].size();
    json changed = good;
    changed["methods"]["m"]["questions"]["1"]["relevance"].erase(0);
    check_refused(eval({"--scores", write("short.json", changed.dump())}),
                  "question 1: " + std::to_string(n_units - 1) + " relevance values for " + std::to_string(n_units) + " units");
    changed = good;
    changed["methods"]["m"]["questions"]["1"]["relevance"][0] = "high";
    check_refused(eval({"--scores", write("string.json", changed.dump())}), "not a finite number");
    changed = good;
    changed["methods"]["m"]["questions"]["x1"] = good["methods"]["m"]["questions"]["0"];
    check_refused(eval({"--scores", write("key.json", changed.dump())}), "question key \"x1\" is not a line number");
    changed = good;
    changed["methods"]["m"]["questions"]["0"].erase("seconds");
    check_refused(eval({"--scores", write("seconds.json", changed.dump())}), "missing or mistyped \"seconds\"");
}

TEST_CASE("atman-eval --factor: the AtMan variants' factor, not deletion's") {
    // Factor 1 suppresses nothing: every score is 0, which the metrics count
    // as uniform, and the ties fall in the same seeded order as uniform's, so
    // the deletion rises are uniform's too.
    const atman_test::program_result r = eval({"--factor", "1", "--methods", "atman-multiplicative,uniform"});
    INFO(r.err);
    REQUIRE(r.exit_code == 0);
    const json out = json::parse(r.out);
    CHECK(out["protocol"]["factor"] == 1.0);
    const json& atman = out["methods"]["atman-multiplicative"];
    const json& uniform = out["methods"]["uniform"];
    CHECK(atman["mAP"].get<double>() == Approx(uniform["mAP"].get<double>()));
    CHECK(atman["mAR"].get<double>() == Approx(1.0));
    for (const char* k : {"10", "20", "50"}) CHECK(atman["deletion"][k].get<double>() == Approx(uniform["deletion"][k].get<double>()));
    CHECK(uniform["deletion"]["50"].get<double>() != 0.0);  // deletion still suppresses

    const json suppressing = json::parse(eval({"--methods", "atman-multiplicative"}).out);
    CHECK(suppressing["protocol"]["factor"] == 0.1);
    CHECK(suppressing["methods"]["atman-multiplicative"]["mAR"].get<double>() != Approx(1.0));

    const atman_test::program_result refused = eval({"--factor", "1.5"});
    CHECK(refused.exit_code == 2);
    CHECK(refused.err.find("--factor") != std::string::npos);
}
