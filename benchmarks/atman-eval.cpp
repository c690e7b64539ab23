// atman-eval: how good are the explanations? The AtMan paper's text benchmark
// on SQuAD (docs/quality.md): for each question the model is given the context
// and the question in its chat template, the first ground-truth answer is
// teacher-forced as its reply, and every method scores the words of the
// context. The scores are compared with the answer's position (mAP, mAR and
// their interquartile means) and with the model itself (deletion: how much the
// answer's cross-entropy rises when the top-ranked words are suppressed).
// AtMan variants are compared with random, uniform and attention baselines
// over the same units in the same run. Output: JSON (atman.eval/1) or a table.
// Methods computed elsewhere (gradients in PyTorch) score the inputs written
// by --write-inputs and come back with --scores (eval/external_scores.hpp).

#include <atman/atman.hpp>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <optional>
#include <fstream>
#include <sstream>

#include <sys/resource.h>

#include "engine/chat_template.hpp"
#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "engine/model_path.hpp"
#include "engine/omp_policy.hpp"
#include "engine/program.hpp"
#include "engine/prompt.hpp"
#include "engine/tokenizer.hpp"
#include "eval/baselines.hpp"
#include "eval/deletion.hpp"
#include "eval/external_scores.hpp"
#include "eval/labels.hpp"
#include "eval/inputs.hpp"
#include "eval/metrics.hpp"
#include "eval/question.hpp"
#include "eval/question_inputs.hpp"
#include "eval/squad.hpp"

