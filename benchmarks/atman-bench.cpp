// atman-bench: what an AtMan explanation costs on the reference engine, as
// ratios measured side by side in one run (docs/performance.md).
//
// Every measurement runs in a child process of its own that loads the model,
// resets its peak resident memory (/proc/self/clear_refs) and reports its
// figures and VmHWM through a pipe, so the peaks of a plain forward pass and
// of an explanation are comparable. The parent never runs OpenMP code: GNU
// libgomp does not survive fork() once its threads exist.
//
// Cases: a prompt of N tokens (an English text, repeated), 8 target tokens
// teacher-forced after it, and `--units` token units spread evenly over the
// prompt. Variants of the explanation: naive (every unit a full pass, batch 1),
// prefix reuse only (batch 1), batching only (full passes, default batch), both
// (the library's default). Naive time is estimated from a random sample of
// units (seed 1) unless --compare-naive runs it in full; token-forward counts
// are always exact.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <random>
#include <string>
#include <vector>

#include <omp.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <Eigen/Core>
#include <nlohmann/json.hpp>

#include <atman/atman.hpp>

#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "engine/model_path.hpp"
#include "engine/omp_policy.hpp"
#include "engine/tokenizer.hpp"

namespace {

using atman::index_t;
using nlohmann::json;
namespace eng = atman::engine;

constexpr index_t target_count = 8;
constexpr std::uint32_t sample_seed = 1;
constexpr index_t kernel_rows = 8;  // rows of the attention-kernel measurement, a mid-sized batch

const char* const prompt_text =
    "The lighthouse keeper wrote in his log every evening, even when nothing had happened. "
    "He noted the wind, the colour of the sea and the ships that passed too close to the rocks. "
    "In winter the storms came from the west and the lamp had to be wound twice a night. "
    "His daughter learned to read from those pages, and later she kept the log herself, "
    "adding the names of the birds that rested on the gallery and the prices at the market "
    "in the village across the bay. When the light was finally automated, the books were "
    "taken to the museum, where visitors still ask why a keeper would write down a calm day. ";
const char* const target_text = " Because a calm day is also a record of the sea.";

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

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// ---- child processes ---------------------------------------------------------------------------

// Peak resident memory since the last reset, in bytes.
long long peak_rss_bytes() {
    std::ifstream status("/proc/self/status");
    for (std::string line; std::getline(status, line);)
        if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
    throw std::runtime_error("VmHWM is missing from /proc/self/status");
}

void reset_peak_rss() {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    if (!clear.flush()) throw std::runtime_error("cannot reset the peak RSS via /proc/self/clear_refs");
}

// Runs measure(model) in a child with its own copy of the model loaded; returns
// its JSON with "peak_rss" added (bytes since the model was loaded and the peak reset).
json in_child(const options& opt, const std::function<json(const eng::llama_model&)>& measure) {
    int channel[2];
    if (pipe(channel) != 0) throw std::runtime_error("pipe failed");
    std::cout.flush();
    std::cerr.flush();
    const pid_t pid = fork();
    if (pid < 0) throw std::runtime_error("fork failed");
    if (pid == 0) {
        close(channel[0]);
        json result;
        try {
            omp_set_num_threads(opt.threads);
            const eng::gguf_file file = eng::gguf_file::open(opt.model);
            const eng::llama_model model = eng::llama_model::load(file);
            reset_peak_rss();
            result = measure(model);
            result["peak_rss"] = peak_rss_bytes();
        } catch (const std::exception& e) {
            result = {{"error", e.what()}};
        }
        const std::string text = result.dump();
        for (std::size_t done = 0; done < text.size();) {
            const ssize_t n = write(channel[1], text.data() + done, text.size() - done);
            if (n <= 0) break;
            done += std::size_t(n);
        }
        close(channel[1]);
        _exit(0);
    }
    close(channel[1]);
    std::string text;
    char buffer[65536];
    for (ssize_t n; (n = read(channel[0], buffer, sizeof buffer)) > 0;) text.append(buffer, std::size_t(n));
    close(channel[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || text.empty()) throw std::runtime_error("a measuring process died");
    json result = json::parse(text);
    if (result.contains("error")) throw std::runtime_error(result["error"].get<std::string>());
    return result;
}

// ---- the workload ------------------------------------------------------------------------------

struct workload {
    atman::explain_request request;  // all chosen units
    std::vector<index_t> naive_units;  // indices into request.units: the sample timed naively
};

workload make_workload(const eng::tokenizer& tok, index_t n_tokens, index_t n_units, index_t n_sample) {
    std::string text;
    std::vector<eng::token> encoded;
    while (index_t(encoded.size()) < n_tokens) {
        text += prompt_text;
        encoded = tok.encode(text);
    }
    encoded.resize(std::size_t(n_tokens));
    workload w;
    atman::explain_request& r = w.request;
    r.prompt = text.substr(0, std::size_t(encoded.back().end));
    std::vector<atman::token_offsets> offsets;
    for (const eng::token& t : encoded) {
        r.prompt_tokens.push_back(t.id);
        offsets.push_back({t.start, t.end, false});
    }
    r.target_tokens = tok.encode_ids(target_text);
    r.target_tokens.resize(std::size_t(target_count));
    r.target = tok.decode(r.target_tokens);

    atman::unit_options by_token;
    by_token.by = atman::granularity::token;
    const std::vector<atman::unit> all = atman::make_units(r.prompt, offsets, by_token);
    n_units = std::min<index_t>(n_units, index_t(all.size()));
    for (index_t k = 0; k < n_units; ++k)
        r.units.push_back(all[std::size_t((2 * k + 1) * index_t(all.size()) / (2 * n_units))]);

    std::vector<index_t> order(static_cast<std::size_t>(n_units));
    for (index_t k = 0; k < n_units; ++k) order[std::size_t(k)] = k;
    std::shuffle(order.begin(), order.end(), std::mt19937(sample_seed));
    order.resize(std::size_t(std::min(n_sample, n_units)));
    std::sort(order.begin(), order.end());
    w.naive_units = order;
    return w;
}

atman::explain_request with_units(const atman::explain_request& full, const std::vector<index_t>& chosen) {
    atman::explain_request r = full;
    r.units.clear();
    for (index_t k : chosen) r.units.push_back(full.units[std::size_t(k)]);
    return r;
}

// The engine as an adapter that cannot reuse a prefix: every row recomputes all positions.
struct full_pass_engine {
    eng::llama_engine& engine;

    void base_pass(const atman::sequence_view& seq, double* ce) { engine.base_pass(seq, ce); }
    void perturbed_pass(const atman::sequence_view& seq, const atman::batch_view& batch, double* ce) {
        std::vector<atman::row_view> rows(batch.rows, batch.rows + batch.n_rows);
        for (atman::row_view& row : rows) row.first_affected = 0;
        engine.perturbed_pass(seq, {batch.mode, rows.data(), batch.n_rows}, ce);
    }
};

// Floating-point operations of recomputing `rows` positions from first..length-1
// (their attention sees keys 0..q) and the LM head at `scored` positions.
double pass_flops(const eng::llama_hparams& hp, index_t first, index_t length, index_t scored) {
    const double embd = double(hp.n_embd), q_dim = double(hp.q_dim()), kv_dim = double(hp.kv_dim());
    const double linear = 2 * (embd * (q_dim + 2 * kv_dim) + q_dim * embd + 3 * embd * double(hp.n_ff));
    // QK^T and PV: 4 * q_dim per visible key; sum over q of (q + 1) keys.
    const double keys = (double(length) * double(length + 1) - double(first) * double(first + 1)) / 2;
    const double rows = double(length - first);
    return double(hp.n_layer) * (rows * linear + 4 * q_dim * keys) +
           double(scored) * 2 * embd * double(hp.n_vocab);
}

// One explanation of `request`: prefix reuse or full passes, batches of at most
// batch_rows (0: the scheduler's default). Returns seconds, token_forwards,
// flops and the complete score of each unit.
json explain_variant(const eng::llama_model& model, const atman::explain_request& request, bool prefix_reuse,
                     index_t batch_rows) {
    eng::llama_engine engine(model);
    atman::config cfg;
    cfg.max_batch_rows = batch_rows;
    const atman::plan p = atman::plan_explanation(engine, request, cfg);
    const auto started = std::chrono::steady_clock::now();
    atman::raw_deltas deltas;
    if (prefix_reuse) {
        deltas = atman::explain_deltas(engine, request, cfg, p);
    } else {
        full_pass_engine full{engine};
        deltas = atman::explain_deltas(full, request, cfg, p);
    }
    const double seconds = seconds_since(started);

    const index_t length = p.length, first_scored = length - index_t(request.target_tokens.size());
    double flops = pass_flops(model.hparams(), 0, length, length - first_scored);
    index_t token_forwards = length;
    for (const atman::perturbation& x : p.perturbations) {
        const index_t first = prefix_reuse ? x.first_affected : 0;
        flops += pass_flops(model.hparams(), first, length, length - std::max(first, first_scored));
        token_forwards += length - first;
    }
    std::vector<double> scores(request.units.size(), 0.0);
    for (const atman::perturbation_deltas& row : deltas.rows)
        for (double d : row.target) scores[std::size_t(row.index)] += d;
    return {{"seconds", seconds}, {"token_forwards", token_forwards}, {"flops", flops}, {"scores", scores}};
}

// The median time of `repeats` calls of run, after one more to warm up
// (buffers, RoPE table, cache).
template <class Run>
double median_seconds(index_t repeats, Run&& run) {
    run();
    std::vector<double> times;
    for (index_t i = 0; i < repeats; ++i) {
        const auto started = std::chrono::steady_clock::now();
        run();
        times.push_back(seconds_since(started));
    }
    std::sort(times.begin(), times.end());
    return times[times.size() / 2];
}

// The plain forward: one pass over the sequence, logits only at the scored
// positions. Also a perturbed pass that recomputes only the positions from the
// last prompt token on: what a pass costs beyond its positions (the weights
// stream through memory once per pass, however few positions share them).
json plain_forward(const eng::llama_model& model, const atman::explain_request& request, index_t repeats) {
    eng::llama_engine engine(model);
    const atman::teacher_forced_sequence seq(request.prompt_tokens, request.target_tokens);
    std::vector<double> ce(request.target_tokens.size());
    const double seconds = median_seconds(repeats, [&] { engine.base_pass(seq.view(), ce.data()); });

    const index_t length = seq.length(), tail_first = seq.view().first_scored;
    atman::batch_rows tail_row;
    tail_row.assign({{atman::perturbation_kind::unit, 0, tail_first, {tail_first}, {0.1f}}}, 0, 1, length,
                    atman::manipulation_mode::multiplicative);
    const double tail_seconds =
        median_seconds(repeats, [&] { engine.perturbed_pass(seq.view(), tail_row.view(), ce.data()); });
    return {{"seconds", seconds},
            {"flops", pass_flops(model.hparams(), 0, length, index_t(request.target_tokens.size()))},
            {"tail_seconds", tail_seconds},
            {"tail_positions", length - tail_first}};
}

// The best of a few runs of an n x n x n float32 Eigen GEMM on the same threads.
json gemm_peak(index_t n) {
    const Eigen::MatrixXf a = Eigen::MatrixXf::Random(n, n), b = Eigen::MatrixXf::Random(n, n);
    Eigen::MatrixXf c(n, n);
    double best = 1e300;
    for (int i = 0; i < 5; ++i) {
        const auto started = std::chrono::steady_clock::now();
        c.noalias() = a * b;
        best = std::min(best, seconds_since(started));
    }
    return {{"gflops", 2.0 * double(n) * double(n) * double(n) / best / 1e9}, {"checksum", double(c.sum())}};
}

// The library's attention kernel on a batch of rows as an explanation runs them,
// with and without key factors; the best of several alternating runs each.
json attention_overhead(index_t length, index_t n_rows) {
    const atman::attention_shape shape{9, 3, 64, 0.0};  // SmolLM2-135M
    const index_t q_dim = shape.n_head * shape.head_dim, kv_dim = shape.n_kv_head * shape.head_dim;
    std::mt19937 rng(sample_seed);
    std::normal_distribution<float> normal;
    const auto random_vector = [&](index_t size) {
        std::vector<float> v(static_cast<std::size_t>(size));
        for (float& x : v) x = normal(rng);
        return v;
    };
    const std::vector<float> cache_k = random_vector(length * kv_dim), cache_v = random_vector(length * kv_dim);
    std::vector<std::vector<float>> q, k, v, out, factors;
    std::vector<atman::attention_row<float>> plain, manipulated;
    for (index_t r = 0; r < n_rows; ++r) {
        const index_t begin = (2 * r + 1) * length / (2 * n_rows), count = length - begin;
        q.push_back(random_vector(count * q_dim));
        k.push_back(random_vector(count * kv_dim));
        v.push_back(random_vector(count * kv_dim));
        out.emplace_back(std::size_t(count * q_dim));
        factors.emplace_back(std::size_t(length), 1.0f);
        factors.back()[std::size_t(begin)] = 0.1f;
        atman::attention_row<float> row;
        row.q = q.back().data();
        row.q_pos_stride = q_dim, row.q_head_stride = shape.head_dim;
        row.q_begin = begin, row.n_queries = count;
        row.prefix = {cache_k.data(), cache_v.data(), begin, kv_dim, shape.head_dim};
        row.own = {k.back().data(), v.back().data(), count, kv_dim, shape.head_dim};
        row.out = out.back().data();
        row.out_pos_stride = q_dim, row.out_head_stride = shape.head_dim;
        plain.push_back(row);
        row.key_factors = factors.back().data();
        manipulated.push_back(row);
    }
    double best_plain = 1e300, best_manipulated = 1e300;
    for (int i = 0; i < 60; ++i) {  // a few ms each: the best of many is stable to a percent or two
        for (bool manipulate : {false, true}) {
            const auto& rows = manipulate ? manipulated : plain;
            const auto started = std::chrono::steady_clock::now();
            atman::attend(shape, rows.data(), index_t(rows.size()));
            double& best = manipulate ? best_manipulated : best_plain;
            best = std::min(best, seconds_since(started));
        }
    }
    return {{"plain_s", best_plain}, {"manipulated_s", best_manipulated},
            {"attention_overhead", best_manipulated / best_plain - 1}};
}

// ---- the run -----------------------------------------------------------------------------------

double max_abs_difference(const json& a, const json& b) {
    double worst = 0;
    for (std::size_t i = 0; i < a.size(); ++i)
        worst = std::max(worst, std::abs(a[i].get<double>() - b[i].get<double>()));
    return worst;
}

json run_case(const options& opt, const workload& w, bool sweep, bool& compare_failed) {
    const atman::explain_request& request = w.request;
    const auto units = index_t(request.units.size());
    const index_t length = index_t(request.prompt_tokens.size() + request.target_tokens.size()) - 1;
    const auto progress = [&](const std::string& what) {
        std::cerr << "atman-bench: " << request.prompt_tokens.size() << " tokens: " << what << std::endl;
    };
    const auto variant = [&](const atman::explain_request& r, bool prefix, index_t batch) {
        return in_child(opt, [&](const eng::llama_model& m) { return explain_variant(m, r, prefix, batch); });
    };

    progress("plain forward");
    const json forward = in_child(opt, [&](const eng::llama_model& m) {
        return plain_forward(m, request, opt.forward_repeats);
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
        naive_in_full ? request : with_units(request, w.naive_units);
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

void print_table(const json& report) {
    std::printf("atman-bench  model %s  threads %d\n", report["model"].get<std::string>().c_str(),
                report["threads"].get<int>());
    std::printf("GEMM peak %.1f GFLOP/s, attention overhead (manipulated vs plain) %+.1f%%\n\n",
                report["gemm_peak_gflops"].get<double>(), 100 * report["kernel"]["attention_overhead"].get<double>());
    std::printf("%6s %5s %9s %9s %9s %9s %9s %8s %8s %8s %8s %8s\n", "tokens", "units", "naive_s", "prefix_s",
                "batched_s", "both_s", "forward_s", "cost/u", "tf_ratio", "GFLOP/s", "of_peak", "rss_x");
    for (const json& c : report["cases"]) {
        std::printf("%6lld %5lld %9.2f %9.2f %9.2f %9.2f %9.3f %8.3f %8.3f %8.1f %8.2f %8.3f\n",
                    c["tokens"].get<long long>(), c["units"].get<long long>(), c["naive_s"].get<double>(),
                    c["prefix_s"].get<double>(), c["batched_s"].get<double>(), c["both_s"].get<double>(),
                    c["forward_s"].get<double>(), c["cost_per_unit_forwards"].get<double>(),
                    c["token_forwards_ratio"].get<double>(), c["gflops"].get<double>(),
                    c["gflops"].get<double>() / c["gemm_peak_gflops"].get<double>(), c["peak_rss_ratio"].get<double>());
        if (c.contains("batch_throughput")) {
            std::printf("       batch rows -> token-forwards/s:");
            for (const json& b : c["batch_throughput"])
                std::printf("  %lld: %.0f", b["rows"].get<long long>(), b["token_forwards_per_s"].get<double>());
            const json& a = c["auto_batch"];
            std::printf("  auto: %.0f (%.2fx the best fixed)\n", a["token_forwards_per_s"].get<double>(),
                        a["vs_best_fixed"].get<double>());
        }
        std::printf("       prefix reuse saves: %.3f of naive at batch 1, %.3f at the automatic batch;"
                    " a pass of %lld positions costs %.2f of a full forward\n",
                    c["prefix_time_ratio"].get<double>(), c["prefix_time_ratio_batched"].get<double>(),
                    c["tail_pass_positions"].get<long long>(), c["tail_pass_fraction"].get<double>());
    }
}

int run(const options& opt) {
    const auto started = std::chrono::steady_clock::now();
    const eng::gguf_file file = eng::gguf_file::open(opt.model);
    const eng::tokenizer tok(file);

    std::cerr << "atman-bench: GEMM peak and attention kernel" << std::endl;
    const json gemm = in_child(opt, [&](const eng::llama_model&) { return gemm_peak(opt.gemm_size); });
    const json kernel = in_child(opt, [&](const eng::llama_model&) {
        return attention_overhead(opt.tokens.front(), kernel_rows);
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
        const workload w = make_workload(tok, opt.tokens[i], opt.units, opt.naive_sample);
        json c = run_case(opt, w, i == 0, compare_failed);
        c["gemm_peak_gflops"] = gemm["gflops"];
        report["cases"].push_back(c);
    }
    report["seconds"] = seconds_since(started);
    if (opt.format == "json") {
        std::cout << report.dump(2) << std::endl;
    } else {
        print_table(report);
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
    app.add_option("--threads", opt.threads, "OpenMP threads")->check(CLI::PositiveNumber);
    app.add_option("--tokens", opt.tokens, "prompt lengths in tokens, one case each")->check(CLI::Range(16, 4096));
    app.add_option("--units", opt.units, "units explained per case, spread evenly over the prompt")
        ->check(CLI::PositiveNumber);
    app.add_option("--naive-sample", opt.naive_sample, "units of the naive path timed (the rest estimated)")
        ->check(CLI::PositiveNumber);
    app.add_flag("--quick", opt.quick, "a short run: 128 tokens, 8 units, GEMM 1024");
    app.add_flag("--compare-naive", opt.compare_naive,
                 "run the naive path in full and require equal scores (1e-4)");
    app.add_option("--format", opt.format, "output on stdout")->check(CLI::IsMember({"json", "table"}));
    CLI11_PARSE(app, argc, argv);
    try {
        if (opt.quick) {
            if (app.count("--tokens") == 0) opt.tokens = {128};
            if (app.count("--units") == 0) opt.units = 8;
            if (app.count("--naive-sample") == 0) opt.naive_sample = 4;
            opt.forward_repeats = 1;
            opt.gemm_size = 1024;
        }
        opt.model = eng::resolve_model_path(opt.model);
        return run(opt);
    } catch (const std::exception& e) {
        std::cerr << "atman-bench: " << e.what() << std::endl;
        return 2;
    }
}
