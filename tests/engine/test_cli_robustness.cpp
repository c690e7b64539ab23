// The output files of atman-explain (engine/output_files.hpp), what its
// command line says about bad values and empty or ill-formed texts, and how
// it refuses a model of another architecture (engine/cli.hpp), on the tiny
// model of the fuzz corpus. The program itself runs in tests/cli.

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <sys/stat.h>

#include "engine/cli.hpp"
#include "engine/output_files.hpp"
#include "engine/progress.hpp"
#include "engine/prompt.hpp"
#include "engine/tokenizer.hpp"
#include "support/run_program.hpp"
#include "tiny_llama.hpp"

namespace fs = std::filesystem;
using atman::engine::output_file;
using atman::engine::usage_error;

namespace {

const atman::engine::cli_program program{"atman-test", "a test program"};

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

std::vector<std::string> names_in(const fs::path& dir) {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
    std::sort(names.begin(), names.end());
    return names;
}

// The usage_error message of args; fails the test if they parse.
std::string usage_problem(const std::vector<std::string>& args) {
    try {
        atman::engine::parse_command_line(program, args);
    } catch (const usage_error& e) {
        return e.what();
    }
    FAIL("no usage_error");
    return {};
}

}  // namespace

TEST_CASE("output files: two outputs naming one file are refused, however spelt") {
    const atman_test::scratch_dir dir("atman-outputs-same");
    const std::string file = (dir / "out.json").string();
    fs::create_symlink(file, dir / "link.json");
    for (const std::string& other : {file, (dir / "." / "out.json").string(), (dir / "link.json").string()}) {
        INFO(other);
        try {
            atman::engine::check_output_files({{"-o", file}, {"--html", other}});
            FAIL("accepted");
        } catch (const usage_error& e) {
            CHECK_THAT(e.what(), Catch::Contains("-o and --html name the same file"));
        }
    }
    CHECK(names_in((dir / ".")) == std::vector<std::string>{"link.json"});  // nothing created
}

TEST_CASE("output files: a path that cannot be written is refused before any work, naming it and why") {
    const atman_test::scratch_dir dir("atman-outputs-bad");
    write_text(dir / "read-only", "old");
    fs::permissions(dir / "read-only", fs::perms::owner_read);
    const bool root = geteuid() == 0;  // root may write a read-only file
    const std::vector<std::pair<std::string, std::string>> cases = {
        {(dir / "missing" / "out.json").string(), "No such file or directory"},
        {(dir / ".").string(), "it is a directory"},
        {(dir / "read-only").string(), root ? "" : "Permission denied"},
    };
    for (const auto& [path, why] : cases) {
        if (why.empty()) continue;
        INFO(path);
        try {
            atman::engine::check_output_files({{"--html", path}});
            FAIL("accepted");
        } catch (const usage_error& e) {
            CHECK_THAT(e.what(), Catch::Contains("cannot write --html " + path + ": " + why));
        }
    }
    atman::engine::check_output_files({{"-o", (dir / "new.json").string()}, {"--html", "/dev/null"}});
    CHECK(names_in(dir / ".") == std::vector<std::string>{"read-only"});  // the probe left nothing
}

TEST_CASE("output files: all are replaced at commit, none when one fails, no temporary left") {
    const atman_test::scratch_dir dir("atman-outputs-stage");
    const output_file json{"-o", (dir / "out.json").string()}, html{"--html", (dir / "out.html").string()};
    write_text(json.path, "old json");
    write_text(html.path, "old html");
    fs::permissions(json.path, fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read);
    {
        atman::engine::staged_outputs outputs;
        outputs.stage(json, "new json");
        CHECK(atman_test::read_text(json.path) == "old json");  // staged only
        try {
            outputs.stage({"--html", "/dev/full"}, "new html");
            FAIL("/dev/full took the text");
        } catch (const atman::error& e) {
            CHECK_THAT(e.what(), Catch::Contains("cannot write --html /dev/full: No space left on device"));
        }
    }  // not committed
    CHECK(atman_test::read_text(json.path) == "old json");
    CHECK(names_in(dir / ".") == std::vector<std::string>{"out.html", "out.json"});
    {
        atman::engine::staged_outputs outputs;
        outputs.stage(json, "new json");
        outputs.stage(html, "new html");
        outputs.commit();
    }
    CHECK(atman_test::read_text(json.path) == "new json");
    CHECK(atman_test::read_text(html.path) == "new html");
    CHECK(names_in(dir / ".") == std::vector<std::string>{"out.html", "out.json"});
    // The replaced file keeps its mode.
    CHECK(fs::status(json.path).permissions() ==
          (fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read));
}

