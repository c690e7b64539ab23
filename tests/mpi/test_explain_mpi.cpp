// atman-explain-mpi under mpirun (-np 1, 2, 3, oversubscribed on small
// machines) gives atman-explain's scores, and a failed rank fails the run
// with a message and no output.

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "support/default_model.hpp"
#include "support/run_program.hpp"

using nlohmann::json;
using atman_test::run_program;

namespace {

// Run as root in containers, more ranks than cores, no shared-memory single
// copy (needs ptrace rights containers often lack).
const std::string mpi_environment = "OMPI_MCA_btl_vader_single_copy_mechanism=none";

std::vector<std::string> mpirun_args(int ranks) {
    return {"--allow-run-as-root", "--oversubscribe", "-np", std::to_string(ranks), ATMAN_EXPLAIN_MPI};
}

// A short explanation request: nine word units, one thread per process.
std::vector<std::string> explain_args(const std::string& output) {
    return {"--model", atman_test::model_path(), "--prompt", "Alice was born in Paris. Where was Alice born?",
            "--target", "Paris", "--format", "json", "-o", output, "--threads", "1", "--quiet"};
}

json explain_with(const std::string& program, std::vector<std::string> args, const std::string& output,
                  const std::string& environment = {}) {
    const std::vector<std::string> rest = explain_args(output);
    args.insert(args.end(), rest.begin(), rest.end());
    const atman_test::program_result r = run_program(program, args, environment);
    INFO(program << " stderr: " << r.err);
    REQUIRE(r.exit_code == 0);
    return json::parse(atman_test::read_text(output));
}

}  // namespace

// Below the engine's row-block size (this prompt's batches are) its results
// do not depend on the batch or thread count (tests/model/test_determinism.cpp),
// so every shard's scores are one process's, within the 1e-5.
TEST_CASE("atman-explain-mpi: 1, 2 and 3 ranks give atman-explain's explanation") {
    const atman_test::scratch_dir dir("atman-mpi-explain");
    const json single = explain_with(ATMAN_EXPLAIN, {}, (dir / "single.json").string());
    const double tolerance = 1e-5;
    const json& units = single.at("units");
    REQUIRE(units.size() == 9);

    for (int ranks = 1; ranks <= 3; ++ranks) {
        const std::string output = (dir / ("ranks" + std::to_string(ranks) + ".json")).string();
        const json spread = explain_with(ATMAN_MPIEXEC, mpirun_args(ranks), output, mpi_environment);
        INFO(ranks << " ranks");
        CHECK(spread.at("prompt") == single.at("prompt"));
        CHECK(spread.at("model") == single.at("model"));
        REQUIRE(spread.at("units").size() == units.size());
        for (std::size_t u = 0; u < units.size(); ++u) {
            const json& want = units[u];
            const json& got = spread.at("units")[u];
            INFO("unit " << u << " \"" << want.at("text").get<std::string>() << "\"");
            CHECK(got.at("text") == want.at("text"));
            CHECK(std::abs(got.at("score").get<double>() - want.at("score").get<double>()) <= tolerance);
        }
        // Each rank runs its own base pass; all perturbations run exactly once.
        CHECK(spread.at("stats").at("passes") == single.at("stats").at("passes").get<int>() + ranks - 1);
    }
}

TEST_CASE("atman-explain-mpi: a failed rank fails the run with a message and writes nothing") {
    const atman_test::scratch_dir dir("atman-mpi-fail");
    const std::string output = (dir / "out.json").string();
    std::vector<std::string> args = mpirun_args(2);
    const std::vector<std::string> rest = explain_args(output);
    args.insert(args.end(), rest.begin(), rest.end());
    const atman_test::program_result r =
        run_program(ATMAN_MPIEXEC, args, mpi_environment + " ATMAN_MPI_FAIL_RANK=1");
    INFO("stderr: " << r.err);
    CHECK(r.exit_code != 0);
    CHECK(r.err.find("atman-explain-mpi: rank 1 of 2: failing on purpose") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(output));
    CHECK(r.out.empty());
}

TEST_CASE("atman-explain-mpi: bad usage exits 2 with one message") {
    std::vector<std::string> args = mpirun_args(2);
    for (const char* a : {"--prompt", "x", "--kappa", "2"}) args.push_back(a);
    const atman_test::program_result r = run_program(ATMAN_MPIEXEC, args, mpi_environment);
    INFO("stderr: " << r.err);
    CHECK(r.exit_code == 2);
    const std::string message = "atman-explain-mpi: --kappa must lie in [-1, 1]";
    const auto first = r.err.find(message);
    CHECK(first != std::string::npos);
    CHECK(r.err.find(message, first + 1) == std::string::npos);  // from rank 0 only
}