namespace {

namespace eng = atman::engine;
using atman::index_t;
using json = nlohmann::ordered_json;

// Deletion suppresses at this factor whatever the AtMan variants' --factor, so
// that changing --factor changes only the explanations being measured.
constexpr double deletion_factor = 0.1;
constexpr double conceptual_kappa = 0.7;
constexpr int deletion_percents[] = {10, 20, 50};
// Purposes of the per-question random streams (random.hpp).
constexpr std::uint64_t random_relevance_stream = 0, tie_order_stream = 1;

struct options {
    std::string model, data = "../shared/data/squad_public.jsonl", format = "json", methods;
    std::string write_inputs, scores;  // paths; empty: none
    bool raw = false;
    std::string sink = "bos";
    index_t limit = -1, offset = 0, batch = 0;
    int threads = 0;
    std::uint64_t seed = 0;
    double factor = 0.1;  // the AtMan variants'
    bool quiet = false;
};

using eng::usage_error;

enum class method_kind { atman, random, uniform, attention_last, attention_rollout, external };

struct method {
    std::string name;
    method_kind kind = method_kind::atman;
    atman::config cfg;  // AtMan only
    const atman::eval::external_method* external = nullptr;  // external only
};

const std::map<std::string, atman::eval::raw_sink> sink_names = {
    {"none", atman::eval::raw_sink::none}, {"bos", atman::eval::raw_sink::bos},
    {"unscored", atman::eval::raw_sink::unscored}};

// Every method the benchmark knows, in output order. AtMan variants, and only
// they, have names starting with "atman".
std::vector<method> known_methods(index_t batch, double factor) {
    std::vector<method> methods;
    for (atman::manipulation_mode mode :
         {atman::manipulation_mode::multiplicative, atman::manipulation_mode::log_additive}) {
        for (bool conceptual : {false, true}) {
            atman::config cfg;
            cfg.mode = mode;
            cfg.factor = factor;
            cfg.conceptual = conceptual;
            cfg.kappa = conceptual_kappa;
            cfg.max_batch_rows = batch;
            methods.push_back({std::string("atman-") + atman::to_string(mode) + (conceptual ? "-conceptual" : ""),
                               method_kind::atman, cfg});
        }
    }
    methods.push_back({"random", method_kind::random, {}});
    methods.push_back({"uniform", method_kind::uniform, {}});
    methods.push_back({"attention-last", method_kind::attention_last, {}});
    methods.push_back({"attention-rollout", method_kind::attention_rollout, {}});
    return methods;
}

// The methods named in a comma-separated list (empty: all), in output order.
std::vector<method> select_methods(const std::string& list, index_t batch, double factor) {
    std::vector<method> known = known_methods(batch, factor);
    if (list.empty()) return known;
    std::vector<std::string> names;
    std::stringstream in(list);
    for (std::string name; std::getline(in, name, ',');) {
        const auto found = std::find_if(known.begin(), known.end(), [&](const method& m) { return m.name == name; });
        if (found == known.end()) {
            std::string all;
            for (const method& m : known) all += (all.empty() ? "" : ", ") + m.name;
            throw usage_error("--methods: unknown method \"" + name + "\" (known: " + all + ")");
        }
        names.push_back(name);
    }
    std::vector<method> selected;
    for (const method& m : known)
        if (std::find(names.begin(), names.end(), m.name) != names.end()) selected.push_back(m);
    return selected;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

double cpu_seconds_since(std::clock_t start) {
    return double(std::clock() - start) / CLOCKS_PER_SEC;
}

// The relevance of each unit of q by method m.
std::vector<double> relevance(const method& m, eng::llama_engine& engine, const atman::eval::prepared_question& q,
                              const atman::teacher_forced_sequence& seq, index_t line, const options& opt,
                              const atman::eval::external_scores& external) {
    const index_t n_units = index_t(q.request.units.size());
    switch (m.kind) {
        case method_kind::external:
            return external.at(*m.external, line, q.request.units.size(), opt.scores).relevance;
        case method_kind::atman: {
            const atman::explanation e = atman::explain(engine, q.request, m.cfg);
            std::vector<double> scores;
            for (const atman::unit_score& s : e.units) scores.push_back(s.score);
            return scores;
        }
        case method_kind::random: {
            atman::eval::splitmix64 rng = atman::eval::sample_generator(opt.seed, line, random_relevance_stream);
            return atman::eval::random_relevance(n_units, rng);
        }
        case method_kind::uniform:
            return atman::eval::uniform_relevance(n_units);
        case method_kind::attention_last:
            return atman::eval::attention_last_relevance(engine.attention_maps(seq.tokens), q.request.units,
                                                         seq.first_scored());
        case method_kind::attention_rollout:
            return atman::eval::attention_rollout_relevance(engine.attention_maps(seq.tokens), q.request.units,
                                                            seq.first_scored());
    }
    throw atman::error("unknown method kind");
}

// The rise of the target's CE (summed over its tokens) when the top k% of the
// units in `order` are deleted together, one value per deletion_percents.
// Requires the base pass of seq on engine.
std::vector<double> deletion_rises(eng::llama_engine& engine, const atman::teacher_forced_sequence& seq,
                                   double base_ce, const std::vector<atman::unit>& units,
                                   const std::vector<index_t>& order) {
    const index_t length = seq.length(), m = index_t(seq.targets.size());
    std::vector<atman::perturbation> deletions;
    for (int percent : deletion_percents) {
        const index_t count = atman::eval::deleted_count(index_t(units.size()), percent);
        deletions.push_back(
            atman::eval::deletion_perturbation(units, order, count, length, float(deletion_factor)));
    }
    atman::batch_rows rows;
    rows.assign(deletions, 0, index_t(deletions.size()), length, atman::manipulation_mode::multiplicative);
    std::vector<double> ce(std::size_t(rows.size() * m));
    engine.perturbed_pass(seq.view(), rows.view(), ce.data());
    std::vector<double> rises(deletions.size(), 0.0);  // a deletion without a row changes nothing
    for (index_t r = 0; r < rows.size(); ++r) {
        double sum = 0;
        for (index_t t = 0; t < m; ++t) sum += ce[std::size_t(r * m + t)];
        rises[std::size_t(rows.plan_index(r))] = sum - base_ce;
    }
    return rises;
}

struct method_results {
    std::vector<index_t> lines;  // of the evaluated questions, in the order of ap, ar and deletion
    std::vector<double> ap, ar;
    std::vector<std::vector<double>> deletion = std::vector<std::vector<double>>(std::size(deletion_percents));
    // Wall time, and process CPU time (all threads): the latter estimates the
    // time on an idle machine when others share the cores.
    double seconds = 0, cpu_seconds = 0, deletion_seconds = 0;
};

json protocol_json(const options& opt) {
    std::string percents;
    for (int p : deletion_percents) percents += (percents.empty() ? "" : ", ") + std::to_string(p);
    const std::string prompt =
        opt.raw ? "raw (no template): the context, a blank line, 'Question: <question>', a new line, 'Answer:'; "
                  "the target is a space and the first answer's text; first position: sink '" + opt.sink + "'"
                : "the model's chat template with one user message: the context, a blank line, "
                  "'Question: <question>'; the target is the first answer's text as the assistant's reply";
    return {
        {"prompt", prompt},
        {"units", "the words of the context (white-space separated; question and template are not units)"},
        {"labels", "a unit is 1 if its byte range overlaps the byte range of any answer "
                   "(answer_start in code points converted to bytes)"},
        {"relevance", "atman: rise of the target's CE summed over its tokens when the unit is suppressed "
                      "(signed); the metrics use |x|; an all-zero relevance counts as uniform"},
        {"AP", "sum(|x| y) / sum(|x|)"},
        {"AR", "sum(|x| / max|x| * y) / sum(y)"},
        {"IQ", "mean over the samples with q25 <= v <= q75 of that metric, where for the sorted values "
               "v_0..v_{n-1}: q25 = v_floor((n-1)/4), q75 = v_ceil(3(n-1)/4)"},
        {"factor", opt.factor},
        {"kappa", conceptual_kappa},
        {"deletion", "the top k% units (k = " + percents + "; ceil(k n / 100), at least 1) by decreasing signed "
                     "relevance, ties in a seeded random order, suppressed together in one pass at factor " +
                         atman::detail::short_number(deletion_factor) +
                         " in multiplicative mode; the value is the mean over samples of the rise of the "
                         "target's CE summed over its tokens"},
        {"seed", opt.seed},
        {"offset", opt.offset},
        {"limit", opt.limit},
    };
}

// statistic(values), or null when there are no values.
template <class Statistic>
json metric(const std::vector<double>& values, Statistic statistic) {
    return values.empty() ? json(nullptr) : json(statistic(values));
}

json method_json(const method& m, const method_results& r) {
    json deletion = json::object();
    for (std::size_t k = 0; k < r.deletion.size(); ++k)
        deletion[std::to_string(deletion_percents[k])] = metric(r.deletion[k], atman::eval::mean);
    json questions = json::object();  // per question, for paired comparisons between methods
    for (std::size_t q = 0; q < r.lines.size(); ++q) {
        json rises = json::object();
        for (std::size_t k = 0; k < r.deletion.size(); ++k) rises[std::to_string(deletion_percents[k])] = r.deletion[k][q];
        questions[std::to_string(r.lines[q])] = {{"AP", r.ap[q]}, {"AR", r.ar[q]}, {"deletion", rises}};
    }
    return {{"mAP", metric(r.ap, atman::eval::mean)},
            {"mAR", metric(r.ar, atman::eval::mean)},
            {"mAP_IQ", metric(r.ap, atman::eval::interquartile_mean)},
            {"mAR_IQ", metric(r.ar, atman::eval::interquartile_mean)},
            {"deletion", deletion},
            {"seconds", r.seconds},
            {"cpu_seconds", r.cpu_seconds},
            {"deletion_seconds", r.deletion_seconds},
            {"notes", m.external ? m.external->notes : json(nullptr)},
            {"questions", questions}};
}

long long peak_rss_bytes() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    return static_cast<long long>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

// The questions' inputs for external methods, one JSON line per evaluated question.
void write_inputs(const options& opt, const std::vector<atman::eval::numbered_question>& questions,
                  const eng::tokenizer& tok, atman::eval::prompt_style style) {
    std::ofstream out(opt.write_inputs);
    if (!out) throw atman::error("--write-inputs: cannot write " + opt.write_inputs);
    index_t written = 0;
    for (const atman::eval::numbered_question& nq : questions) {
        const atman::eval::prepared_question q = atman::eval::prepare(nq.question, tok, style);
        if (!q.skip_reason.empty()) continue;
        out << atman::eval::question_inputs(nq, q).dump() << "\n";
        ++written;
    }
    out.flush();
    if (!out) throw atman::error("--write-inputs: writing " + opt.write_inputs + " failed");
    if (!opt.quiet) std::cerr << "atman-eval: wrote the inputs of " << written << " questions to " << opt.write_inputs << "\n";
}

std::string table(const json& result) {
    std::ostringstream out;
    out << "atman-eval: " << result["dataset"].get<std::string>() << ", " << result["n"] << " questions ("
        << result["skipped"] << " skipped), model " << result["model"].get<std::string>() << "\n";
    out << std::left << std::setw(32) << "method" << std::right;
    for (const char* column : {"mAP", "mAR", "mAP_IQ", "mAR_IQ"}) out << std::setw(8) << column;
    for (int p : deletion_percents) out << std::setw(8) << ("del" + std::to_string(p));
    out << std::setw(10) << "seconds" << std::setw(10) << "cpu_s" << "\n";
    const auto cell = [&](const json& value, int width) {
        if (value.is_null()) {
            out << std::setw(width) << "-";
        } else {
            out << std::setw(width) << std::fixed << std::setprecision(3) << value.get<double>();
        }
    };
    for (const auto& [name, m] : result["methods"].items()) {
        out << std::left << std::setw(32) << name << std::right;
        for (const char* column : {"mAP", "mAR", "mAP_IQ", "mAR_IQ"}) cell(m[column], 8);
        for (int p : deletion_percents) cell(m["deletion"][std::to_string(p)], 8);
        out << std::setw(10) << std::setprecision(1) << m["seconds"].get<double>() << std::setw(10)
            << m["cpu_seconds"].get<double>() << "\n";
    }
    return out.str();
}

int run(const options& opt) {
    eng::apply_threads(opt.threads);
    std::vector<method> methods = select_methods(opt.methods, opt.batch, opt.factor);
    const std::vector<method> known = known_methods(0, opt.factor);
    const auto reserved = [&](const std::string& name) {
        return std::any_of(known.begin(), known.end(), [&](const method& m) { return m.name == name; });
    };
    const atman::eval::external_scores external =
        opt.scores.empty() ? atman::eval::external_scores{} : atman::eval::read_external_scores(opt.scores, reserved);
    for (const atman::eval::external_method& m : external.methods)
        methods.push_back({m.name, method_kind::external, {}, &m});
    const std::vector<atman::eval::numbered_question> questions =
        atman::eval::read_squad(opt.data, opt.offset, opt.limit);
    const atman::eval::eval_model loaded("atman-eval", opt.model, opt.quiet);
    const std::string model_name = std::filesystem::path(loaded.path).filename().string();
    if (!opt.scores.empty() && external.model != model_name)
        throw atman::invalid_argument(opt.scores + ": the scores are of model " + external.model + ", this run loads " +
                                      model_name);
    const eng::tokenizer& tok = loaded.tok;
    const atman::eval::prompt_style style{opt.raw ? nullptr : &loaded.tmpl, sink_names.at(opt.sink)};
    if (!opt.write_inputs.empty()) {
        write_inputs(opt, questions, tok, style);
        return 0;
    }
    eng::llama_engine engine(loaded.model);

    std::vector<method_results> results(methods.size());
    std::map<std::string, index_t> skipped;
    index_t evaluated = 0, n_skipped = 0;
    for (std::size_t i = 0; i < questions.size(); ++i) {
        const auto started = std::chrono::steady_clock::now();
        const atman::eval::numbered_question& nq = questions[i];
        const atman::eval::prepared_question q = atman::eval::prepare(nq.question, tok, style);
        if (!q.skip_reason.empty()) {
            ++skipped[q.skip_reason];
            ++n_skipped;
            if (!opt.quiet)
                std::cerr << "atman-eval: [" << i + 1 << "/" << questions.size() << "] question " << nq.line
                          << " (" << nq.question.id << ") skipped: " << q.skip_reason << "\n";
            continue;
        }
        const atman::teacher_forced_sequence seq(q.request.prompt_tokens, q.request.target_tokens);
        std::vector<std::vector<double>> relevances;
        for (std::size_t k = 0; k < methods.size(); ++k) {
            const auto method_started = std::chrono::steady_clock::now();
            const std::clock_t method_cpu_started = std::clock();
            relevances.push_back(relevance(methods[k], engine, q, seq, nq.line, opt, external));
            if (methods[k].external) {  // the time it took where it was computed
                const atman::eval::external_question_scores& e =
                    external.at(*methods[k].external, nq.line, q.request.units.size(), opt.scores);
                results[k].seconds += e.seconds;
                results[k].cpu_seconds += e.cpu_seconds;
            } else {
                results[k].seconds += seconds_since(method_started);
                results[k].cpu_seconds += cpu_seconds_since(method_cpu_started);
            }
            results[k].lines.push_back(nq.line);
            results[k].ap.push_back(atman::eval::average_precision(relevances[k], q.labels));
            results[k].ar.push_back(atman::eval::average_recall(relevances[k], q.labels));
        }

        std::vector<double> base(seq.targets.size());
        engine.base_pass(seq.view(), base.data());
        double base_ce = 0;
        for (double ce : base) base_ce += ce;
        atman::eval::splitmix64 ties = atman::eval::sample_generator(opt.seed, nq.line, tie_order_stream);
        const std::vector<index_t> tie_order = atman::eval::random_permutation(index_t(q.labels.size()), ties);
        for (std::size_t k = 0; k < methods.size(); ++k) {
            const auto deletion_started = std::chrono::steady_clock::now();
            const std::vector<double> rises = deletion_rises(engine, seq, base_ce, q.request.units,
                                                             atman::eval::ranking(relevances[k], tie_order));
            results[k].deletion_seconds += seconds_since(deletion_started);
            for (std::size_t p = 0; p < rises.size(); ++p) results[k].deletion[p].push_back(rises[p]);
        }
        ++evaluated;
        if (!opt.quiet)
            std::cerr << "atman-eval: [" << i + 1 << "/" << questions.size() << "] question " << nq.line << " ("
                      << nq.question.id << "): " << q.request.units.size() << " units, " << seq.length()
                      << " tokens, " << std::fixed << std::setprecision(1) << seconds_since(started) << " s\n";
    }

    json result = {{"schema", "atman.eval/1"},
                   {"dataset", opt.data},
                   {"n", evaluated},
                   {"skipped", n_skipped},
                   {"skipped_by_reason", skipped},
                   {"model", model_name},
                   {"protocol", protocol_json(opt)},
                   {"peak_rss_bytes", peak_rss_bytes()},
                   {"methods", json::object()}};
    for (std::size_t k = 0; k < methods.size(); ++k)
        result["methods"][methods[k].name] = method_json(methods[k], results[k]);
    std::cout << (opt.format == "table" ? table(result) : result.dump(2) + "\n") << std::flush;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    atman::engine::restart_with_passive_omp_wait("atman-eval", argv);
    options opt;
    CLI::App app{"atman-eval: explanation quality on SQuAD (mAP, mAR, their interquartile means, deletion)\n"
                 "for AtMan variants and baselines over the words of each context (docs/quality.md)."};
    atman::eval::add_input_options(app, opt.model, opt.data, opt.limit, opt.offset, opt.threads);
    std::string all;
    for (const method& m : known_methods(0, opt.factor)) all += (all.empty() ? "" : ",") + m.name;
    app.add_option("--methods", opt.methods, "comma-separated methods (default: all: " + all + ")");
    app.add_option("--batch", opt.batch, "AtMan perturbations per batch (0 = automatic)")
        ->check(CLI::NonNegativeNumber)->capture_default_str();
    app.add_option("--factor", opt.factor, "the AtMan variants' suppression factor (deletion always uses 0.1)")
        ->check(CLI::Range(0.0, 1.0))->capture_default_str();
    app.add_option("--seed", opt.seed, "seed of the random baseline and of tie-breaking")->capture_default_str();
    app.add_option("--format", opt.format, "output format")->check(CLI::IsMember({"json", "table"}))->capture_default_str();
    CLI::Option* raw = app.add_flag("--raw", opt.raw, "raw prompts, without the chat template (context, question, 'Answer:')");
    app.add_option("--sink", opt.sink,
                   "raw prompts' first position, the attention sink: bos (BOS first when the tokenizer adds "
                   "none), none (as tokenised), unscored (never suppressed)")
        ->check(CLI::IsMember({"bos", "none", "unscored"}))->needs(raw)->capture_default_str();
    app.add_option("--write-inputs", opt.write_inputs,
                   "write each evaluated question's tokens, units and labels (JSON Lines) to this file and exit");
    app.add_option("--scores", opt.scores, "external methods' relevance (atman.eval-scores/1) to evaluate too");
    app.add_flag("-q,--quiet", opt.quiet, "no progress on stderr");
    return eng::run_program("atman-eval", app, argc, argv, [&] { return run(opt); });
}