TEST_CASE("cli: a text option given an empty value is refused, naming it") {
    for (const char* option :
         {"--target", "--system", "--contrast", "--delimiter", "--model", "--prompt-file", "--output", "--html"}) {
        const std::string message = usage_problem({"--prompt", "x", option, ""});
        INFO(message);
        CHECK_THAT(message, Catch::StartsWith(std::string(option) + ": must not be empty"));
    }
    CHECK_THAT(usage_problem({"--prompt", ""}), Catch::Contains("--prompt: must not be empty"));
}

TEST_CASE("cli: --factor beyond the float range is bad usage") {
    CHECK_THAT(usage_problem({"--prompt", "x", "--factor", "1e39"}),
               Catch::Contains("--factor must be a number from 0 to 3.40282e+38, got 1e+39"));
    CHECK_NOTHROW(atman::engine::parse_command_line(program, {"--prompt", "x", "--factor", "3e38"}));
}

TEST_CASE("cli: messages about bad values are short sentences that list the choices") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{"--batch", "-3"}, "--batch: must be a whole number >= 0 (0 = automatic), got '-3'"},
        {{"--granularity", "words"},
         "--granularity: must be token, word, sentence, paragraph or delimiter, got 'words'"},
        {{"--mode", "1"}, "--mode: must be multiplicative or log_additive, got '1'"},  // no enum numbers
        {{"--format", "xml"}, "--format: must be terminal, json or html, got 'xml'"},
        {{"--threads", "-1"}, "--threads: must be a whole number from 0 to 1024 (0 = all cores), got '-1'"},
        {{"--generate", "1e3"}, "--generate: must be a whole number from 1 to 4096, got '1e3'"},
        {{"--kappa", "x"}, "--kappa: must be a finite number, got 'x'"},
    };
    for (auto [args, expected] : cases) {
        args.insert(args.begin(), {"--prompt", "x"});
        const std::string message = usage_problem(args);
        CHECK(message == expected + " (see --help)");
    }
}

TEST_CASE("cli: arguments that were not expected are listed in the order given") {
    CHECK(usage_problem({"--prompt", "x", "one", "two", "--bogus"}) ==
          "The following arguments were not expected: one two --bogus (see --help)");
    CHECK(usage_problem({"--bogus", "--prompt", "x"}) == "The following argument was not expected: --bogus (see --help)");
}

TEST_CASE("cli: --help names the choices, the defaults, examples and the exit codes") {
    const std::string help = atman::engine::parse_command_line(program, {"--help"}).help;
    CHECK_THAT(help, Catch::Contains("--granularity token|word|sentence|paragraph|delimiter=word"));
    CHECK_THAT(help, Catch::Contains("--threads N=0"));
    CHECK_THAT(help, Catch::Contains("Examples:"));
    CHECK_THAT(help, Catch::Contains("Exit codes: 0 success; 2 bad usage"));
    CHECK_THAT(help, !Catch::Contains("->"));  // CLI11's enum numbers
}

