// atman-bench-llamacpp: the reference engine and the llama.cpp adapter side by
// side in one run, on the same prompt of N tokens (bench/workload.hpp: an
// English text, 8 target tokens, token units spread evenly over it), the same
// model and threads: the plain forward (one base pass, prompt-processing
// tokens/s) and one explanation (wall time, per unit, token-forwards per
// unit), with llama.cpp / reference ratios, the adapter once for each
// --rows-per-decode. The explanations' scores are compared too, so a fast
// wrong one shows. docs/llama-cpp.md has the figures.

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include <atman/atman.hpp>

#include "bench/workload.hpp"
#include "engine/gguf.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "engine/model_path.hpp"
#include "engine/omp_policy.hpp"
#include "engine/program.hpp"
#include "engine/tokenizer.hpp"
#include "llamacpp_engine.hpp"

namespace {

using atman::index_t;
namespace eng = atman::engine;

struct options {
    std::string model;
    int threads = 2;
    index_t tokens = 256, units = 32, repeats = 3;
    std::vector<index_t> rows_per_decode = {1, 4};
};

double seconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

struct figures {
    double forward_s = 0;  // median base pass
    double explain_s = 0;
    index_t token_forwards = 0;
    std::vector<double> scores;
};

template <class Engine>
figures measure(Engine& engine, const atman::explain_request& request, index_t repeats) {
    figures f;
    const atman::teacher_forced_sequence seq(request.prompt_tokens, request.target_tokens);
    std::vector<double> ce(request.target_tokens.size());
    engine.base_pass(seq.view(), ce.data());  // warm-up: buffers, caches
    std::vector<double> times;
    for (index_t i = 0; i < repeats; ++i) {
        const auto started = std::chrono::steady_clock::now();
        engine.base_pass(seq.view(), ce.data());
        times.push_back(seconds_since(started));
    }
    std::sort(times.begin(), times.end());
    f.forward_s = times[times.size() / 2];
    const auto started = std::chrono::steady_clock::now();
    const atman::explanation e = atman::explain(engine, request, atman::config{});
    f.explain_s = seconds_since(started);
    f.token_forwards = e.stats.token_forwards;
    for (const atman::unit_score& u : e.units) f.scores.push_back(u.score);
    return f;
}

double pearson(const std::vector<double>& a, const std::vector<double>& b) {
    const double n = double(a.size());
    double ma = 0, mb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) ma += a[i] / n, mb += b[i] / n;
    double sab = 0, saa = 0, sbb = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / std::sqrt(saa * sbb);
}

// One line of the table: the reference engine's figure, then each adapter
// variant's with its ratio to the reference.
void row(const char* what, double reference, const std::vector<double>& llamacpp, const char* format) {
    const auto cell = [&](double v) {
        char text[32];
        std::snprintf(text, sizeof text, format, v);
        return std::string(text);
    };
    std::printf("| %s | %s |", what, cell(reference).c_str());
    for (double v : llamacpp) std::printf(" %s | %.2f |", cell(v).c_str(), v / reference);
    std::printf("\n");
}

void run(const options& opt) {
    const std::string path = eng::resolve_model_path(opt.model);
    const eng::gguf_file file = eng::gguf_file::open(path);
    const eng::tokenizer tok(file);
    const atman::bench::workload w = atman::bench::make_workload(tok, opt.tokens, opt.units, 0);
    const atman::explain_request& request = w.request;
    const auto length = index_t(request.prompt_tokens.size() + request.target_tokens.size());
    const auto units = double(request.units.size());

    eng::apply_threads(opt.threads);
    std::cerr << "atman-bench-llamacpp: reference engine\n";
    const eng::llama_model model = eng::llama_model::load(file);
    eng::llama_engine reference_engine(model);
    const figures ref = measure(reference_engine, request, opt.repeats);
    std::vector<figures> cpp;
    for (const index_t rows : opt.rows_per_decode) {
        std::cerr << "atman-bench-llamacpp: llama.cpp adapter, " << rows << " rows per decode\n";
        atman::llamacpp::engine_options options{length, opt.threads};
        options.rows_per_decode = rows;
        atman::llamacpp::engine llamacpp_engine(path, options);
        cpp.push_back(measure(llamacpp_engine, request, opt.repeats));
    }
    const auto each = [&](auto figure) {
        std::vector<double> v;
        for (const figures& f : cpp) v.push_back(figure(f));
        return v;
    };

    std::printf("%s, %d threads: %lld prompt + %lld target tokens, %lld token units, factor 0.1, multiplicative\n\n",
                path.c_str(), opt.threads, static_cast<long long>(request.prompt_tokens.size()),
                static_cast<long long>(request.target_tokens.size()), static_cast<long long>(request.units.size()));
    std::printf("| measure | reference engine |");
    for (const index_t rows : opt.rows_per_decode)
        std::printf(" llama.cpp, %lld row%s/decode | / reference |", static_cast<long long>(rows), rows == 1 ? "" : "s");
    std::printf("\n| --- | ---: |");
    for (std::size_t i = 0; i < cpp.size(); ++i) std::printf(" ---: | ---: |");
    std::printf("\n");
    row("plain forward (one base pass), s", ref.forward_s, each([](const figures& f) { return f.forward_s; }), "%.3f");
    row("prompt processing, tokens/s", double(length) / ref.forward_s,
        each([&](const figures& f) { return double(length) / f.forward_s; }), "%.0f");
    row("explanation, s", ref.explain_s, each([](const figures& f) { return f.explain_s; }), "%.2f");
    row("per explained unit, s", ref.explain_s / units, each([&](const figures& f) { return f.explain_s / units; }),
        "%.3f");
    row("token-forwards per unit", double(ref.token_forwards) / units,
        each([&](const figures& f) { return double(f.token_forwards) / units; }), "%.1f");
    row("explanation, token-forwards/s", double(ref.token_forwards) / ref.explain_s,
        each([](const figures& f) { return double(f.token_forwards) / f.explain_s; }), "%.0f");
    std::printf("\nscores, Pearson against the reference engine's:");
    for (const figures& f : cpp) std::printf(" %.3f", pearson(ref.scores, f.scores));
    std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
    eng::restart_with_passive_omp_wait("atman-bench-llamacpp", argv);
    options opt;
    CLI::App app{"atman-bench-llamacpp: the reference engine and the llama.cpp adapter side by side"};
    app.add_option("--model", opt.model, "GGUF model (default: $ATMAN_MODEL or the fetch-model cache)");
    app.add_option("--threads", opt.threads, "threads for both engines")->check(CLI::Range(1, 1024));
    app.add_option("--tokens", opt.tokens, "prompt tokens")->check(CLI::Range(8, 4096));
    app.add_option("--units", opt.units, "token units spread over the prompt")->check(CLI::Range(1, 4096));
    app.add_option("--rows-per-decode", opt.rows_per_decode, "the adapter's perturbed rows per llama_decode, each run")
        ->check(CLI::Range(1, 64));
    app.add_option("--repeats", opt.repeats, "timed plain forwards (the median is shown)")->check(CLI::Range(1, 100));
    CLI11_PARSE(app, argc, argv);
    try {
        run(opt);
    } catch (const std::exception& e) {
        std::cerr << "atman-bench-llamacpp: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
