// atman-explain: which parts of a prompt made the model say this?
//
// Loads a Llama-family GGUF model, takes a prompt (in the model's chat
// template unless --raw), generates an answer greedily or takes --target, and
// explains it with AtMan: one forward pass with suppressed attention per unit
// of the prompt. Writes a terminal heatmap, JSON or a self-contained HTML page.
// The options are in engine/cli.hpp (shared with atman-explain-mpi).

#include <atman/atman.hpp>

#include "engine/cli.hpp"
#include "engine/limits.hpp"
#include "engine/llama_engine.hpp"
#include "engine/omp_policy.hpp"
#include "engine/progress.hpp"

namespace {

namespace eng = atman::engine;

void explain(const eng::cli_options& options) {
    eng::check_outputs(options);  // first: a closed stdout would be the next file opened
    eng::apply_threads(options.threads);
    const std::string user_prompt = eng::read_prompt(options);
    const eng::loaded_model loaded(options);
    eng::llama_engine engine(loaded.model);
    const atman::explain_request request = eng::build_request(options, user_prompt, loaded, engine);

    eng::progress_bar bar("units", !options.quiet);
    atman::explain_options run_options;
    run_options.before_running = [&](const atman::plan& plan) {
        eng::check_plan_memory(loaded.model.hparams(), plan);
        bar.weigh_by(plan);
    };
    run_options.progress = [&](atman::index_t done, atman::index_t total) {
        bar.update(done, total);
        return true;
    };
    const atman::explanation result = eng::run_search(options, user_prompt, loaded, engine, request, run_options);
    bar.finish();
    eng::write_outputs(options, result, loaded.json());
}

}  // namespace

int main(int argc, char** argv) {
    eng::restart_with_passive_omp_wait("atman-explain", argv);
    const eng::cli_program program{
        "atman-explain",
        "atman-explain: explain what a language model said with AtMan (attention manipulation).\n"
        "Each unit of the prompt is suppressed in turn; its score is the rise in the target's\n"
        "cross-entropy (positive = the unit supports the target)."};
    return eng::run_command_line(program, argc, argv, explain);
}