TEST_CASE("cli: invalid UTF-8 is named by its option and the offset in its own text") {
    CHECK(usage_problem({"--prompt", "x", "--system", "ab\xff"}) ==
          "--system: invalid UTF-8 at byte 2: byte 0xF8-0xFF cannot start a sequence");
    CHECK_THAT(usage_problem({"--prompt", "x", "--target", "\xc3"}), Catch::StartsWith("--target: invalid UTF-8 at byte 0"));
    CHECK_THAT(usage_problem({"--prompt", "\x80", "--target", "y"}), Catch::StartsWith("--prompt: invalid UTF-8 at byte 0"));

    const atman_test::scratch_dir dir("atman-prompt-utf8");
    std::ofstream(dir / "p.txt", std::ios::binary) << "fine\xc0\xaf";
    const atman::engine::cli_options o =
        atman::engine::parse_command_line(program, {"--prompt-file", (dir / "p.txt").string()}).options;
    CHECK_THAT(std::string([&] {
                   try {
                       atman::engine::read_prompt(o);
                   } catch (const usage_error& e) {
                       return std::string(e.what());
                   }
                   return std::string("accepted");
               }()),
               Catch::StartsWith("--prompt-file " + (dir / "p.txt").string() + ": invalid UTF-8 at byte 4"));
}

TEST_CASE("cli: a UTF-8 byte order mark opening the prompt file is dropped") {
    const atman_test::scratch_dir dir("atman-prompt-bom");
    std::ofstream(dir / "p.txt", std::ios::binary) << "\xEF\xBB\xBFWhat is the capital?";
    const atman::engine::cli_options o =
        atman::engine::parse_command_line(program, {"--prompt-file", (dir / "p.txt").string()}).options;
    CHECK(atman::engine::read_prompt(o) == "What is the capital?");
}

TEST_CASE("cli: a model of another architecture is refused naming it, before its tokenizer") {
    std::vector<std::uint8_t> bytes = tiny_llama::bytes();
    tiny_llama::set_string(bytes, "general.architecture", "gemma");
    tiny_llama::set_string(bytes, "tokenizer.ggml.model", "bert");  // refused too, but second
    const atman_test::scratch_dir dir("atman-cli-architecture");
    std::ofstream(dir / "gemma.gguf", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    atman::engine::cli_options o =
        atman::engine::parse_command_line(program, {"--model", (dir / "gemma.gguf").string(), "--prompt", "x"}).options;
    o.quiet = true;
    CHECK_THROWS_WITH(atman::engine::loaded_model(o),
                      "llama model: architecture 'gemma' is not supported (expected 'llama')");
}

TEST_CASE("prompt: generation stops at <|endoftext|> too, with or without the chat template") {
    const atman::engine::gguf_file file = atman::engine::gguf_file::from_bytes(tiny_llama::bytes());
    const atman::engine::tokenizer tok(file);
    const std::int32_t end_of_text = tok.find("<|endoftext|>");
    REQUIRE(end_of_text >= 0);
    REQUIRE(end_of_text != tok.eos_id());  // the tiny model's EOS is <|im_end|>
    const atman::engine::chat_template tmpl = atman::engine::chat_template::from_gguf(file);
    for (const atman::engine::chat_template* t : {&tmpl, static_cast<const atman::engine::chat_template*>(nullptr)}) {
        const std::vector<std::int32_t> stops = atman::engine::stop_ids(tok, t);
        CHECK(std::count(stops.begin(), stops.end(), end_of_text) == 1);
        CHECK(std::count(stops.begin(), stops.end(), tok.eos_id()) == 1);
    }
}

TEST_CASE("progress: the time left is estimated by recomputed token-rows, not by units") {
    // Ten perturbations of a 10-position sequence, the first recomputing all
    // ten positions, the last one: 55 token-rows in all.
    atman::plan plan;
    plan.length = 10;
    for (atman::index_t p = 0; p < 10; ++p) {
        atman::perturbation x;
        x.index = p;
        x.first_affected = p;
        plan.perturbations.push_back(x);
    }
    const atman::engine::progress_work work(plan);
    CHECK(work.of(0) == 0);
    CHECK(work.of(5) == 10 + 9 + 8 + 7 + 6);
    CHECK(work.of(10) == 55);
    CHECK(work.of(15) == 55 + 40);  // the contrast target's round
    // Half the units in 12 s: 40 of 55 token-rows done, 15 left at 40 per 12 s.
    CHECK(atman::engine::eta_seconds(12, work.of(5), work.of(10)) == Approx(4.5));
    // Without a plan, units: 12 s more.
    CHECK(atman::engine::eta_seconds(12, atman::engine::progress_work().of(5), 10) == Approx(12));
}
