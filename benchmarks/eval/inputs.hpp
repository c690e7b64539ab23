#pragma once
// What atman-eval and atman-long read: the model, and which questions of
// which SQuAD-style file.

#include <atman/config.hpp>

#include <CLI/CLI.hpp>


#include <iostream>
#include <limits>
#include <string>

#include "engine/chat_template.hpp"
#include "engine/gguf.hpp"
#include "engine/llama_model.hpp"
#include "engine/model_path.hpp"
#include "engine/program.hpp"
#include "engine/tokenizer.hpp"

namespace atman::eval {

// The options both programs take: the model, which questions of which file, and the threads.
inline void add_input_options(CLI::App& app, std::string& model, std::string& data, index_t& limit,
                              index_t& offset, int& threads) {
    namespace eng = atman::engine;
    const long long no_bound = std::numeric_limits<index_t>::max();
    app.add_option("--model", model, "GGUF model file (default: $ATMAN_MODEL, else the cached default model)");
    app.add_option("--data", data, "SQuAD-style JSON Lines file")->capture_default_str();
    app.add_option("--limit", limit, "at most N questions (default: all)")
        ->check(eng::whole_number(0, no_bound, ">= 0"));
    app.add_option("--offset", offset, "skip the first N questions of the file")
        ->check(eng::whole_number(0, no_bound, ">= 0"))
        ->capture_default_str();
    app.add_option("--threads", threads, "threads (0 = all cores)")
        ->check(eng::whole_number(0, eng::max_threads, "from 0 to " + std::to_string(eng::max_threads) + " (0 = all cores)"))
        ->capture_default_str();
}

// The model of --model (else the default) with its tokenizer and chat
// template; says what it loads on stderr unless quiet.
struct eval_model {
    eval_model(const std::string& program, const std::string& model_option, bool quiet)
        : path(engine::resolve_model_path(model_option)),
          file(engine::gguf_file::open(path)),
          tok(file),
          tmpl(engine::chat_template::from_gguf(file)),
          model(load(program, quiet)) {}

    std::string path;
    engine::gguf_file file;
    engine::tokenizer tok;
    engine::chat_template tmpl;
    engine::llama_model model;

private:
    engine::llama_model load(const std::string& program, bool quiet) const {
        if (!quiet) std::cerr << program << ": loading " << path << "\n";
        return engine::llama_model::load(file);
    }
};

}  // namespace atman::eval
