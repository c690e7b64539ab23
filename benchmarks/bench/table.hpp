#pragma once
// atman-bench's report as a table (--format table).

#include <nlohmann/json.hpp>

#include <cstdio>
#include <string>

namespace atman::bench {

using json = nlohmann::json;

inline void print_table(const json& report) {
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

}  // namespace atman::bench
