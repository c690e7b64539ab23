// Google Benchmark micro-benchmarks of the CPU kernels: fused attention with
// and without manipulation, and the cosine neighbourhood search.
//
//   micro_kernels                       the default, modest set
//   ATMAN_BENCH_LARGE=1 micro_kernels   adds find_neighbors up to n 16384, dim 4096
//
// attend runs one row over a full causal sequence of length T (every query
// recomputed); manipulated rows suppress every third key with phi = 0.1 (the
// dense path), or one key in the middle as a token unit does (the sparse path).
// attend_layer runs one layer's attention of a batch of token units, with and
// without the rows' touched-key lists.

#include <benchmark/benchmark.h>

#include <atman/attention.hpp>
#include <atman/neighborhood.hpp>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

namespace {

using atman::index_t;

template <class Scalar>
std::vector<Scalar> random_values(std::size_t count, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<Scalar> normal(0, 1);
    std::vector<Scalar> values(count);
    for (auto& v : values) v = normal(rng);
    return values;
}

enum class manipulation { none, multiplicative, log_additive, one_key };

const char* name_of(manipulation m) {
    switch (m) {
        case manipulation::none:
            return "plain";
        case manipulation::multiplicative:
            return "multiplicative";
        case manipulation::log_additive:
            return "log_additive";
        case manipulation::one_key:
            return "multiplicative_one_key";
    }
    return "?";
}

// Packed (pos, head, d) layouts, as an engine's KV cache and activations hold them.
void attend_benchmark(benchmark::State& state, atman::attention_shape shape, manipulation m) {
    const index_t length = state.range(0);
    const index_t q_width = shape.n_head * shape.head_dim,
                  kv_width = shape.n_kv_head * shape.head_dim;
    const auto q = random_values<float>(std::size_t(length * q_width), 1);
    const auto k = random_values<float>(std::size_t(length * kv_width), 2);
    const auto v = random_values<float>(std::size_t(length * kv_width), 3);
    std::vector<float> out(q.size());
    std::vector<float> factors(std::size_t(length), 1.f);
    if (m == manipulation::one_key) {
        factors[factors.size() / 2] = 0.1f;
    } else {
        for (std::size_t j = 0; j < factors.size(); j += 3) factors[j] = 0.1f;
    }

    atman::attention_row<float> row;
    row.q = q.data();
    row.q_pos_stride = q_width;
    row.q_head_stride = shape.head_dim;
    row.n_queries = length;
    row.own = {k.data(), v.data(), length, kv_width, shape.head_dim};
    row.out = out.data();
    row.out_pos_stride = q_width;
    row.out_head_stride = shape.head_dim;
    if (m != manipulation::none) {
        row.key_factors = factors.data();
        row.mode = m == manipulation::log_additive ? atman::manipulation_mode::log_additive
                                                   : atman::manipulation_mode::multiplicative;
    }
    for (auto _ : state) {
        atman::attend(shape, row);
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
    // Causal QK^T and PV: about 2 * 2 * d FLOPs per visible (query, key) pair and head.
    const double flops = 4.0 * double(shape.head_dim) * double(shape.n_head) * double(length) *
                         double(length + 1) / 2;
    state.counters["GFLOP/s"] =
        benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

// One layer's attention as the reference engine issues it for a batch of 16
// token units at positions spread over a sequence of T: each row recomputes
// positions p..T-1 in chunks of 64 queries, keys < p from a shared prefix
// cache. With `touched`, each row carries its touched-key list (batch_rows.hpp)
// and attend reads only those factors; without, it scans the T factors of
// every chunk, as it did before batches were prepared once.
void attend_layer_benchmark(benchmark::State& state, atman::attention_shape shape, bool touched) {
    const index_t length = state.range(0), n_rows = 16, chunk = 64;
    const index_t q_width = shape.n_head * shape.head_dim, kv_width = shape.n_kv_head * shape.head_dim;
    const auto q = random_values<float>(std::size_t(length * q_width), 1);
    const auto k = random_values<float>(std::size_t(length * kv_width), 2);
    const auto v = random_values<float>(std::size_t(length * kv_width), 3);
    std::vector<float> out(q.size());
    std::vector<std::vector<float>> factors(std::size_t(n_rows), std::vector<float>(std::size_t(length), 1.f));
    std::vector<index_t> keys(static_cast<std::size_t>(n_rows));
    std::vector<atman::attention_row<float>> rows;
    for (index_t r = 0; r < n_rows; ++r) {
        const index_t p = r * (length - 1) / n_rows;
        keys[std::size_t(r)] = p;
        factors[std::size_t(r)][std::size_t(p)] = 0.1f;
        for (index_t first = p; first < length; first += chunk) {
            atman::attention_row<float> row;
            row.q = q.data() + first * q_width;
            row.q_pos_stride = q_width;
            row.q_head_stride = shape.head_dim;
            row.q_begin = first;
            row.n_queries = std::min(chunk, length - first);
            row.prefix = {k.data(), v.data(), p, kv_width, shape.head_dim};
            row.own = {k.data() + p * kv_width, v.data() + p * kv_width, first + row.n_queries - p, kv_width,
                       shape.head_dim};
            row.key_factors = factors[std::size_t(r)].data();
            if (touched) {
                row.touched = &keys[std::size_t(r)];
                row.n_touched = 1;
            }
            row.out = out.data() + first * q_width;
            row.out_pos_stride = q_width;
            row.out_head_stride = shape.head_dim;
            rows.push_back(row);
        }
    }
    for (auto _ : state) {
        atman::attend(shape, rows.data(), index_t(rows.size()));
        benchmark::DoNotOptimize(out.data());
        benchmark::ClobberMemory();
    }
}

void find_neighbors_benchmark(benchmark::State& state) {
    const index_t n = state.range(0), dim = state.range(1);
    const auto e = random_values<float>(std::size_t(n * dim), 4);
    atman::neighborhood_options options;  // kappa 0.7, block 256
    std::size_t found = 0;
    for (auto _ : state) {
        const auto result = atman::find_neighbors(e.data(), n, dim, options);
        found = result.neighbors.size();
        benchmark::DoNotOptimize(found);
    }
    state.counters["neighbors"] = double(found);
    state.counters["GFLOP/s"] = benchmark::Counter(2.0 * double(n) * double(n) * double(dim) * 1e-9,
                                                   benchmark::Counter::kIsIterationInvariantRate);
}

// With --benchmark_repetitions: the fastest run, the least disturbed by other load.
double fastest(const std::vector<double>& times) {
    return *std::min_element(times.begin(), times.end());
}

void register_benchmarks(bool large) {
    const struct {
        const char* name;
        atman::attention_shape shape;
    } shapes[] = {{"smollm2_9x3x64", {9, 3, 64, 0}}, {"32x8x128", {32, 8, 128, 0}}};
    for (const auto& s : shapes) {
        for (auto m :
             {manipulation::none, manipulation::multiplicative, manipulation::log_additive, manipulation::one_key}) {
            const std::string name = std::string("attend/") + s.name + "/" + name_of(m);
            benchmark::RegisterBenchmark(name.c_str(), attend_benchmark, s.shape, m)
                ->ComputeStatistics("min", fastest)
                ->RangeMultiplier(2)
                ->Range(128, 2048)
                ->Unit(benchmark::kMillisecond);
        }
    }
    for (bool touched : {false, true}) {
        const std::string name = std::string("attend_layer/smollm2_9x3x64/") + (touched ? "touched" : "scan");
        benchmark::RegisterBenchmark(name.c_str(), attend_layer_benchmark, atman::attention_shape{9, 3, 64, 0},
                                     touched)
            ->ComputeStatistics("min", fastest)
            ->Arg(256)
            ->Arg(1024)
            ->Unit(benchmark::kMicrosecond);
    }
    benchmark::RegisterBenchmark("find_neighbors", find_neighbors_benchmark)
        ->Args({1024, 64})
        ->Args({1024, 576})
        ->Args({4096, 576})
        ->Unit(benchmark::kMillisecond);
    if (large) {
        benchmark::RegisterBenchmark("find_neighbors", find_neighbors_benchmark)
            ->Args({16384, 576})
            ->Args({16384, 4096})
            ->Iterations(1)
            ->Unit(benchmark::kMillisecond);
    }
}

}  // namespace

int main(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    const char* large = std::getenv("ATMAN_BENCH_LARGE");
    register_benchmarks(large != nullptr && std::string(large) == "1");
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
