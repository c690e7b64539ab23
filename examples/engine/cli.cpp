#include "cli.hpp"

#include <atman/report/html.hpp>
#include <atman/report/json.hpp>
#include <atman/report/terminal.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <sstream>
#include <string_view>
#include <type_traits>
#include <utility>

#include "limits.hpp"
#include "model_path.hpp"
#include "output_files.hpp"
#include "prompt.hpp"
#include "utf8.hpp"

namespace atman::engine {

namespace {

// The validators below word their complaints as "--option: <sentence>".

// A value from names (matched ignoring case); the choices are listed on error.
template <class Value>
CLI::Validator one_of(const std::vector<std::pair<std::string, Value>>& names) {
    std::string listed;
    for (std::size_t k = 0; k < names.size(); ++k)
        listed += (k == 0 ? "" : k + 1 == names.size() ? " or " : ", ") + names[k].first;
    return CLI::Validator(
        [names, listed](std::string& value) -> std::string {
            for (const auto& [name, meaning] : names) {
                if (CLI::detail::to_lower(value) != name) continue;
                // Enums reach CLI11 as their number, strings as their name.
                if constexpr (std::is_enum_v<Value>) {
                    value = std::to_string(static_cast<int>(meaning));
                } else {
                    value = meaning;
                }
                return {};
            }
            return "must be " + listed + ", got '" + value + "'";
        },
        "");
}

template <class Enum>
void add_choice(CLI::App& app, const std::string& name, Enum& value,
                const std::vector<std::pair<std::string, Enum>>& names, const std::string& help) {
    std::string listed;
    for (const auto& choice : names) listed += (listed.empty() ? "" : "|") + choice.first;
    app.add_option(name, value, help)->transform(one_of(names))->type_name(listed)->default_str(atman::to_string(value));
}

// A finite decimal number (the ranges are config::validate's).
const CLI::Validator real_number(
    [](std::string& value) -> std::string {
        double x = 0;
        const char* end = value.data() + value.size();
        const auto [stop, error] = std::from_chars(value.data(), end, x);
        if (error == std::errc() && stop == end && std::isfinite(x)) return {};
        return "must be a finite number, got '" + value + "'";
    },
    "");

// Empty text has no meaning for any option that takes text (leave the option out instead).
const CLI::Validator not_empty([](std::string& value) -> std::string {
    return value.empty() ? "must not be empty (leave the option out for its default)" : std::string();
}, "");

CLI::Option* add_text(CLI::App& app, const std::string& name, std::string& value, const std::string& help) {
    return app.add_option(name, value, help)->check(not_empty)->type_name("TEXT");
}

const char* const help_footer = R"(Examples:
  atman-explain --prompt "What is the capital of France?" --target "Paris"
  atman-explain --prompt-file question.txt --format json -o scores.json --html scores.html
  echo "Why is the sky blue?" | atman-explain --prompt-file - --granularity sentence

Exit codes: 0 success; 2 bad usage (a message names the option or file to fix);
1 any other failure (the model file, the texts, the sizes, writing the output).
)";

void add_options(CLI::App& app, cli_options& opt) {
    add_text(app, "--model", opt.model, "GGUF model file (default: $ATMAN_MODEL, else the cached default model)")
        ->type_name("PATH");
    auto* prompt = add_text(app, "--prompt", opt.prompt, "the user's prompt text");
    auto* prompt_file =
        add_text(app, "--prompt-file", opt.prompt_file, "read the prompt from FILE (- for standard input)")
            ->type_name("FILE");
    prompt->excludes(prompt_file);
    add_text(app, "--system", opt.system, "system message (default: the chat template's own)");
    auto* target = add_text(app, "--target", opt.target, "the answer to explain (teacher-forced)");
    app.add_option("--generate", opt.generate,
                   "generate up to N tokens greedily and explain them (default when no --target)")
        ->check(whole_number(1, 4096, "from 1 to 4096"))
        ->type_name("N")
        ->excludes(target)
        ->capture_default_str();
    add_text(app, "--contrast", opt.contrast, "explain why the target rather than this text");
    CLI::Option* raw = app.add_flag("--raw", opt.raw, "use the prompt as is, without the chat template");
    app.add_option("--sink", opt.sink,
                   "raw prompts' first position, the model's attention sink: bos (BOS first when the tokenizer "
                   "adds none, so no word holds the sink) or none (the prompt as tokenised)")
        ->check(CLI::IsMember({"bos", "none"}))->needs(raw)->capture_default_str();
    add_choice(app, "--granularity", opt.granularity,
               {{"token", atman::granularity::token}, {"word", atman::granularity::word},
                {"sentence", atman::granularity::sentence}, {"paragraph", atman::granularity::paragraph},
                {"delimiter", atman::granularity::delimiter}},
               "unit of the explanation");
    add_text(app, "--delimiter", opt.delimiter, "cut units after this string (implies --granularity delimiter)")
        ->type_name("S");
    add_choice(app, "--mode", opt.cfg.mode,
               {{"multiplicative", atman::manipulation_mode::multiplicative},
                {"log_additive", atman::manipulation_mode::log_additive}},
               "how suppression acts on attention scores");
    app.add_option("--factor", opt.cfg.factor, "attention factor of a suppressed unit (0 <= F; 1 = untouched)")
        ->check(real_number)
        ->type_name("F")
        ->capture_default_str();
    app.add_flag("--conceptual", opt.cfg.conceptual, "also suppress similar tokens (cosine neighbourhood)");
    app.add_option("--kappa", opt.cfg.kappa, "similarity threshold of --conceptual, in [-1, 1]")
        ->check(real_number)
        ->type_name("K")
        ->capture_default_str();
    add_choice(app, "--target-granularity", opt.targets,
               {{"complete", atman::target_granularity::complete}, {"token", atman::target_granularity::token}},
               "one explanation for the whole target, or one per target token");
    add_choice(app, "--postprocess", opt.cfg.post,
               {{"none", atman::postprocess::none}, {"absolute", atman::postprocess::absolute},
                {"square", atman::postprocess::square}},
               "transform of the raw scores");
    app.add_flag("--normalize", opt.cfg.normalize, "min-max normalise the scores to [0, 1]");
    app.add_option("--search", opt.search, "exhaustive: every unit; hierarchical: coarse levels first, "
                   "refining only the best units")
        ->check(CLI::IsMember({"exhaustive", "hierarchical"}))
        ->capture_default_str();
    app.add_option("--levels", opt.levels, "coarse levels of --search hierarchical, coarsest first")
        ->delimiter(',')
        ->transform(one_of(std::vector<std::pair<std::string, atman::granularity>>{
            {"paragraph", atman::granularity::paragraph}, {"sentence", atman::granularity::sentence},
            {"word", atman::granularity::word}}))
        ->type_name("L,L...")
        ->default_str("paragraph,sentence");
    const index_t no_bound = std::numeric_limits<index_t>::max();
    app.add_option("--refine-top-k", opt.refine.top_k, "units refined per level, best first (0 = all)")
        ->check(whole_number(0, no_bound, ">= 0 (0 = all)"))
        ->type_name("K")
        ->capture_default_str();
    add_choice(app, "--refine-rank", opt.refine.rank,
               {{"score", atman::refine_rank::score}, {"magnitude", atman::refine_rank::magnitude},
                {"per_unit", atman::refine_rank::per_unit}},
               "what ranks units for refinement: the score, its magnitude, or the score per finest unit");
    app.add_option("--refine-threshold", opt.refine.threshold, "refine only units whose rank value is at least this")
        ->check(real_number)
        ->type_name("S");
    app.add_option("--max-units", opt.refine.max_units, "perturbations over all levels (0 = no bound)")
        ->check(whole_number(0, no_bound, ">= 0 (0 = no bound)"))
        ->type_name("N")
        ->capture_default_str();
    app.add_option("--batch", opt.cfg.max_batch_rows, "perturbations per batch (0 = automatic)")
        ->check(whole_number(0, std::numeric_limits<index_t>::max(), ">= 0 (0 = automatic)"))
        ->type_name("N")
        ->capture_default_str();
    app.add_option("--threads", opt.threads, "threads (0 = all cores)")
        ->check(whole_number(0, max_threads, "from 0 to " + std::to_string(max_threads) + " (0 = all cores)"))
        ->type_name("N")
        ->capture_default_str();
    app.add_option("--format", opt.format, "output format")
        ->transform(one_of<std::string>({{"terminal", "terminal"}, {"json", "json"}, {"html", "html"}}))
        ->type_name("terminal|json|html")
        ->capture_default_str();
    add_text(app, "-o,--output", opt.output, "write the output to FILE instead of stdout")->type_name("FILE");
    add_text(app, "--html", opt.html_output, "also write an HTML heatmap to FILE")->type_name("FILE");
    app.add_flag("-q,--quiet", opt.quiet, "no progress or messages on stderr");
    app.footer(help_footer);
}

// Invalid UTF-8 named by the option it came in and the offset in its own text.
void check_utf8(const std::string& option, const std::string& text) {
    try {
        validate_utf8(text);
    } catch (const atman::invalid_argument& e) {
        throw usage_error(option + ": " + e.what());
    }
}

// Coarseness of the granularities --search hierarchical can nest; -1: none.
int coarseness(atman::granularity g) {
    switch (g) {
        case atman::granularity::token: return 0;
        case atman::granularity::word: return 1;
        case atman::granularity::sentence: return 2;
        case atman::granularity::paragraph: return 3;
        default: return -1;
    }
}

// The --search options CLI11 cannot check one by one (after check_combinations).
void check_search(const CLI::App& app, const cli_options& opt) {
    if (opt.search != "hierarchical") {
        for (const char* name : {"--levels", "--refine-top-k", "--refine-rank", "--refine-threshold", "--max-units"})
            if (app.count(name) > 0) throw usage_error(std::string(name) + " needs --search hierarchical");
        return;
    }
    if (coarseness(opt.granularity) < 0)
        throw usage_error(std::string("--search hierarchical needs --granularity token, word or sentence, not ") +
                          atman::to_string(opt.granularity));
    int finer = coarseness(opt.granularity);
    for (auto level = opt.levels.rbegin(); level != opt.levels.rend(); finer = coarseness(*level++)) {
        if (coarseness(*level) <= finer)
            throw usage_error("--levels must go from coarse to fine, each coarser than the next and than "
                              "--granularity " + std::string(atman::to_string(opt.granularity)) + "; got " +
                              atman::to_string(*level) + " above " +
                              (level == opt.levels.rbegin() ? atman::to_string(opt.granularity)
                                                            : atman::to_string(*(level - 1))));
    }
    if (opt.cfg.conceptual) throw usage_error("--search hierarchical cannot be used with --conceptual");
}

// What CLI11 cannot check option by option.
void check_combinations(cli_options& opt) {
    if (opt.prompt.empty() && opt.prompt_file.empty()) throw usage_error("give --prompt TEXT or --prompt-file FILE");
    if (!opt.delimiter.empty()) opt.granularity = atman::granularity::delimiter;
    if (opt.granularity == atman::granularity::delimiter && opt.delimiter.empty())
        throw usage_error("--granularity delimiter needs --delimiter S");
    if (!opt.contrast.empty() && opt.targets != atman::target_granularity::complete)
        throw usage_error("--contrast compares whole targets; it cannot be used with --target-granularity token");
    for (const auto& [option, text] : {std::pair<const char*, const std::string&>{"--prompt", opt.prompt},
                                       {"--system", opt.system},
                                       {"--target", opt.target},
                                       {"--contrast", opt.contrast},
                                       {"--delimiter", opt.delimiter}})
        check_utf8(option, text);
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

// The files the options name, in the order they are written.
std::vector<output_file> output_files(const cli_options& options) {
    std::vector<output_file> files;
    if (!options.output.empty()) files.push_back({"-o", options.output});
    if (!options.html_output.empty()) files.push_back({"--html", options.html_output});
    return files;
}

// The JSON "search" member: the strategy and, when hierarchical, its levels and budget.
std::string search_json(const cli_options& options) {
    nlohmann::json member = {{"strategy", options.search}};
    if (options.search == "hierarchical") {
        nlohmann::json levels = nlohmann::json::array();
        for (atman::granularity level : options.levels) levels.push_back(atman::to_string(level));
        levels.push_back(atman::to_string(options.granularity));
        member["levels"] = levels;
        member["top_k"] = options.refine.top_k;
        member["rank"] = atman::to_string(options.refine.rank);
        member["threshold"] = std::isfinite(options.refine.threshold) ? nlohmann::json(options.refine.threshold)
                                                                      : nlohmann::json(nullptr);
        member["max_units"] = options.refine.max_units;
    }
    return member.dump();
}
// A UTF-8 byte order mark: editors on some systems start text files with one.
constexpr std::string_view byte_order_mark = "\xEF\xBB\xBF";

}  // namespace

command_line parse_command_line(const cli_program& program, const std::vector<std::string>& args) {
    command_line result;
    result.options.program = program.name;
    CLI::App app{program.description, program.name};
    add_options(app, result.options);
    result.help = parse_arguments(app, args);
    if (result.help.empty()) {
        check_combinations(result.options);
        check_search(app, result.options);
    }
    return result;
}

int run_command_line(const cli_program& program, int argc, const char* const* argv,
                     const std::function<void(const cli_options&)>& body, bool report) {
    return run_program(
        program.name,
        [&] {
            const command_line parsed =
                parse_command_line(program, std::vector<std::string>(argv + std::min(argc, 1), argv + argc));
            if (!parsed.help.empty()) {
                if (report) write_stdout(parsed.help);
            } else {
                body(parsed.options);
            }
            return 0;
        },
        report);
}

std::string read_prompt(const cli_options& options) {
    std::string text = options.prompt;
    if (!options.prompt_file.empty()) {
        const bool from_stdin = options.prompt_file == "-";
        std::ifstream file;
        if (!from_stdin) file.open(options.prompt_file, std::ios::binary);
        std::istream& in = from_stdin ? std::cin : file;
        std::ostringstream contents;
        // An empty file fails the copy too: both say the file gave no prompt.
        if (!in || !(contents << in.rdbuf())) throw usage_error("cannot read --prompt-file " + options.prompt_file);
        text = contents.str();
        if (text.compare(0, byte_order_mark.size(), byte_order_mark) == 0) text.erase(0, byte_order_mark.size());
        check_utf8("--prompt-file " + options.prompt_file, text);
    }
    if (text.empty()) throw usage_error("the prompt is empty");
    return text;
}

void check_outputs(const cli_options& options) {
    if (options.output.empty()) require_open_stdout();
    check_output_files(output_files(options));
}

loaded_model::loaded_model(const cli_options& options)
    : path(announced_model_path(options)),
      file(gguf_file::open(path)),
      // The architecture first: another one's tokenizer would be refused with a message hiding it.
      tok((require_llama_architecture(file), file)),
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
                                     const text_codec& tok, const chat_format* tmpl,
                                     const generator& generate) {
    const prompt_tokens prompt = tokenize_prompt(tok, tmpl, user_prompt, options.system, options.sink == "bos");
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

atman::explanation run_search(const cli_options& options, const std::string& user_prompt,
                              const loaded_model& loaded, llama_engine& engine,
                              const atman::explain_request& request, const atman::explain_options& run_options) {
    if (options.search != "hierarchical") return atman::explain(engine, request, options.cfg, run_options);
    const prompt_tokens prompt =
        tokenize_prompt(loaded.tok, loaded.tmpl ? &*loaded.tmpl : nullptr, user_prompt, options.system,
                        options.sink == "bos");
    atman::hierarchical_options refine = options.refine;
    atman::unit_options units;
    units.range.bytes = prompt.user_ranges;  // as make_request's units
    for (atman::granularity level : options.levels) {
        units.by = level;
        refine.levels.push_back(atman::make_units(prompt.text, prompt.offsets, units));
    }
    return atman::explain_hierarchical(engine, request, options.cfg, refine, run_options);
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
        json.extra_members.push_back({"search", search_json(options)});
        text = atman::to_json(result, json) + "\n";
    } else if (options.format == "html") {
        text = atman::to_html(result, html);
    } else {
        atman::terminal_options terminal =
            options.output.empty() ? atman::terminal_options::for_stream(stdout) : atman::terminal_options{};
        terminal.targets = options.targets;
        text = atman::to_terminal(result, terminal);
    }
    staged_outputs outputs;
    const std::vector<output_file> files = output_files(options);
    for (const output_file& file : files)
        outputs.stage(file, file.option == "-o" ? text : atman::to_html(result, html));
    if (options.output.empty()) write_stdout(text);
    outputs.commit();
    if (!options.quiet) {
        std::cerr << options.program << ": " << result.units.size() << " units, " << result.stats.passes
                  << " passes, " << result.stats.token_forwards << " token-forwards (naive "
                  << result.stats.token_forwards_naive << "), " << result.stats.seconds << " s\n";
    }
}

}  // namespace atman::engine
