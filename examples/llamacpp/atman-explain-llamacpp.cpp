// atman-explain-llamacpp: atman-explain with llama.cpp as the engine.
//
// The same options and outputs as atman-explain (engine/cli.hpp); the
// forward passes run in an unmodified llama.cpp through the adapter of
// llamacpp_engine.hpp, the tokens and units from atman's tokenizer and chat
// template read from the same GGUF where atman's tokenizer supports the
// vocabulary, from llama.cpp's otherwise (llamacpp_text.hpp).

#include <atman/atman.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <iostream>

#include "engine/cli.hpp"
#include "engine/gguf.hpp"
#include "engine/limits.hpp"
#include "engine/model_path.hpp"
#include "engine/omp_policy.hpp"
#include "engine/progress.hpp"
#include "engine/prompt.hpp"
#include "llamacpp_engine.hpp"
#include "llamacpp_text.hpp"

namespace {

namespace eng = atman::engine;

void explain(const eng::cli_options& options) {
    eng::check_outputs(options);  // first: a closed stdout would be the next file opened
    if (options.search != "exhaustive")  // run_search drives the reference engine only
        throw eng::usage_error("--search " + options.search + " runs in atman-explain only, not on llama.cpp");
    const std::string user_prompt = eng::read_prompt(options);
    const std::string path = eng::resolve_model_path(options.model);
    if (!options.quiet) std::cerr << options.program << ": loading " << path << "\n";
    const eng::gguf_file file = eng::gguf_file::open(path);
    const atman::llamacpp::prompt_text text = atman::llamacpp::load_prompt_text(file, path, options.raw);
    const eng::text_codec& tok = *text.tok;
    const eng::chat_format* tmpl = text.tmpl.get();

    // The context holds the longest sequence (the prompt and the generation,
    // target or contrast) within the model's window; llama.cpp reserves its
    // buffers for that size, so it is not the window itself.
    const eng::prompt_tokens prompt =
        eng::tokenize_prompt(tok, tmpl, user_prompt, options.system, options.sink == "bos");
    const atman::index_t answer = std::max({options.generate, atman::index_t(tok.encode_ids(options.target).size()),
                                            atman::index_t(tok.encode_ids(options.contrast).size())});
    const auto window = atman::index_t(file.get_uint(file.get_string("general.architecture") + ".context_length"));
    atman::llamacpp::engine_options engine_options;
    engine_options.threads = options.threads;
    engine_options.max_length = std::min(atman::index_t(prompt.ids.size()) + answer, window);
    atman::llamacpp::engine engine(path, engine_options);

    const atman::explain_request request = eng::build_request(
        options, user_prompt, tok, tmpl,
        [&](const std::vector<std::int32_t>& prompt, atman::index_t max_new, const std::vector<std::int32_t>& stops) {
            return engine.generate(prompt, max_new, stops);
        });
    const auto n_prompt = atman::index_t(request.prompt_tokens.size());
    eng::check_context(n_prompt, atman::index_t(request.target_tokens.size()), engine_options.max_length);
    if (request.contrastive())
        eng::check_context(n_prompt, atman::index_t(request.contrast_tokens.size()), engine_options.max_length);

    eng::progress_bar bar("units", !options.quiet);
    atman::explain_options run_options;
    run_options.before_running = [&](const atman::plan& plan) { bar.weigh_by(plan); };
    run_options.progress = [&](atman::index_t done, atman::index_t total) {
        bar.update(done, total);
        return true;
    };
    const atman::explanation result = atman::explain(engine, request, options.cfg, run_options);
    bar.finish();
    const nlohmann::json model = {{"name", engine.metadata("general.name")},
                                  {"path", path},
                                  {"architecture", engine.metadata("general.architecture")},
                                  {"parameters", engine.parameter_count()},
                                  {"engine", "llama.cpp"},
                                  {"tokenizer", text.by}};
    eng::write_outputs(options, result, model.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

}  // namespace

int main(int argc, char** argv) {
    // llama.cpp's CPU backend runs on the same libgomp: spinning barriers cost
    // it 5x on a loaded machine (docs/llama-cpp.md).
    eng::restart_with_passive_omp_wait("atman-explain-llamacpp", argv);
    const eng::cli_program program{
        "atman-explain-llamacpp",
        "atman-explain-llamacpp: explain what a language model said with AtMan, running the model in\n"
        "llama.cpp. Each unit of the prompt is suppressed in turn; its score is the rise in the target's\n"
        "cross-entropy (positive = the unit supports the target)."};
    return eng::run_command_line(program, argc, argv, explain);
}
