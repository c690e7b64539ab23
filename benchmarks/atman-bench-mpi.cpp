// atman-bench-mpi: the wall-clock speed-up of atman-explain-mpi with R ranks
// over 1 rank, one thread per rank, on one machine (docs/scale-out.md).
//
// Each run is `mpiexec -np 1|R atman-explain-mpi --threads 1 ...` on the same
// request (a fixed text cut to --words words, word units, a fixed --target),
// timed from start to exit, model loads and MPI start-up included: that is
// what a user waits for. 1-rank and R-rank runs alternate for --repeats
// rounds, so a change in the machine's load hits both alike; the best of
// each counts. Every R-rank explanation must give the 1-rank scores within
// the tolerance of tests/mpi, else the exit code is 1.

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atman/error.hpp>

#include "engine/model_path.hpp"
#include "engine/program.hpp"
#include "support/run_program.hpp"

extern char** environ;

namespace {

using nlohmann::json;
using report_json = nlohmann::ordered_json;  // the report's members in the order written
namespace eng = atman::engine;

// Containers often deny the shared-memory transport's single-copy mechanism
// (it needs ptrace rights); a value the user gave is kept.
constexpr const char* single_copy_variable = "OMPI_MCA_btl_vader_single_copy_mechanism";

const char* const prompt_text =
    "The ferry left the harbour at seven every morning and returned before dark. Its captain had "
    "sailed the same route for thirty years and knew each buoy, each sandbank and each gull that "
    "waited on the pier for the fishermen. In spring the crossing took an hour; in autumn the "
    "currents ran against the hull and it took nearly two. Passengers read newspapers, children "
    "pressed their faces to the windows, and the cook sold tea and bread in the small cabin below "
    "the bridge. When the new bridge across the strait opened, the town voted to keep the ferry "
    "running, because many people said the crossing was the best part of their day.";

struct options {
    std::string model;
    int ranks = 2;
    int repeats = 3;
    int words = 80;  // one 1-thread run in about 30 s (120 words: 60 s)
    std::string target = "The town kept the ferry.";
    std::string format = "table";
};

// The first `count` words of the text, repeated as often as needed.
std::string prompt_of(int count) {
    std::vector<std::string> words;
    std::istringstream in(prompt_text);
    for (std::string w; in >> w;) words.push_back(w);
    std::string prompt;
    for (int i = 0; i < count; ++i) {
        if (i > 0) prompt += ' ';
        prompt += words[std::size_t(i) % words.size()];
    }
    return prompt;
}

// This process's environment, plus the single-copy setting unless it is set.
std::vector<std::string> child_environment() {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) env.emplace_back(*e);
    if (std::getenv(single_copy_variable) == nullptr) env.push_back(std::string(single_copy_variable) + "=none");
    return env;
}

std::vector<char*> c_strings(std::vector<std::string>& strings) {
    std::vector<char*> result;
    for (std::string& s : strings) result.push_back(s.data());
    result.push_back(nullptr);
    return result;
}

// Runs the program with the arguments (no shell), stdout and stderr into
// `log`; returns the exit status as waitpid gives it.
int spawn_and_wait(std::vector<std::string> args, const std::filesystem::path& log) {
    std::vector<std::string> env = child_environment();
    std::vector<char*> argv = c_strings(args), envp = c_strings(env);
    posix_spawn_file_actions_t files;
    posix_spawn_file_actions_init(&files);
    posix_spawn_file_actions_addopen(&files, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&files, STDOUT_FILENO, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&files, STDOUT_FILENO, STDERR_FILENO);
    pid_t pid = 0;
    const int failed = posix_spawn(&pid, argv[0], &files, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&files);
    if (failed != 0) throw atman::error("cannot start " + args[0] + ": " + std::strerror(failed));
    int status = 0;
    while (waitpid(pid, &status, 0) < 0) {
        if (errno != EINTR) throw atman::error(std::string("waitpid failed: ") + std::strerror(errno));
    }
    return status;
}

// One timed `mpiexec -np ranks atman-explain-mpi ...`; returns its explanation.
json explain(const options& opt, const std::string& prompt, int ranks, const std::filesystem::path& output,
             const std::filesystem::path& log, double& seconds) {
    const std::vector<std::string> args = {
        ATMAN_MPIEXEC, "--allow-run-as-root", "--oversubscribe", "-np", std::to_string(ranks),
        ATMAN_EXPLAIN_MPI, "--model", opt.model, "--prompt", prompt, "--target", opt.target,
        "--granularity", "word", "--threads", "1", "--quiet", "--format", "json", "-o", output.string()};
    const auto started = std::chrono::steady_clock::now();
    const int status = spawn_and_wait(args, log);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        const std::string code = WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status))
                                                   : "signal " + std::to_string(WTERMSIG(status));
        throw atman::error("mpiexec -np " + std::to_string(ranks) + " atman-explain-mpi failed (" + code +
                           "):\n" + atman_test::read_text(log));
    }
    return json::parse(atman_test::read_text(output));
}

// The engine's scores do not depend on the batch (tests/model/test_determinism.cpp),
// so shards must give one process's scores to tests/mpi's 1e-5.
constexpr double score_tolerance = 1e-5;

