// What the five programs share (examples/engine/program.hpp), checked on each
// that is built, without a model: one set of exit codes (0 success, 1 a
// failure while running, 2 bad usage), each failure one line naming the
// program and the problem, --help on stdout, --threads checked alike where
// a program has it.

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/run_program.hpp"

using atman_test::run_program;

namespace {

const std::vector<std::string> programs = {ATMAN_PROGRAMS};

std::string name_of(const std::string& program) { return std::filesystem::path(program).filename().string(); }

// A one-question SQuAD file for atman-eval, there while the tests run.
std::string squad_file() {
    static const atman_test::scratch_dir dir("atman-programs-squad");
    static const std::string path = [] {
        const std::string file = (dir / "squad.jsonl").string();
        std::ofstream(file) << R"({"id": "q1", "context": "Paris is in France.", "question": "Where is Paris?", )"
                            << R"("answers": [{"text": "France", "answer_start": 12}]})" << "\n";
        return file;
    }();
    return path;
}

// The arguments besides the tested one that a program needs to get as far as its model.
std::vector<std::string> required_arguments(const std::string& name) {
    if (name.rfind("atman-explain", 0) == 0) return {"--prompt", "x", "--target", "y", "-q"};
    if (name == "atman-eval" || name == "atman-long") return {"--data", squad_file(), "-q"};
    return {};
}

void check_one_line_failure(const atman_test::program_result& r, const std::string& name, int exit_code,
                            const std::string& named) {
    INFO(name << " stderr: " << r.err);
    CHECK(r.exit_code == exit_code);
    CHECK(r.err.rfind(name + ": ", 0) == 0);
    CHECK(r.err.find(named) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
    CHECK(r.out.empty());
}

}  // namespace

TEST_CASE("programs: an unknown option is bad usage, exit 2") {
    for (const std::string& program : programs)
        check_one_line_failure(run_program(program, {"--bogus"}), name_of(program), 2, "--bogus");
}

TEST_CASE("programs: a bad --threads is bad usage, exit 2, in the same words") {
    for (const std::string& program : programs) {
        if (run_program(program, {"--help"}).out.find("--threads") == std::string::npos)
            continue;  // atman-bench-mpi: one thread per rank, by design
        std::vector<std::string> args = required_arguments(name_of(program));
        args.insert(args.end(), {"--threads", "-4"});
        check_one_line_failure(run_program(program, args), name_of(program), 2,
                               "--threads: must be a whole number from ");
    }
}

TEST_CASE("programs: a missing model is a failure while running, exit 1, naming the file") {
    for (const std::string& program : programs) {
        std::vector<std::string> args = required_arguments(name_of(program));
        args.insert(args.end(), {"--model", "/nonexistent/model.gguf"});
        check_one_line_failure(run_program(program, args), name_of(program), 1, "/nonexistent/model.gguf");
    }
}

TEST_CASE("programs: --help exits 0 with the options on stdout") {
    for (const std::string& program : programs) {
        const atman_test::program_result r = run_program(program, {"--help"});
        INFO(name_of(program));
        CHECK(r.exit_code == 0);
        CHECK(r.out.find("--model") != std::string::npos);
        CHECK(r.err.empty());
    }
}
