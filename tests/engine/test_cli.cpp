// The command line of atman-explain and atman-explain-mpi (engine/cli.hpp)
// without a model: what each option sets, what counts as bad usage and how
// it is named, --help; and the byte encodings the MPI program sends between
// ranks (engine/mpi_wire.hpp). The programs themselves run in tests/cli and
// tests/mpi.

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "engine/cli.hpp"
#include "engine/mpi_wire.hpp"

using atman::engine::cli_options;
using atman::engine::parse_command_line;
using atman::engine::usage_error;

namespace {

const atman::engine::cli_program program{"atman-test", "a test program"};

cli_options parse(const std::vector<std::string>& args) {
    const atman::engine::command_line parsed = parse_command_line(program, args);
    REQUIRE(parsed.help.empty());
    return parsed.options;
}

// The message of the usage_error args cause; fails the test if they parse.
std::string usage_problem(const std::vector<std::string>& args) {
    try {
        parse_command_line(program, args);
    } catch (const usage_error& e) {
        return e.what();
    }
    std::string joined;
    for (const std::string& a : args) joined += " " + a;
    FAIL("no usage_error for" << joined);
    return {};
}

}  // namespace

TEST_CASE("cli: only --prompt gives the documented defaults") {
    const cli_options o = parse({"--prompt", "Hello there"});
    CHECK(o.program == "atman-test");
    CHECK(o.prompt == "Hello there");
    CHECK(o.model.empty());
    CHECK(o.target.empty());
    CHECK(o.generate == 32);
    CHECK(o.format == "terminal");
    CHECK_FALSE(o.raw);
    CHECK_FALSE(o.quiet);
    CHECK(o.threads == 0);
    CHECK(o.cfg.mode == atman::manipulation_mode::multiplicative);
    CHECK(o.cfg.factor == 0.1);
    CHECK(o.granularity == atman::granularity::word);
    CHECK(o.targets == atman::target_granularity::complete);
    CHECK(o.cfg.post == atman::postprocess::none);
    CHECK_FALSE(o.cfg.normalize);
    CHECK_FALSE(o.cfg.conceptual);
}

TEST_CASE("cli: every option reaches its field") {
    const cli_options o =
        parse({"--model", "m.gguf", "--prompt-file", "p.txt", "--system", "be brief", "--target", "Paris",
               "--contrast", "Rome", "--raw", "--granularity", "Sentence", "--mode", "log_additive",
               "--factor", "0.25", "--conceptual", "--kappa", "-0.5", "--postprocess", "square", "--normalize",
               "--batch", "4", "--threads", "3", "--format", "json", "-o", "out.json", "--html", "page.html",
               "-q"});
    CHECK(o.model == "m.gguf");
    CHECK(o.prompt_file == "p.txt");
    CHECK(o.system == "be brief");
    CHECK(o.target == "Paris");
    CHECK(o.contrast == "Rome");
    CHECK(o.raw);
    CHECK(o.granularity == atman::granularity::sentence);  // case-insensitive
    CHECK(o.cfg.mode == atman::manipulation_mode::log_additive);
    CHECK(o.cfg.factor == 0.25);
    CHECK(o.cfg.conceptual);
    CHECK(o.cfg.kappa == -0.5);
    CHECK(o.cfg.post == atman::postprocess::square);
    CHECK(o.cfg.normalize);
    CHECK(o.cfg.max_batch_rows == 4);
    CHECK(o.threads == 3);
    CHECK(o.format == "json");
    CHECK(o.output == "out.json");
    CHECK(o.html_output == "page.html");
    CHECK(o.quiet);

    const cli_options g = parse({"--prompt", "x", "--generate", "7", "--target-granularity", "token",
                                 "--postprocess", "absolute", "--granularity", "paragraph"});
    CHECK(g.generate == 7);
    CHECK(g.targets == atman::target_granularity::token);
    CHECK(g.cfg.post == atman::postprocess::absolute);
    CHECK(g.granularity == atman::granularity::paragraph);
}

TEST_CASE("cli: --delimiter implies --granularity delimiter") {
    const cli_options o = parse({"--prompt", "a; b", "--delimiter", ";"});
    CHECK(o.delimiter == ";");
    CHECK(o.granularity == atman::granularity::delimiter);
}

