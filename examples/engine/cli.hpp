#pragma once
// The command line shared by atman-explain and atman-explain-mpi: its options
// and their validation, the explain request they describe, and the output
// they ask for. Exit codes: 0 success, 2 bad usage, 1 any other failure, each
// failure with a one-line message on stderr naming the problem.

#include <atman/config.hpp>
#include <atman/error.hpp>
#include <atman/explainer.hpp>
#include <atman/explanation.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "chat_template.hpp"
#include "gguf.hpp"
#include "llama_engine.hpp"
#include "llama_model.hpp"
#include "tokenizer.hpp"

namespace atman::engine {

// Something the user must fix in the command line or its inputs (exit code 2),
// as opposed to a failure while running (exit code 1).
class usage_error : public atman::invalid_argument {
public:
    using atman::invalid_argument::invalid_argument;
};

struct cli_options {
    std::string program;  // the program's name, for messages
    std::string model, prompt, prompt_file, system, target, contrast, delimiter;
    std::string output, html_output, format = "terminal";
    index_t generate = 32;  // tokens to generate when there is no --target
    bool raw = false, quiet = false;
    int threads = 0;  // 0: the program's default
    atman::granularity granularity = atman::granularity::word;                  // of the units
    atman::target_granularity targets = atman::target_granularity::complete;  // the reports' view
    atman::config cfg;
};

// A program's name and the description --help shows above the options.
struct cli_program {
    std::string name;
    std::string description;
};

struct command_line {
    cli_options options;
    std::string help;  // non-empty when --help was given: print it and run nothing
};

// Parses the arguments after the program name. Reads no file and no
// environment. Throws usage_error naming the first problem.
command_line parse_command_line(const cli_program& program, const std::vector<std::string>& args);

// Parses argv, prints --help, else runs body and turns its outcome into the
// exit code. With report, --help goes to stdout and a failure is one line
// "name: message" on stderr; without (the other ranks of an MPI run), silence.
int run_command_line(const cli_program& program, int argc, const char* const* argv,
                     const std::function<void(const cli_options&)>& body, bool report = true);

// --threads N > 0: N threads for OpenMP and Eigen; 0 leaves their defaults.
void apply_threads(int threads);

// The user's prompt: --prompt, or the contents of --prompt-file. Throws
// usage_error when the file cannot be read or the prompt is empty.
std::string read_prompt(const cli_options& options);

// The model of --model (else the default), its tokenizer, and its chat
// template unless --raw. Says what it loads on stderr unless --quiet.
struct loaded_model {
    explicit loaded_model(const cli_options& options);

    std::string path;
    gguf_file file;
    tokenizer tok;
    std::optional<chat_template> tmpl;
    llama_model model;

    // The JSON "model" member: name, path, architecture, parameters.
    std::string json() const;
};

// The request for user_prompt: tokenised in the chat template (unless --raw)
// with --system, the target of --target or else the engine's greedy answer of
// up to --generate tokens, units of --granularity / --delimiter over the
// user's text, and --contrast.
atman::explain_request build_request(const cli_options& options, const std::string& user_prompt,
                                     const loaded_model& loaded, llama_engine& engine);

// The same for any engine: greedy generation (prompt, max new tokens, stop
// ids -> new tokens) is the engine's, the tokens are tok's. Checks nothing
// against a model.
using generator = std::function<std::vector<std::int32_t>(
    const std::vector<std::int32_t>& prompt, index_t max_new_tokens, const std::vector<std::int32_t>& stop_ids)>;
atman::explain_request build_request(const cli_options& options, const std::string& user_prompt,
                                     const tokenizer& tok, const chat_template* tmpl, const generator& generate);

// Writes the explanation in --format to -o FILE (else stdout), the --html
// page, and unless --quiet a summary line on stderr. model_json: the
// "model" member of the JSON output.
void write_outputs(const cli_options& options, const atman::explanation& result,
                   const std::string& model_json);

}  // namespace atman::engine
