#include "cli.hpp"

#include <atman/report/html.hpp>
#include <atman/report/json.hpp>
#include <atman/report/terminal.hpp>

#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "limits.hpp"
#include "model_path.hpp"
#include "prompt.hpp"

namespace atman::engine {

namespace {

template <class Enum>
void add_enum(CLI::App& app, const std::string& name, Enum& value,
              const std::map<std::string, Enum>& names, const std::string& help) {
    app.add_option(name, value, help)
        ->transform(CLI::CheckedTransformer(names, CLI::ignore_case))
        ->default_str(atman::to_string(value));
}

void add_options(CLI::App& app, cli_options& opt) {
    app.add_option("--model", opt.model, "GGUF model file (default: $ATMAN_MODEL, else the cached default model)");
    auto* prompt = app.add_option("--prompt", opt.prompt, "the user's prompt text");
    auto* prompt_file = app.add_option("--prompt-file", opt.prompt_file, "read the prompt from a file");
    prompt->excludes(prompt_file);
    app.add_option("--system", opt.system, "system message (default: the chat template's own)");
    auto* target = app.add_option("--target", opt.target, "the answer to explain (teacher-forced)");
    app.add_option("--generate", opt.generate,
                   "generate up to N tokens greedily and explain them (default when no --target)")
        ->check(CLI::Range(1, 4096))
        ->excludes(target)
        ->capture_default_str();
    app.add_option("--contrast", opt.contrast, "explain why the target rather than this text");
    app.add_flag("--raw", opt.raw, "use the prompt as is, without the chat template");
    add_enum(app, "--granularity", opt.granularity,
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
    app.add_option("--kappa", opt.cfg.kappa, "similarity threshold of --conceptual, in [-1, 1]")
        ->capture_default_str();
    add_enum(app, "--target-granularity", opt.targets,
             {{"complete", atman::target_granularity::complete}, {"token", atman::target_granularity::token}},
             "one explanation for the whole target, or one per target token");
    add_enum(app, "--postprocess", opt.cfg.post,
             {{"none", atman::postprocess::none}, {"absolute", atman::postprocess::absolute},
              {"square", atman::postprocess::square}},
             "transform of the raw scores");
    app.add_flag("--normalize", opt.cfg.normalize, "min-max normalise the scores to [0, 1]");
    app.add_option("--batch", opt.cfg.max_batch_rows, "perturbations per batch (0 = automatic)")
        ->check(CLI::NonNegativeNumber)
        ->capture_default_str();
    app.add_option("--threads", opt.threads, "threads (0 = all cores)")->check(CLI::NonNegativeNumber);
    app.add_option("--format", opt.format, "output format")
        ->check(CLI::IsMember({"terminal", "json", "html"}))
        ->capture_default_str();
    app.add_option("-o,--output", opt.output, "write the output to FILE instead of stdout");
    app.add_option("--html", opt.html_output, "also write an HTML heatmap to FILE");
    app.add_flag("-q,--quiet", opt.quiet, "no progress or messages on stderr");
}

// What CLI11 cannot check option by option.
void check_combinations(cli_options& opt) {
    if (opt.prompt.empty() && opt.prompt_file.empty()) throw usage_error("give --prompt TEXT or --prompt-file FILE");
    if (!opt.delimiter.empty()) opt.granularity = atman::granularity::delimiter;
    if (opt.granularity == atman::granularity::delimiter && opt.delimiter.empty())
        throw usage_error("--granularity delimiter needs --delimiter S");
    if (!opt.contrast.empty() && opt.targets != atman::target_granularity::complete)
        throw usage_error("--contrast compares whole targets; it cannot be used with --target-granularity token");
    try {
        opt.cfg.validate();
    } catch (const atman::invalid_argument& e) {
        throw usage_error(std::string("--") + e.what());
    }
}

// The model to load, named on stderr unless --quiet: loading takes a while.
std::string announced_model_path(const cli_options& options) {
    std::string path = resolve_model_path(options.model);
    if (!options.quiet) std::cerr << options.program << ": loading " << path << "\n";
    return path;
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out(path, std::ios::binary);
    if (!(out << text) || !out.flush()) throw atman::error("cannot write " + path);
}

}  // namespace

command_line parse_command_line(const cli_program& program, const std::vector<std::string>& args) {
    command_line result;
    result.options.program = program.name;
    CLI::App app{program.description, program.name};
    add_options(app, result.options);
    std::vector<std::string> reversed(args.rbegin(), args.rend());  // CLI11 consumes from the back
    try {
        app.parse(reversed);
    } catch (const CLI::Success&) {
        result.help = app.help();
        return result;
    } catch (const CLI::ParseError& e) {
        throw usage_error(std::string(e.what()) + " (see --help)");
    }
    check_combinations(result.options);
    return result;
}

int run_command_line(const cli_program& program, int argc, const char* const* argv,
                     const std::function<void(const cli_options&)>& body, bool report) {
    const auto fail = [&](int code, const char* message) {
        if (report) std::cerr << program.name << ": " << message << "\n";
        return code;
    };
    try {
        const command_line parsed =
            parse_command_line(program, std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
        if (!parsed.help.empty()) {
            if (report) std::cout << parsed.help << std::flush;
            return 0;
        }
        body(parsed.options);
        return 0;
    } catch (const usage_error& e) {
        return fail(2, e.what());
    } catch (const std::exception& e) {
        return fail(1, e.what());
    }
}

void apply_threads(int threads) {
    if (threads <= 0) return;
    omp_set_num_threads(threads);
    Eigen::setNbThreads(threads);
}

std::string read_prompt(const cli_options& options) {
    std::string text = options.prompt;
    if (!options.prompt_file.empty()) {
        std::ifstream in(options.prompt_file, std::ios::binary);
        std::ostringstream contents;
        if (!in || !(contents << in.rdbuf())) throw usage_error("cannot read --prompt-file " + options.prompt_file);
        text = contents.str();
    }
    if (text.empty()) throw usage_error("the prompt is empty");
    return text;
}

loaded_model::loaded_model(const cli_options& options)
    : path(announced_model_path(options)),
      file(gguf_file::open(path)),
      tok(file),
      tmpl(options.raw ? std::nullopt : std::optional<chat_template>(chat_template::from_gguf(file))),
      model(llama_model::load(file)) {}

std::string loaded_model::json() const {
    const nlohmann::json member = {{"name", model.name()},
                                   {"path", path},
                                   {"architecture", file.get_string("general.architecture")},
                                   {"parameters", model.parameter_count()}};
    return member.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

atman::explain_request build_request(const cli_options& options, const std::string& user_prompt,
                                     const tokenizer& tok, const chat_template* tmpl,
                                     const generator& generate) {
    const prompt_tokens prompt = tokenize_prompt(tok, tmpl, user_prompt, options.system);
    std::vector<std::int32_t> target_ids;
    if (!options.target.empty()) {
        target_ids = tok.encode_ids(options.target);
    } else {
        target_ids = generate(prompt.ids, options.generate, stop_ids(tok, tmpl));
        if (target_ids.empty()) throw atman::error("the model generated nothing to explain");
        if (!options.quiet)
            std::cerr << options.program << ": generated: " << tok.decode(target_ids) << "\n";
    }
    const std::vector<std::int32_t> contrast_ids =
        options.contrast.empty() ? std::vector<std::int32_t>{} : tok.encode_ids(options.contrast);
    atman::unit_options units;
    units.by = options.granularity;
    units.delimiter = options.delimiter;
    return make_request(tok, prompt, target_ids, units, contrast_ids);
}

atman::explain_request build_request(const cli_options& options, const std::string& user_prompt,
                                     const loaded_model& loaded, llama_engine& engine) {
    const atman::explain_request request = build_request(
        options, user_prompt, loaded.tok, loaded.tmpl ? &*loaded.tmpl : nullptr,
        [&](const std::vector<std::int32_t>& prompt, index_t max_new, const std::vector<std::int32_t>& stops) {
            return engine.generate(prompt, max_new, stops);
        });
    check_request(loaded.model.hparams(), request, options.cfg);
    return request;
}

void write_outputs(const cli_options& options, const atman::explanation& result,
                   const std::string& model_json) {
    atman::html_options html;
    html.targets = options.targets;
    std::string text;
    if (options.format == "json") {
        atman::json_options json;
        json.targets = options.targets;
        json.extra_members.push_back({"model", model_json});
        text = atman::to_json(result, json) + "\n";
    } else if (options.format == "html") {
        text = atman::to_html(result, html);
    } else {
        atman::terminal_options terminal =
            options.output.empty() ? atman::terminal_options::for_stream(stdout) : atman::terminal_options{};
        terminal.targets = options.targets;
        text = atman::to_terminal(result, terminal);
    }
    if (options.output.empty()) {
        std::cout << text << std::flush;
    } else {
        write_file(options.output, text);
    }
    if (!options.html_output.empty()) write_file(options.html_output, atman::to_html(result, html));
    if (!options.quiet) {
        std::cerr << options.program << ": " << result.units.size() << " units, " << result.stats.passes
                  << " passes, " << result.stats.token_forwards << " token-forwards (naive "
                  << result.stats.token_forwards_naive << "), " << result.stats.seconds << " s\n";
    }
}

}  // namespace atman::engine