TEST_CASE("cli: bad usage throws usage_error naming the problem") {
    const std::vector<std::pair<std::vector<std::string>, std::string>> cases = {
        {{}, "--prompt"},
        {{"--quiet"}, "--prompt"},
        {{"--prompt", "x", "--bogus"}, "--bogus"},
        {{"--prompt", "x", "extra"}, "extra"},
        {{"--prompt", "x", "--prompt-file", "f"}, "--prompt"},
        {{"--prompt", "x", "--factor", "-1"}, "factor"},
        {{"--prompt", "x", "--factor", "nan"}, "factor"},
        {{"--prompt", "x", "--factor", "many"}, "--factor"},
        {{"--prompt", "x", "--kappa", "2"}, "kappa"},
        {{"--prompt", "x", "--kappa", "-1.5"}, "kappa"},
        {{"--prompt", "x", "--granularity", "letter"}, "letter"},
        {{"--prompt", "x", "--granularity", "delimiter"}, "--delimiter"},
        {{"--prompt", "x", "--mode", "additive"}, "additive"},
        {{"--prompt", "x", "--target-granularity", "word"}, "word"},
        {{"--prompt", "x", "--postprocess", "cube"}, "cube"},
        {{"--prompt", "x", "--format", "xml"}, "xml"},
        {{"--prompt", "x", "--generate", "0"}, "--generate"},
        {{"--prompt", "x", "--generate", "5000"}, "--generate"},
        {{"--prompt", "x", "--target", "a", "--generate", "3"}, "--generate"},
        {{"--prompt", "x", "--batch", "-2"}, "--batch"},
        {{"--prompt", "x", "--threads", "-1"}, "--threads"},
        {{"--prompt", "x", "--threads", "two"}, "--threads"},
        {{"--prompt", "x", "--contrast", "b", "--target-granularity", "token"}, "--contrast"},
        {{"--prompt"}, "--prompt"},
    };
    for (const auto& [args, named] : cases) {
        const std::string message = usage_problem(args);
        INFO("message: " << message);
        CHECK(message.find(named) != std::string::npos);
        CHECK(message.find('\n') == std::string::npos);  // one line
    }
}

TEST_CASE("cli: --help returns the help text and no options") {
    for (const char* flag : {"--help", "-h"}) {
        const atman::engine::command_line parsed = parse_command_line(program, {flag});
        CHECK(parsed.help.find("a test program") != std::string::npos);
        for (const char* option :
             {"--model", "--prompt", "--prompt-file", "--system", "--target", "--generate", "--contrast", "--raw", "--sink",
              "--granularity", "--delimiter", "--mode", "--factor", "--conceptual", "--kappa",
              "--target-granularity", "--postprocess", "--normalize", "--batch", "--threads", "--format",
              "--output", "--html", "--quiet"}) {
            INFO(option);
            CHECK(parsed.help.find(option) != std::string::npos);
        }
    }
}

TEST_CASE("cli: run_command_line maps outcomes to exit codes 0, 1 and 2") {
    const auto run = [](std::vector<const char*> argv, const std::function<void(const cli_options&)>& body) {
        argv.insert(argv.begin(), "atman-test");
        return atman::engine::run_command_line(program, int(argv.size()), argv.data(), body, false);
    };
    bool ran = false;
    CHECK(run({"--prompt", "x"}, [&](const cli_options& o) { ran = o.prompt == "x"; }) == 0);
    CHECK(ran);
    ran = false;
    CHECK(run({"--help"}, [&](const cli_options&) { ran = true; }) == 0);
    CHECK(run({"--factor", "-1", "--prompt", "x"}, [&](const cli_options&) { ran = true; }) == 2);
    CHECK_FALSE(ran);
    CHECK(run({"--prompt", "x"}, [](const cli_options&) { throw usage_error("later"); }) == 2);
    CHECK(run({"--prompt", "x"}, [](const cli_options&) { throw atman::error("failed"); }) == 1);
}

TEST_CASE("cli: read_prompt reads --prompt-file and rejects what it cannot use") {
    cli_options o = parse({"--prompt", "inline"});
    CHECK(atman::engine::read_prompt(o) == "inline");
    o = parse({"--prompt-file", "/nonexistent/atman/prompt.txt"});
    CHECK_THROWS_AS(atman::engine::read_prompt(o), usage_error);
    o = parse({"--prompt-file", __FILE__});
    CHECK(atman::engine::read_prompt(o).find("read_prompt reads --prompt-file") != std::string::npos);
}

