// atman-explain: which parts of a prompt made the model say this?
//
// Loads a Llama-family GGUF model, takes a prompt (in the model's chat
// template unless --raw), generates an answer greedily or takes --target, and
// explains it with AtMan: one forward pass with suppressed attention per unit
// of the prompt. Writes a terminal heatmap, JSON or a self-contained HTML page.

#include <atman/atman.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <Eigen/Core>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <sstream>

#include "engine/chat_template.hpp"
#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "engine/model_path.hpp"
#include "engine/progress.hpp"
#include "engine/prompt.hpp"
#include "engine/tokenizer.hpp"

namespace {

namespace eng = atman::engine;

struct options {
    std::string model, prompt, prompt_file, system, target, contrast, delimiter;
    std::string output, html_output, format = "terminal";
    atman::index_t generate = 32;
    bool raw = false, quiet = false;
    int threads = 0;
    atman::config cfg;
};

// Usage errors (exit 2) as opposed to failures while running (exit 1).
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

std::string read_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw usage_error("cannot read --prompt-file " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

template <class Enum>
CLI::Option* add_enum(CLI::App& app, const std::string& name, Enum& value,
                      const std::map<std::string, Enum>& names, const std::string& help) {
    return app.add_option(name, value, help)
        ->transform(CLI::CheckedTransformer(names, CLI::ignore_case))
        ->default_str(atman::to_string(value));
}

std::string model_json(const eng::gguf_file& file, const eng::llama_model& model, const std::string& path) {
    const nlohmann::json json = {{"name", model.name()},
                                 {"path", path},
                                 {"architecture", file.get_string("general.architecture")},
                                 {"parameters", model.parameter_count()}};
    return json.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

int run(const options& opt) {
    if (opt.threads > 0) {
        omp_set_num_threads(opt.threads);
        Eigen::setNbThreads(opt.threads);
    }
    const std::string user = opt.prompt_file.empty() ? opt.prompt : read_file(opt.prompt_file);
    if (user.empty()) throw usage_error("the prompt is empty");
    const std::string path = eng::resolve_model_path(opt.model);

    const eng::gguf_file file = eng::gguf_file::open(path);
    const eng::tokenizer tok(file);
    std::optional<eng::chat_template> tmpl;
    if (!opt.raw) tmpl = eng::chat_template::from_gguf(file);
    if (!opt.quiet) std::cerr << "atman-explain: loading " << path << "\n";
    const eng::llama_model model = eng::llama_model::load(file);
    eng::llama_engine engine(model);

    const eng::prompt_tokens prompt =
        eng::tokenize_prompt(tok, tmpl ? &*tmpl : nullptr, user, opt.system);
    std::vector<std::int32_t> target_ids;
    if (!opt.target.empty()) {
        target_ids = tok.encode_ids(opt.target);
    } else {
        const std::vector<std::int32_t> stops = eng::stop_ids(tok, tmpl ? &*tmpl : nullptr);
        target_ids = engine.generate(prompt.ids, opt.generate, stops);
        while (!target_ids.empty() &&
               std::find(stops.begin(), stops.end(), target_ids.back()) != stops.end()) {
            target_ids.pop_back();
        }
        if (target_ids.empty()) throw atman::error("the model generated nothing to explain");
        if (!opt.quiet) std::cerr << "atman-explain: generated: " << tok.decode(target_ids) << "\n";
    }
    const std::vector<std::int32_t> contrast_ids =
        opt.contrast.empty() ? std::vector<std::int32_t>{} : tok.encode_ids(opt.contrast);

    atman::unit_options units;
    units.by = opt.cfg.unit_granularity;
    units.delimiter = opt.delimiter;
    const atman::explain_request request = eng::make_request(tok, prompt, target_ids, units, contrast_ids);

    eng::progress_bar bar("units", !opt.quiet);
    atman::explain_options run_options;
    run_options.progress = [&](atman::index_t done, atman::index_t total) {
        bar.update(done, total);
        return true;
    };
    const atman::explanation result = atman::explain(engine, request, opt.cfg, run_options);
    bar.finish();

    std::string text;
    if (opt.format == "json") {
        atman::json_options json;
        json.extra_members.push_back({"model", model_json(file, model, path)});
        text = atman::to_json(result, json) + "\n";
    } else if (opt.format == "html") {
        text = atman::to_html(result);
    } else {
        text = atman::to_terminal(result, opt.output.empty() ? atman::terminal_options::for_stream(stdout)
                                                             : atman::terminal_options{});
    }
    if (opt.output.empty()) {
        std::cout << text << std::flush;
    } else {
        std::ofstream out(opt.output, std::ios::binary);
        if (!(out << text)) throw atman::error("cannot write " + opt.output);
    }
    if (!opt.html_output.empty()) {
        std::ofstream out(opt.html_output, std::ios::binary);
        if (!(out << atman::to_html(result))) throw atman::error("cannot write " + opt.html_output);
    }
    if (!opt.quiet) {
        std::cerr << "atman-explain: " << result.units.size() << " units, " << result.stats.passes
                  << " passes, " << result.stats.token_forwards << " token-forwards (naive "
                  << result.stats.token_forwards_naive << "), " << result.stats.seconds << " s\n";
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    options opt;
    CLI::App app{"atman-explain: explain what a language model said with AtMan (attention manipulation).\n"
                 "Each unit of the prompt is suppressed in turn; its score is the rise in the target's\n"
                 "cross-entropy (positive = the unit supports the target)."};
    app.add_option("--model", opt.model, "GGUF model file (default: $ATMAN_MODEL, else the cached default model)");
    auto* prompt = app.add_option("--prompt", opt.prompt, "the user's prompt text");
    auto* prompt_file = app.add_option("--prompt-file", opt.prompt_file, "read the prompt from a file");
    prompt->excludes(prompt_file);
    app.add_option("--system", opt.system, "system message (default: the chat template's own)");
    auto* target = app.add_option("--target", opt.target, "the answer to explain (teacher-forced)");
    app.add_option("--generate", opt.generate, "generate up to N tokens greedily and explain them (default when no --target)")
        ->check(CLI::Range(1, 4096))->excludes(target)->capture_default_str();
    app.add_option("--contrast", opt.contrast, "explain why --target rather than this text");
    app.add_flag("--raw", opt.raw, "use the prompt as is, without the chat template");
    add_enum(app, "--granularity", opt.cfg.unit_granularity,
             {{"token", atman::granularity::token}, {"word", atman::granularity::word},
              {"sentence", atman::granularity::sentence}, {"paragraph", atman::granularity::paragraph},
              {"delimiter", atman::granularity::delimiter}},
             "unit of the explanation");
    app.add_option("--delimiter", opt.delimiter, "cut units after this string (implies --granularity delimiter)");
    add_enum(app, "--mode", opt.cfg.mode,
             {{"multiplicative", atman::manipulation_mode::multiplicative},
              {"log_additive", atman::manipulation_mode::log_additive}},
             "how suppression acts on attention scores");
    app.add_option("--factor", opt.cfg.factor, "attention factor of a suppressed unit (0 <= F; 1 = untouched)")
        ->capture_default_str();
    app.add_flag("--conceptual", opt.cfg.conceptual, "also suppress similar tokens (cosine neighbourhood)");
    app.add_option("--kappa", opt.cfg.kappa, "similarity threshold of --conceptual, in [-1, 1]")->capture_default_str();
    add_enum(app, "--target-granularity", opt.cfg.targets,
             {{"complete", atman::target_granularity::complete}, {"token", atman::target_granularity::token}},
             "one explanation for the whole target, or one per target token");
    add_enum(app, "--postprocess", opt.cfg.post,
             {{"none", atman::postprocess::none}, {"absolute", atman::postprocess::absolute},
              {"square", atman::postprocess::square}},
             "transform of the raw scores");
    app.add_flag("--normalize", opt.cfg.normalize, "min-max normalise the scores to [0, 1]");
    app.add_option("--batch", opt.cfg.max_batch_rows, "perturbations per batch (0 = automatic)")
        ->check(CLI::NonNegativeNumber)->capture_default_str();
    app.add_option("--threads", opt.threads, "threads (0 = all cores)")->check(CLI::NonNegativeNumber);
    app.add_option("--format", opt.format, "output format")
        ->check(CLI::IsMember({"terminal", "json", "html"}))->capture_default_str();
    app.add_option("-o,--output", opt.output, "write the output to FILE instead of stdout");
    app.add_option("--html", opt.html_output, "also write an HTML heatmap to FILE");
    app.add_flag("-q,--quiet", opt.quiet, "no progress or messages on stderr");

    try {
        app.parse(argc, argv);
        if (opt.prompt.empty() && opt.prompt_file.empty()) throw usage_error("give --prompt TEXT or --prompt-file FILE");
        if (!opt.delimiter.empty()) opt.cfg.unit_granularity = atman::granularity::delimiter;
        opt.cfg.validate();
    } catch (const CLI::CallForHelp&) {
        std::cout << app.help();
        return 0;
    } catch (const CLI::ParseError& e) {
        std::cerr << "atman-explain: " << e.what() << " (see --help)\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "atman-explain: " << e.what() << " (see --help)\n";
        return 2;
    }
    try {
        return run(opt);
    } catch (const usage_error& e) {
        std::cerr << "atman-explain: " << e.what() << "\n";
        return 2;
    } catch (const std::exception& e) {
        std::cerr << "atman-explain: " << e.what() << "\n";
        return 1;
    }
}
