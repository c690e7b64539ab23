// atman-bench: what an AtMan explanation costs on the reference engine, as
// ratios measured side by side in one run (docs/performance.md).
//
// Each measurement runs in a child process of its own (bench/child.hpp) on
// the cases of bench/workload.hpp. Variants of the explanation
// (bench/measures.hpp): naive (every unit a full pass, batch 1), prefix reuse
// only (batch 1), batching only (full passes, default batch), both (the
// library's default). Naive time is estimated from a random sample of units
// (seed 1) unless --compare-naive runs it in full; token-forward counts are
// always exact. Output: JSON (atman.bench/1) or a table (bench/table.hpp).

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atman/atman.hpp>

#include "bench/child.hpp"
#include "bench/measures.hpp"
#include "bench/table.hpp"
#include "bench/workload.hpp"
#include "engine/gguf.hpp"
#include "engine/model_path.hpp"
#include "engine/omp_policy.hpp"
#include "engine/program.hpp"
#include "engine/tokenizer.hpp"

namespace {

using atman::index_t;
using nlohmann::json;
namespace eng = atman::engine;
namespace bench = atman::bench;

constexpr index_t kernel_rows = 8;  // rows of the attention-kernel measurement, a mid-sized batch

struct options {
    std::string model;
    int threads = 2;
    std::vector<index_t> tokens = {256, 512};
    index_t units = 64;
    index_t naive_sample = 8;
    std::vector<index_t> batch_sizes = {1, 2, 4, 8, 16, 32};
    index_t forward_repeats = 3;
    index_t gemm_size = 2048;
    bool quick = false, compare_naive = false;
    std::string format = "json";
};

// ---- the run -----------------------------------------------------------------------------------

double max_abs_difference(const json& a, const json& b) {
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(a[i].get<double>() - b[i].get<double>()));
    return worst;
}