// The largest difference of a unit's score; throws if the units differ.
double max_abs_difference(const json& reference, const json& other) {
    const json &a = reference.at("units"), &b = other.at("units");
    if (a.size() != b.size()) throw atman::error("the explanations have different numbers of units");
    double worst = 0;
    for (std::size_t u = 0; u < a.size(); ++u) {
        if (a[u].at("text") != b[u].at("text")) throw atman::error("the explanations' units differ");
        worst = std::max(worst, std::abs(a[u].at("score").get<double>() - b[u].at("score").get<double>()));
    }
    return worst;
}

void print_table(const report_json& report) {
    const int ranks = report["ranks"].get<int>();
    std::printf("atman-bench-mpi  model %s  %lld prompt tokens, %lld units, 1 thread per rank\n",
                report["model"].get<std::string>().c_str(), report["prompt_tokens"].get<long long>(),
                report["units"].get<long long>());
    std::printf("%6s %10s  %s\n", "ranks", "best_s", "runs_s");
    for (int r : {1, ranks}) {
        std::printf("%6d %10.2f ", r, report[r == 1 ? "seconds_1" : "seconds_R"].get<double>());
        for (const report_json& run : report["runs"])
            if (run["ranks"].get<int>() == r) std::printf(" %.2f", run["seconds"].get<double>());
        std::printf("\n");
    }
    std::printf("speed-up %.2fx, max |score difference| %.2g (tolerance %.2g)\n", report["speedup"].get<double>(),
                report["max_abs_diff"].get<double>(), report["score_tolerance"].get<double>());
}

int run(const options& opt) {
    const atman_test::scratch_dir dir("atman-bench-mpi");
    const std::string prompt = prompt_of(opt.words);
    double best_1 = HUGE_VAL, best_r = HUGE_VAL, worst_difference = 0;
    json reference;
    report_json runs = report_json::array();
    for (int round = 0; round < opt.repeats; ++round) {
        for (int ranks : {1, opt.ranks}) {
            std::cerr << "atman-bench-mpi: round " << round + 1 << " of " << opt.repeats << ", " << ranks
                      << (ranks == 1 ? " rank" : " ranks") << std::endl;
            const std::string name = "np" + std::to_string(ranks) + "-" + std::to_string(round);
            double seconds = 0;
            const json explanation =
                explain(opt, prompt, ranks, dir / (name + ".json"), dir / (name + ".log"), seconds);
            runs.push_back({{"ranks", ranks}, {"seconds", seconds}});
            if (ranks == 1) {
                best_1 = std::min(best_1, seconds);
                if (reference.is_null()) reference = explanation;
            } else {
                best_r = std::min(best_r, seconds);
            }
            worst_difference = std::max(worst_difference, max_abs_difference(reference, explanation));
        }
    }

    // The explanation has no prompt length; its naive count is (units + 1) x (n + m - 1).
    const auto units = json::number_integer_t(reference.at("units").size());
    const auto targets = json::number_integer_t(reference.at("target_tokens").size());
    const auto naive = reference.at("stats").at("token_forwards_naive").get<json::number_integer_t>();
    const report_json report = {{"schema", "atman.bench-mpi/1"},
                                {"model", reference.at("model").at("name")},
                                {"ranks", opt.ranks},
                                {"threads_per_rank", 1},
                                {"words", opt.words},
                                {"prompt_tokens", naive / (units + 1) - targets + 1},
                                {"target_tokens", targets},
                                {"units", units},
                                {"seconds_1", best_1},
                                {"seconds_R", best_r},
                                {"speedup", best_1 / best_r},
                                {"max_abs_diff", worst_difference},
                                {"score_tolerance", score_tolerance},
                                {"runs", runs}};
    if (opt.format == "json") {
        std::cout << report.dump(2) << std::endl;
    } else {
        print_table(report);
    }
    if (!(worst_difference <= score_tolerance)) {
        std::cerr << "atman-bench-mpi: the scores of " << opt.ranks << " ranks differ from 1 rank's by "
                  << worst_difference << ", more than " << score_tolerance << std::endl;
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    options opt;
    CLI::App app{"atman-bench-mpi: speed-up of atman-explain-mpi with R ranks over 1, one thread each "
                 "(docs/scale-out.md)"};
    app.add_option("--model", opt.model, "GGUF model (default: $ATMAN_MODEL or the fetch-model cache)");
    app.add_option("--ranks", opt.ranks, "ranks of the run compared with 1 rank")
        ->check(CLI::Range(2, 1024))
        ->capture_default_str();
    app.add_option("--repeats", opt.repeats, "rounds of one 1-rank and one R-rank run; the best of each counts")
        ->check(CLI::PositiveNumber)
        ->capture_default_str();
    app.add_option("--words", opt.words, "prompt length in words (a fixed text, repeated)")
        ->check(CLI::Range(1, 4000))
        ->capture_default_str();
    app.add_option("--target", opt.target, "the explained answer (teacher-forced, nothing is generated)")
        ->check([](const std::string& text) { return text.empty() ? std::string("must not be empty") : std::string(); })
        ->capture_default_str();
    app.add_option("--format", opt.format, "output on stdout")
        ->check(CLI::IsMember({"table", "json"}))
        ->capture_default_str();
    return eng::run_program("atman-bench-mpi", app, argc, argv, [&] {
        opt.model = std::filesystem::absolute(eng::resolve_model_path(opt.model)).string();
        return run(opt);
    });
}
