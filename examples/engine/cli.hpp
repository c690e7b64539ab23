#pragma once
// The command line shared by atman-explain and atman-explain-mpi: its options
// and their validation, the explain request they describe, and the output
// they ask for. Exit codes and messages: program.hpp.

#include <atman/config.hpp>
#include <atman/error.hpp>
#include <atman/explainer.hpp>
#include <atman/explanation.hpp>
#include <atman/hierarchical.hpp>

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "chat_template.hpp"
#include "gguf.hpp"
#include "llama_engine.hpp"
#include "llama_model.hpp"
#include "program.hpp"
#include "tokenizer.hpp"

namespace atman::engine {

struct cli_options {
    std::string program;  // the program's name, for messages
    std::string model, prompt, prompt_file, system, target, contrast, delimiter;
    std::string output, html_output, format = "terminal";
    index_t generate = 32;  // tokens to generate when there is no --target
    bool raw = false, quiet = false;
    std::string sink = "bos";  // raw prompts' first position (tokenize_prompt's bos_sink)
    int threads = 0;  // 0: the program's default
    atman::granularity granularity = atman::granularity::word;                  // of the units
    atman::target_granularity targets = atman::target_granularity::complete;  // the reports' view
    atman::config cfg;
    // --search hierarchical: coarse-to-fine (atman/hierarchical.hpp), its
    // levels coarsest first; refine.levels is filled by run_search().
    std::string search = "exhaustive";
    std::vector<atman::granularity> levels = {atman::granularity::paragraph, atman::granularity::sentence};
    atman::hierarchical_options refine;
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

// Parses argv, prints --help, else runs body, with run_program's exit codes
// and messages; without report (the other ranks of an MPI run), silence.
int run_command_line(const cli_program& program, int argc, const char* const* argv,
                     const std::function<void(const cli_options&)>& body, bool report = true);

// The user's prompt: --prompt, or the contents of --prompt-file (- for
// standard input) without a leading UTF-8 byte order mark. Throws usage_error
// when the file cannot be read, holds invalid UTF-8 or the prompt is empty.
std::string read_prompt(const cli_options& options);

// Before any work, so that a bad output path costs no computation: throws
// usage_error when -o and --html name the same file, when one cannot be
// created or replaced, or when the output goes to a closed standard output.
void check_outputs(const cli_options& options);

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
                                     const text_codec& tok, const chat_format* tmpl, const generator& generate);

// explain() or, with --search hierarchical, explain_hierarchical() with the
// units of each --levels granularity over the user's text as coarse levels.
atman::explanation run_search(const cli_options& options, const std::string& user_prompt,
                              const loaded_model& loaded, llama_engine& engine,
                              const atman::explain_request& request, const atman::explain_options& run_options);

// Writes the explanation in --format to -o FILE (else stdout) and the --html
// page, all or none (output_files.hpp), and unless --quiet a summary line on
// stderr. model_json: the "model" member of the JSON output. Throws
// atman::error naming the output and the reason when a write fails.
void write_outputs(const cli_options& options, const atman::explanation& result,
                   const std::string& model_json);

}  // namespace atman::engine
