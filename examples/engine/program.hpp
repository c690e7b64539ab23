#pragma once
// What the five programs share (atman-explain, atman-explain-mpi, atman-bench,
// atman-eval, atman-bench-mpi): one set of exit codes, 0 success, 1 a failure
// while running (a model that is missing or cannot be loaded included), 2 bad
// usage, each failure one line "program: message" on stderr; --help on
// stdout; one wording for bad numbers; and --threads.

#include <atman/error.hpp>

#include <functional>
#include <string>
#include <vector>

namespace CLI {
class App;
class Validator;
}  // namespace CLI

namespace atman::engine {

// Something the user must fix in the command line or its inputs (exit code 2),
// as opposed to a failure while running (exit code 1).
class usage_error : public atman::invalid_argument {
public:
    using atman::invalid_argument::invalid_argument;
};

// Parses args (those after the program name) with app. Returns the help text
// when --help was given, else "". Throws usage_error with CLI11's complaint.
std::string parse_arguments(CLI::App& app, const std::vector<std::string>& args);

// Runs body and turns its outcome into the exit code: body's own, 2 for a
// usage_error, 1 for any other exception. With report, a failure is one line
// "name: message" on stderr; without (the other ranks of an MPI run),
// silence. Past a file-size limit (ulimit -f) a write then fails with EFBIG,
// which the program reports, instead of the signal killing it mid-file.
int run_program(const std::string& name, const std::function<int()>& body, bool report = true);

// argv parsed with app, then its help on stdout or body, through run_program.
int run_program(const std::string& name, CLI::App& app, int argc, const char* const* argv,
                const std::function<int()>& body);

// A CLI11 check: a whole number in [least, most]; meaning words the bounds for
// the message "must be a whole number <meaning>, got '<value>'".
CLI::Validator whole_number(long long least, long long most, const std::string& meaning);

// More threads would only oversubscribe the cores; the bound keeps the count an int.
inline constexpr long long max_threads = 1024;

// threads > 0: that many threads for OpenMP and Eigen; 0 leaves their defaults.
void apply_threads(int threads);

}  // namespace atman::engine
