// atman-long: the coarse-to-fine search against exhaustive word-level AtMan on
// long documents (docs/hierarchical.md), in the same run on the same engine.
// Each document (SQuAD JSON Lines from scripts/make-long-docs) is turned into
// atman-eval's request (eval/question.hpp), explained exhaustively once, then
// hierarchically once per --top-k value. Reported per document and summed:
// token-forwards and wall time of each (and their ratios), units measured,
// and agreement with the exhaustive scores: the top-10 word overlap, Spearman
// over the words the search measured and over all words (shares included),
// each method's AP against the answer (docs/quality.md), the rank of the
// answer word in each method's scores, and whether the search measured it.

#include <atman/atman.hpp>

#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <nlohmann/json.hpp>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <limits>
#include <map>
#include <sstream>

#include "engine/chat_template.hpp"
#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "engine/model_path.hpp"
#include "engine/omp_policy.hpp"
#include "engine/program.hpp"
#include "engine/tokenizer.hpp"
#include "eval/agreement.hpp"
#include "eval/external_scores.hpp"
#include "eval/metrics.hpp"
#include "eval/inputs.hpp"
#include "eval/question.hpp"
#include "eval/squad.hpp"

namespace {

namespace eng = atman::engine;
using atman::index_t;
using json = nlohmann::ordered_json;

constexpr index_t overlap_k = 10;  // also the answer_top10 cut-off
// The method name of the exhaustive scores in --write-exhaustive's file
// (atman.eval-scores/1, so atman-eval --scores can evaluate them too).
const std::string exhaustive_method = "atman-exhaustive";

struct options {
    std::string model, data = "build/long-docs/long-1000.jsonl", format = "table";
    index_t limit = -1, offset = 0, max_units = 0;
    std::vector<index_t> top_k = {atman::hierarchical_options{}.top_k};
    std::vector<atman::refine_rank> ranks = {atman::refine_rank::score};
    std::string exhaustive_scores, write_exhaustive;  // paths; empty: none
    std::vector<atman::granularity> levels = {atman::granularity::paragraph, atman::granularity::sentence};
    int threads = 0;
    bool quiet = false, count_exhaustive = false;
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

std::vector<double> scores_of(const atman::explanation& e) {
    std::vector<double> scores;
    for (const atman::unit_score& s : e.units) scores.push_back(s.score);
    return scores;
}

json number_or_null(double x) { return std::isfinite(x) ? json(x) : json(nullptr); }

// One hierarchical run against the exhaustive explanation of the same request.
json compare(const atman::explanation& exhaustive, double exhaustive_seconds, const atman::explanation& found,
             double seconds, const std::vector<int>& labels) {
    const std::vector<double> approx = scores_of(found);
    json r = {{"token_forwards", found.stats.token_forwards},
              {"seconds", seconds},
              {"units_measured", found.stats.units_measured},
              {"token_forwards_ratio", double(exhaustive.stats.token_forwards) / double(found.stats.token_forwards)},
              {"AP", atman::eval::average_precision(approx, labels)},
              {"answer_rank", atman::eval::answer_rank(approx, labels)}};
    bool answer_measured = false;
    for (std::size_t u = 0; u < found.units.size(); ++u) answer_measured |= labels[u] == 1 && found.units[u].measured;
    r["answer_measured"] = answer_measured;
    if (exhaustive.units.empty()) return r;  // counted, not run
    const std::vector<double> exact = scores_of(exhaustive);
    std::vector<double> exact_measured, approx_measured;
    for (std::size_t u = 0; u < found.units.size(); ++u) {
        if (!found.units[u].measured) continue;
        exact_measured.push_back(exact[u]);
        approx_measured.push_back(approx[u]);
    }
    r["words_measured"] = index_t(exact_measured.size());
    r["seconds_ratio"] = exhaustive_seconds / seconds;
    r["top10_overlap"] = atman::eval::top_k_overlap(exact, approx, overlap_k);
    r["spearman_measured"] = exact_measured.size() >= 2
                                 ? number_or_null(atman::eval::spearman(exact_measured, approx_measured))
                                 : json(nullptr);
    r["spearman_all"] = number_or_null(atman::eval::spearman(exact, approx));
    return r;
}

std::string table(const json& result) {
    std::ostringstream out;
    out << std::fixed;
    out << "atman-long: " << result["dataset"].get<std::string>() << ", " << result["n"] << " documents, model "
        << result["model"].get<std::string>() << "\n";
    const json& ex = result["exhaustive"];
    const std::string source = ex["source"];
    out << "exhaustive" << (source == "run" ? "" : " (" + source + ")") << ": "
        << std::setprecision(1) << ex["tokens_mean"].get<double>() << " tokens and " << ex["units_mean"].get<double>()
        << " words per document (mean), " << ex["token_forwards"] << " token-forwards";
    if (!ex["mAP"].is_null())
        out << ", " << ex["seconds"].get<double>() << " s, mAP " << std::setprecision(3) << ex["mAP"].get<double>()
            << ", answer in the top 10 " << ex["answer_top10"].get<double>();
    out << "\n";
    out << std::setw(8) << "top_k" << std::setw(11) << "rank" << std::setw(16) << "token-fwd" << std::setw(10)
        << "x fewer" << std::setw(10)
        << "seconds" << std::setw(10) << "x faster" << std::setw(10) << "units" << std::setw(10) << "top10"
        << std::setw(10) << "rho_meas" << std::setw(10) << "rho_all" << std::setw(8) << "mAP" << std::setw(8)
        << "ans@10" << std::setw(10) << "ans_meas" << "\n";
    const auto cell = [&](const json& value, int width) {
        if (value.is_null()) {
            out << std::setw(width) << "-";
        } else {
            out << std::setw(width) << value.get<double>();
        }
    };
    for (const json& h : result["hierarchical"]) {
        out << std::setw(8) << h["top_k"].get<index_t>() << std::setw(11) << h["rank"].get<std::string>()
            << std::setw(16) << h["token_forwards"].get<index_t>()
            << std::setprecision(1) << std::setw(10) << h["token_forwards_ratio"].get<double>() << std::setw(10)
            << h["seconds"].get<double>();
        cell(h["seconds_ratio"], 10);
        out << std::setw(10) << h["units_measured_mean"].get<double>() << std::setprecision(3);
        for (const char* column : {"top10_overlap", "spearman_measured", "spearman_all"}) cell(h[column], 10);
        cell(h["mAP"], 8);
        cell(h["answer_top10"], 8);
        cell(h["answer_measured"], 10);
        out << "\n";
    }
    return out.str();
}

// The mean of the numbers of member `key` over the runs that have one, or null.
json mean_of(const std::vector<json>& runs, const char* key) {
    std::vector<double> values;
    for (const json& r : runs)
        if (r.contains(key) && !r[key].is_null()) values.push_back(r[key].get<double>());
    return values.empty() ? json(nullptr) : json(atman::eval::mean(values));
}

// The share of answer ranks 1..overlap_k, or null without ranks.
json share_in_top(const std::vector<index_t>& answer_ranks) {
    if (answer_ranks.empty()) return nullptr;
    const auto in_top = std::count_if(answer_ranks.begin(), answer_ranks.end(),
                                      [](index_t r) { return r >= 1 && r <= overlap_k; });
    return double(in_top) / double(answer_ranks.size());
}

// The hierarchical settings of one run: a top_k and a rank.
struct search_setting {
    index_t top_k;
    atman::refine_rank rank;
};

std::vector<search_setting> settings_of(const options& opt) {
    std::vector<search_setting> settings;
    for (atman::refine_rank rank : opt.ranks)
        for (index_t k : opt.top_k) settings.push_back({k, rank});
    return settings;
}

// The exhaustive scores of --exhaustive-scores: the file's method atman-exhaustive.
const atman::eval::external_method* stored_method(const atman::eval::external_scores& stored,
                                                  const std::string& path, const std::string& model_name) {
    if (path.empty()) return nullptr;
    if (stored.model != model_name)
        throw atman::invalid_argument(path + ": the scores are of model " + stored.model + ", this run loads " +
                                      model_name);
    for (const atman::eval::external_method& m : stored.methods)
        if (m.name == exhaustive_method) return &m;
    throw atman::invalid_argument(path + ": no method \"" + exhaustive_method + "\"");
}

// Writes the exhaustive scores so far (--write-exhaustive), after every
// document: a run stopped part way keeps what it has measured.
void write_exhaustive(const options& opt, const std::string& model_name, const json& written) {
    std::ofstream out(opt.write_exhaustive);
    out << json{{"schema", "atman.eval-scores/1"},
                {"model", model_name},
                {"methods", {{exhaustive_method, {{"questions", written},
                                                  {"notes", {{"data", opt.data},
                                                             {"config", "multiplicative, factor 0.1, words"}}}}}}}}
               .dump()
        << "\n";
    if (!out) throw atman::error("--write-exhaustive: writing " + opt.write_exhaustive + " failed");
}

int run(const options& opt) {
    eng::apply_threads(opt.threads);
    const std::vector<atman::eval::numbered_question> questions =
        atman::eval::read_squad(opt.data, opt.offset, opt.limit);
    const atman::eval::eval_model loaded("atman-long", opt.model, opt.quiet);
    const std::string model_name = std::filesystem::path(loaded.path).filename().string();
    const atman::eval::external_scores stored =
        opt.exhaustive_scores.empty()
            ? atman::eval::external_scores{}
            : atman::eval::read_external_scores(opt.exhaustive_scores, [](const std::string&) { return false; });
    const atman::eval::external_method* stored_scores = stored_method(stored, opt.exhaustive_scores, model_name);
    const std::string source = opt.count_exhaustive ? "counted from its plan, not run"
                               : stored_scores      ? "read from " + opt.exhaustive_scores
                                                    : "run";
    const eng::tokenizer& tok = loaded.tok;
    const eng::chat_template& tmpl = loaded.tmpl;
    eng::llama_engine engine(loaded.model);
    const atman::config cfg;  // the defaults: multiplicative, factor 0.1, words
    const std::vector<search_setting> settings = settings_of(opt);

    json documents = json::array(), written = json::object();
    std::vector<std::vector<json>> runs(settings.size());
    std::vector<double> exhaustive_ap, tokens, units;
    std::vector<index_t> exhaustive_answer_rank;
    index_t exhaustive_forwards = 0;
    double exhaustive_seconds = 0;
    for (const atman::eval::numbered_question& nq : questions) {
        const atman::eval::prepared_question q = atman::eval::prepare(nq.question, tok, {&tmpl});
        if (!q.skip_reason.empty()) {
            if (!opt.quiet) std::cerr << "atman-long: " << nq.question.id << " skipped: " << q.skip_reason << "\n";
            continue;
        }
        atman::hierarchical_options refine;
        refine.max_units = opt.max_units;
        for (atman::granularity level : opt.levels) {
            atman::unit_options units_of_level = q.units;
            units_of_level.by = level;
            refine.levels.push_back(atman::make_units(q.prompt.text, q.prompt.offsets, units_of_level));
        }
        const index_t length = index_t(q.request.prompt_tokens.size() + q.request.target_tokens.size()) - 1;
        auto started = std::chrono::steady_clock::now();
        const std::clock_t cpu_started = std::clock();
        atman::explanation exhaustive;
        double seconds = 0;
        if (opt.count_exhaustive || stored_scores) {  // what explain() would run: one base pass and its plan's rows
            exhaustive.stats.token_forwards = length + atman::plan_explanation(engine, q.request, cfg).token_rows();
        }
        if (stored_scores) {
            const atman::eval::external_question_scores& s =
                stored.at(*stored_scores, nq.line, q.request.units.size(), opt.exhaustive_scores);
            for (double score : s.relevance) {
                atman::unit_score u;
                u.score = score;
                exhaustive.units.push_back(u);
            }
            seconds = s.seconds;
        } else if (!opt.count_exhaustive) {
            exhaustive = atman::explain(engine, q.request, cfg);
            seconds = seconds_since(started);
            if (!opt.write_exhaustive.empty()) {
                written[std::to_string(nq.line)] = {
                    {"relevance", scores_of(exhaustive)},
                    {"seconds", seconds},
                    {"cpu_seconds", double(std::clock() - cpu_started) / CLOCKS_PER_SEC}};
                write_exhaustive(opt, model_name, written);
            }
        }
        if (!opt.count_exhaustive) {
            const std::vector<double> exact = scores_of(exhaustive);
            exhaustive_ap.push_back(atman::eval::average_precision(exact, q.labels));
            exhaustive_answer_rank.push_back(atman::eval::answer_rank(exact, q.labels));
        }
        if (!opt.quiet)
            std::cerr << "atman-long: " << nq.question.id << ": " << length << " tokens, " << q.request.units.size()
                      << " words, exhaustive " << exhaustive.stats.token_forwards << " token-forwards"
                      << (opt.count_exhaustive ? " (counted)"
                                               : ", " + std::to_string(seconds) + " s, AP " +
                                                     std::to_string(exhaustive_ap.back()))
                      << "\n";
        exhaustive_forwards += exhaustive.stats.token_forwards;
        exhaustive_seconds += seconds;
        tokens.push_back(double(length));
        units.push_back(double(q.request.units.size()));
        json doc = {{"id", nq.question.id},
                    {"line", nq.line},
                    {"tokens", length},
                    {"words", q.request.units.size()},
                    {"exhaustive", {{"token_forwards", exhaustive.stats.token_forwards},
                                    {"source", source},
                                    {"seconds", opt.count_exhaustive ? json(nullptr) : json(seconds)},
                                    {"AP", opt.count_exhaustive ? json(nullptr) : json(exhaustive_ap.back())},
                                    {"answer_rank", opt.count_exhaustive ? json(nullptr)
                                                                         : json(exhaustive_answer_rank.back())}}},
                    {"hierarchical", json::array()}};
        for (std::size_t k = 0; k < settings.size(); ++k) {
            refine.top_k = settings[k].top_k;
            refine.rank = settings[k].rank;
            started = std::chrono::steady_clock::now();
            const atman::explanation found = atman::explain_hierarchical(engine, q.request, cfg, refine);
            json r = compare(exhaustive, seconds, found, seconds_since(started), q.labels);
            r["top_k"] = settings[k].top_k;
            r["rank"] = atman::to_string(settings[k].rank);
            if (!opt.quiet) std::cerr << "atman-long:   " << r.dump() << "\n";
            runs[k].push_back(r);
            doc["hierarchical"].push_back(r);
        }
        documents.push_back(doc);
    }
    atman::detail::require(!documents.empty(), "no document of " + opt.data + " could be explained");
    json summary = json::array();
    for (std::size_t k = 0; k < settings.size(); ++k) {
        index_t forwards = 0, answer_measured = 0;
        double seconds = 0;
        std::vector<index_t> answer_ranks;
        for (const json& r : runs[k]) {
            forwards += r["token_forwards"].get<index_t>();
            seconds += r["seconds"].get<double>();
            answer_ranks.push_back(r["answer_rank"].get<index_t>());
            answer_measured += r["answer_measured"].get<bool>() ? 1 : 0;
        }
        summary.push_back({{"top_k", settings[k].top_k},
                           {"rank", atman::to_string(settings[k].rank)},
                           {"token_forwards", forwards},
                           {"seconds", seconds},
                           {"token_forwards_ratio", double(exhaustive_forwards) / double(forwards)},
                           {"seconds_ratio", opt.count_exhaustive ? json(nullptr) : json(exhaustive_seconds / seconds)},
                           {"units_measured_mean", mean_of(runs[k], "units_measured")},
                           {"top10_overlap", mean_of(runs[k], "top10_overlap")},
                           {"spearman_measured", mean_of(runs[k], "spearman_measured")},
                           {"spearman_all", mean_of(runs[k], "spearman_all")},
                           {"mAP", mean_of(runs[k], "AP")},
                           {"answer_top10", share_in_top(answer_ranks)},
                           {"answer_measured", double(answer_measured) / double(runs[k].size())}});
    }
    json levels = json::array();
    for (atman::granularity level : opt.levels) levels.push_back(atman::to_string(level));
    const json result = {
        {"schema", "atman.long/1"},
        {"dataset", opt.data},
        {"model", model_name},
        {"n", documents.size()},
        {"levels", levels},
        {"max_units", opt.max_units},
        {"threads", opt.threads},
        {"exhaustive", {{"token_forwards", exhaustive_forwards},
                        {"source", source},
                        {"seconds", opt.count_exhaustive ? json(nullptr) : json(exhaustive_seconds)},
                        {"tokens_mean", atman::eval::mean(tokens)},
                        {"units_mean", atman::eval::mean(units)},
                        {"mAP", exhaustive_ap.empty() ? json(nullptr) : json(atman::eval::mean(exhaustive_ap))},
                        {"answer_top10", share_in_top(exhaustive_answer_rank)}}},
        {"hierarchical", summary},
        {"documents", documents}};
    if (opt.format == "json") {
        std::cout << result.dump(2) << std::endl;
    } else {
        std::cout << table(result) << std::flush;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    atman::engine::restart_with_passive_omp_wait("atman-long", argv);
    options opt;
    CLI::App app{"atman-long: coarse-to-fine AtMan against exhaustive word-level AtMan on long documents\n"
                 "(docs/hierarchical.md): cost, wall time and agreement, in one run."};
    atman::eval::add_input_options(app, opt.model, opt.data, opt.limit, opt.offset,  // from scripts/make-long-docs
                                   opt.threads);
    app.add_option("--top-k", opt.top_k, "comma-separated refinement top-k values, one run each (0 = all)")
        ->delimiter(',')
        ->check(atman::engine::whole_number(0, std::numeric_limits<index_t>::max(), ">= 0 (0 = all)"))
        ->default_str(std::to_string(atman::hierarchical_options{}.top_k));
    app.add_option("--levels", opt.levels, "coarse levels, coarsest first")
        ->delimiter(',')
        ->transform(CLI::CheckedTransformer(std::map<std::string, atman::granularity>{
            {"paragraph", atman::granularity::paragraph}, {"sentence", atman::granularity::sentence}},
            CLI::ignore_case))
        ->default_str("paragraph,sentence");
    app.add_option("--rank", opt.ranks, "comma-separated refinement ranks, each run with every --top-k: score, "
                                        "magnitude (|score|), per_unit (score per word)")
        ->delimiter(',')
        ->transform(CLI::CheckedTransformer(std::map<std::string, atman::refine_rank>{
            {"score", atman::refine_rank::score}, {"magnitude", atman::refine_rank::magnitude},
            {"per_unit", atman::refine_rank::per_unit}}))
        ->default_str("score");
    app.add_option("--max-units", opt.max_units, "perturbations over all levels (0 = no bound)")
        ->check(atman::engine::whole_number(0, std::numeric_limits<index_t>::max(), ">= 0 (0 = no bound)"))
        ->capture_default_str();
    app.add_option("--format", opt.format, "output format")->check(CLI::IsMember({"json", "table"}))->capture_default_str();
    CLI::Option* count = app.add_flag("--count-exhaustive", opt.count_exhaustive,
                                      "count the exhaustive explanation's token-forwards from its plan instead of "
                                      "running it (no wall time or agreement then)");
    CLI::Option* write = app.add_option("--write-exhaustive", opt.write_exhaustive,
                   "write the exhaustive word scores (atman.eval-scores/1, method atman-exhaustive) to this file")
        ->excludes(count);
    app.add_option("--exhaustive-scores", opt.exhaustive_scores,
                   "read the exhaustive word scores from a --write-exhaustive file instead of running them "
                   "(token-forwards counted from the plan, wall time the file's)")
        ->excludes(count)
        ->excludes(write);
    app.add_flag("-q,--quiet", opt.quiet, "no progress on stderr");
    return eng::run_program("atman-long", app, argc, argv, [&] { return run(opt); });
}