json run_case(const options& opt, const bench::workload& w, bool sweep, bool& compare_failed) {
    const atman::explain_request& request = w.request;
    const auto units = index_t(request.units.size());
    const index_t length = index_t(request.prompt_tokens.size() + request.target_tokens.size()) - 1;
    const auto progress = [&](const std::string& what) {
        std::cerr << "atman-bench: " << request.prompt_tokens.size() << " tokens: " << what << std::endl;
    };
    const auto variant = [&](const atman::explain_request& r, bool prefix, index_t batch) {
        return bench::in_child(opt.model, opt.threads, [&](const eng::llama_model& m) {
            return bench::explain_variant(m, r, prefix, batch);
        });
    };

    progress("plain forward");
    const json forward = bench::in_child(opt.model, opt.threads, [&](const eng::llama_model& m) {
        return bench::plain_forward(m, request, opt.forward_repeats);
    });
    progress("explanation, prefix reuse and batching");
    const json both = variant(request, true, 0);
    progress("explanation, prefix reuse only");
    const json prefix = variant(request, true, 1);
    progress("explanation, batching only");
    const json batched = variant(request, false, 0);

    // Naive: every pass (base and units) is a full pass of the same length, so
    // the time of a sample scales by (units + 1) / (sample + 1).
    const bool naive_in_full = opt.compare_naive || index_t(w.naive_units.size()) >= units;
    progress(naive_in_full ? "explanation, naive" : "explanation, naive (sample)");
    const atman::explain_request naive_request =
        naive_in_full ? request : bench::with_units(request, w.naive_units);
    const json naive = variant(naive_request, false, 1);
    const double naive_s = naive["seconds"].get<double>() * double(units + 1) /
                           double(naive_request.units.size() + 1);

    json result = {
        {"tokens", request.prompt_tokens.size()},
        {"length", length},
        {"units", units},
        {"naive_s", naive_s},
        {"naive_sampled_units", naive_in_full ? 0 : index_t(w.naive_units.size())},
        {"prefix_s", prefix["seconds"]},
        {"batched_s", batched["seconds"]},
        {"both_s", both["seconds"]},
        {"forward_s", forward["seconds"]},
        {"tail_pass_s", forward["tail_seconds"]},
        {"tail_pass_positions", forward["tail_positions"]},
        {"cost_per_unit_forwards", both["seconds"].get<double>() / (double(units) * forward["seconds"].get<double>())},
        {"token_forwards", both["token_forwards"]},
        {"token_forwards_naive", (units + 1) * length},
        {"gflops", both["flops"].get<double>() / both["seconds"].get<double>() / 1e9},
        {"forward_gflops", forward["flops"].get<double>() / forward["seconds"].get<double>() / 1e9},
        {"peak_rss_explain", both["peak_rss"]},
        {"peak_rss_forward", forward["peak_rss"]},
    };
    result["token_forwards_ratio"] = result["token_forwards"].get<double>() / result["token_forwards_naive"].get<double>();
    result["prefix_time_ratio"] = result["prefix_s"].get<double>() / naive_s;
    result["prefix_time_ratio_batched"] = both["seconds"].get<double>() / batched["seconds"].get<double>();
    result["tail_pass_fraction"] = forward["tail_seconds"].get<double>() / forward["seconds"].get<double>();
    result["peak_rss_ratio"] = result["peak_rss_explain"].get<double>() / result["peak_rss_forward"].get<double>();

    if (opt.compare_naive) {
        const double difference = max_abs_difference(both["scores"], naive["scores"]);
        result["compare_naive_max_abs_diff"] = difference;
        if (!(difference <= 1e-4)) compare_failed = true;
    }
    if (sweep) {
        // Throughput per fixed batch size (batch 1 is the prefix-only run
        // above), then the automatic budget, which is the `both` run.
        const auto throughput = [](const json& run) {
            return run["token_forwards"].get<double>() / run["seconds"].get<double>();
        };
        json batches = json::array();
        double best_fixed = 0;
        for (index_t rows : opt.batch_sizes) {
            json run;
            if (rows == 1) {
                run = prefix;
            } else {
                progress("batch size " + std::to_string(rows));
                run = variant(request, true, rows);
            }
            best_fixed = std::max(best_fixed, throughput(run));
            batches.push_back({{"rows", rows}, {"seconds", run["seconds"]}, {"token_forwards_per_s", throughput(run)}});
        }
        result["batch_throughput"] = batches;
        result["auto_batch"] = {{"max_rows", atman::default_max_batch_rows},
                                {"token_rows", atman::default_batch_token_rows},
                                {"seconds", both["seconds"]},
                                {"token_forwards_per_s", throughput(both)},
                                {"vs_best_fixed", throughput(both) / best_fixed},
                                {"vs_batch_1", throughput(both) / throughput(prefix)}};
    }
    return result;
}
int run(const options& opt) {
    const auto started = std::chrono::steady_clock::now();
    const eng::gguf_file file = eng::gguf_file::open(opt.model);
    const eng::tokenizer tok(file);

    std::cerr << "atman-bench: GEMM peak and attention kernel" << std::endl;
    const json gemm =
        bench::in_child(opt.model, opt.threads, [&](const eng::llama_model&) { return bench::gemm_peak(opt.gemm_size); });
    const json kernel = bench::in_child(opt.model, opt.threads, [&](const eng::llama_model&) {
        return bench::attention_overhead(opt.tokens.front(), kernel_rows);
    });

    json report = {{"schema", "atman.bench/1"},
                   {"model", file.has("general.name") ? file.get_string("general.name") : opt.model},
                   {"threads", opt.threads},
                   {"quick", opt.quick},
                   {"gemm_peak_gflops", gemm["gflops"]},
                   {"kernel", {{"attention_overhead", kernel["attention_overhead"]},
                               {"plain_s", kernel["plain_s"]},
                               {"manipulated_s", kernel["manipulated_s"]},
                               {"tokens", opt.tokens.front()},
                               {"rows", kernel_rows}}},
                   {"cases", json::array()}};
    bool compare_failed = false;
    for (std::size_t i = 0; i < opt.tokens.size(); ++i) {
        const bench::workload w = bench::make_workload(tok, opt.tokens[i], opt.units, opt.naive_sample);
        json c = run_case(opt, w, i == 0, compare_failed);
        c["gemm_peak_gflops"] = gemm["gflops"];
        report["cases"].push_back(c);
    }
    report["seconds"] = bench::seconds_since(started);
    if (opt.format == "json") {
        std::cout << report.dump(2) << std::endl;
    } else {
        bench::print_table(report);
    }
    if (compare_failed) {
        std::cerr << "atman-bench: the fast path's scores differ from the naive path's by more than 1e-4"
                  << std::endl;
        return 1;
    }
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    atman::engine::restart_with_passive_omp_wait("atman-bench", argv);
    options opt;
    CLI::App app{"atman-bench: what an AtMan explanation costs on the reference engine (docs/performance.md)"};
    app.add_option("--model", opt.model, "GGUF model (default: $ATMAN_MODEL or the fetch-model cache)");
    app.add_option("--threads", opt.threads, "OpenMP threads")
        ->check(eng::whole_number(1, eng::max_threads, "from 1 to " + std::to_string(eng::max_threads)))
        ->capture_default_str();
    app.add_option("--tokens", opt.tokens, "prompt lengths in tokens, one case each")
        ->check(eng::whole_number(16, 4096, "from 16 to 4096"));
    app.add_option("--units", opt.units, "units explained per case, spread evenly over the prompt")
        ->check(eng::whole_number(1, std::numeric_limits<index_t>::max(), ">= 1"));
    app.add_option("--naive-sample", opt.naive_sample, "units of the naive path timed (the rest estimated)")
        ->check(eng::whole_number(1, std::numeric_limits<index_t>::max(), ">= 1"));
    app.add_flag("--quick", opt.quick, "a short run: 128 tokens, 8 units, GEMM 1024");
    app.add_flag("--compare-naive", opt.compare_naive,
                 "run the naive path in full and require equal scores (1e-4)");
    app.add_option("--format", opt.format, "output on stdout")->check(CLI::IsMember({"json", "table"}));
    return eng::run_program("atman-bench", app, argc, argv, [&] {
        if (opt.quick) {
            if (app.count("--tokens") == 0) opt.tokens = {128};
            if (app.count("--units") == 0) opt.units = 8;
            if (app.count("--naive-sample") == 0) opt.naive_sample = 4;
            opt.forward_repeats = 1;
            opt.gemm_size = 1024;
        }
        opt.model = eng::resolve_model_path(opt.model);
        return run(opt);
    });
}