namespace {

atman::explain_request sample_request() {
    atman::explain_request r;
    r.prompt = std::string("Alice lives in Paris.\0x", 23);  // a NUL byte travels too
    r.prompt_tokens = {1, 42, -7, 99999, 5};
    r.target = "Paris";
    r.target_tokens = {314, 15};
    r.target_texts = {"Par", "is"};
    r.units = {{{1, 2}, 0, 5}, {{4}, 15, 21}};
    r.contrast = "";
    r.contrast_tokens = {};
    return r;
}

atman::raw_deltas sample_deltas() {
    atman::raw_deltas d;
    d.base_ce = {1.5, 0.25};
    d.contrast_base_ce = {3.0};
    d.rows = {{atman::perturbation_kind::unit, 3, {0.125, -2.0}, {7.0}},
              {atman::perturbation_kind::target, 0, {0.0, 1e-300}, {-0.5}}};
    d.stats.passes = 9;
    d.stats.token_forwards = 123;
    d.stats.token_forwards_naive = 456;
    d.stats.seconds = 0.75;
    return d;
}

}  // namespace

TEST_CASE("cli wire: an explain request survives encoding") {
    for (const bool contrastive : {false, true}) {
        atman::explain_request sent = sample_request();
        if (contrastive) sent.contrast = "Rome", sent.contrast_tokens = {77, 78, 79};
        const std::vector<char> bytes = atman::engine::encode_request(sent);
        const atman::explain_request got = atman::engine::decode_request(bytes.data(), bytes.size());
        CHECK(got.prompt == sent.prompt);
        CHECK(got.prompt_tokens == sent.prompt_tokens);
        CHECK(got.target == sent.target);
        CHECK(got.target_tokens == sent.target_tokens);
        CHECK(got.target_texts == sent.target_texts);
        REQUIRE(got.units.size() == sent.units.size());
        for (std::size_t u = 0; u < got.units.size(); ++u) {
            CHECK(got.units[u].positions == sent.units[u].positions);
            CHECK(got.units[u].start == sent.units[u].start);
            CHECK(got.units[u].end == sent.units[u].end);
        }
        CHECK(got.contrast == sent.contrast);
        CHECK(got.contrast_tokens == sent.contrast_tokens);
    }
}

TEST_CASE("cli wire: deltas survive encoding") {
    const atman::raw_deltas sent = sample_deltas();
    const std::vector<char> bytes = atman::engine::encode_deltas(sent);
    const atman::raw_deltas got = atman::engine::decode_deltas(bytes.data(), bytes.size());
    CHECK(got.base_ce == sent.base_ce);
    CHECK(got.contrast_base_ce == sent.contrast_base_ce);
    REQUIRE(got.rows.size() == sent.rows.size());
    for (std::size_t r = 0; r < got.rows.size(); ++r) {
        CHECK(got.rows[r].kind == sent.rows[r].kind);
        CHECK(got.rows[r].index == sent.rows[r].index);
        CHECK(got.rows[r].target == sent.rows[r].target);
        CHECK(got.rows[r].contrast == sent.rows[r].contrast);
    }
    CHECK(got.stats.passes == 9);
    CHECK(got.stats.token_forwards == 123);
    CHECK(got.stats.token_forwards_naive == 456);
    CHECK(got.stats.seconds == 0.75);

    const std::vector<char> empty = atman::engine::encode_deltas({});
    CHECK(atman::engine::decode_deltas(empty.data(), empty.size()).rows.empty());
}

TEST_CASE("cli wire: truncated, extended or corrupted bytes are rejected") {
    const std::vector<char> request = atman::engine::encode_request(sample_request());
    const std::vector<char> deltas = atman::engine::encode_deltas(sample_deltas());
    for (std::size_t size = 0; size < request.size(); ++size)
        CHECK_THROWS_AS(atman::engine::decode_request(request.data(), size), atman::invalid_argument);
    for (std::size_t size = 0; size < deltas.size(); ++size)
        CHECK_THROWS_AS(atman::engine::decode_deltas(deltas.data(), size), atman::invalid_argument);

    std::vector<char> longer = request;
    longer.push_back('x');
    CHECK_THROWS_WITH(atman::engine::decode_request(longer.data(), longer.size()), Catch::Contains("left over"));

    // The first member is the prompt's length: claim more bytes than there are.
    std::vector<char> huge = request;
    for (std::size_t k = 0; k < 8; ++k) huge[k] = char(0xff);
    CHECK_THROWS_AS(atman::engine::decode_request(huge.data(), huge.size()), atman::invalid_argument);

    // The perturbation kind of the first row follows base_ce {2}, contrast_base_ce {1} and the row count.
    std::vector<char> bad_kind = deltas;
    const std::size_t kind_at = (8 + 2 * 8) + (8 + 8) + 8;
    bad_kind[kind_at] = 5;
    CHECK_THROWS_WITH(atman::engine::decode_deltas(bad_kind.data(), bad_kind.size()), Catch::Contains("kind"));
}
