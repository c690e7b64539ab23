#include "engine/limits.hpp"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <atman/scheduler.hpp>

namespace atman::engine {
namespace {

// Rows of logits the engine computes at once (llama_engine's logits_chunk_rows).
constexpr std::uint64_t logits_chunk_rows = 64;

// The first number on the line of /proc/meminfo that starts with key, in bytes.
std::uint64_t meminfo_bytes(const std::string& key) {
    std::ifstream in("/proc/meminfo");
    for (std::string line; std::getline(in, line);) {
        if (line.compare(0, key.size(), key) != 0) continue;
        std::istringstream fields(line.substr(key.size()));
        std::uint64_t kib = 0;
        if (fields >> kib) return kib * 1024;
    }
    return 0;
}

// memory.max - memory.current of this process's cgroup (v2), 0 when unlimited or unknown.
std::uint64_t cgroup_headroom_bytes() {
    std::ifstream max_file("/sys/fs/cgroup/memory.max"), current_file("/sys/fs/cgroup/memory.current");
    std::string max_text;
    std::uint64_t current = 0;
    if (!(max_file >> max_text) || max_text == "max" || !(current_file >> current)) return 0;
    const std::uint64_t limit = std::stoull(max_text);
    return limit > current ? limit - current : 1;  // at the limit: next to nothing is left
}

}  // namespace

std::uint64_t available_memory_bytes() {
    const std::uint64_t system = meminfo_bytes("MemAvailable:"), cgroup = cgroup_headroom_bytes();
    if (system == 0 || cgroup == 0) return std::max(system, cgroup);
    return std::min(system, cgroup);
}

std::uint64_t bytes_per_token_row(const llama_hparams& hp) {
    const auto floats = std::uint64_t(2 * hp.n_embd + hp.q_dim() + 2 * hp.kv_dim() + hp.q_dim() + 2 * hp.n_ff);
    return floats * sizeof(float) + 2 * sizeof(index_t);  // plus the row's position and offset
}

memory_estimate estimate_memory(const llama_hparams& hp, index_t length, index_t batch_token_rows) {
    memory_estimate m;
    m.kv_cache = 2 * std::uint64_t(hp.n_layer) * std::uint64_t(length) * std::uint64_t(hp.kv_dim()) * sizeof(float);
    m.batch = std::uint64_t(batch_token_rows) * bytes_per_token_row(hp) +
              logits_chunk_rows * std::uint64_t(hp.n_vocab + hp.n_embd) * sizeof(float);
    return m;
}

void check_context(index_t n_prompt, index_t n_target, index_t n_ctx) {
    detail::require(n_prompt >= 1, "the prompt has no tokens");
    detail::require(n_target >= 1, "the target has no tokens");
    const index_t length = n_prompt + n_target - 1;
    detail::require(length <= n_ctx, "the prompt (" + std::to_string(n_prompt) + " tokens) and the target (" +
                                         std::to_string(n_target) + " tokens) need " + std::to_string(length) +
                                         " positions, more than the model's context window of " +
                                         std::to_string(n_ctx));
}

void check_request(const llama_hparams& hp, const atman::explain_request& request, const atman::config& cfg) {
    cfg.validate();
    const auto n_prompt = index_t(request.prompt_tokens.size());
    check_context(n_prompt, index_t(request.target_tokens.size()), hp.n_ctx);
    if (request.contrastive()) check_context(n_prompt, index_t(request.contrast_tokens.size()), hp.n_ctx);
}

void check_plan_memory(const llama_hparams& hp, const atman::plan& plan, std::uint64_t available) {
    if (available == 0) return;
    index_t largest = 0, rows = 0;
    for (const atman::batch& b : plan.batches) {
        if (b.token_rows <= largest) continue;
        largest = b.token_rows;
        rows = b.end - b.begin;
    }
    const std::uint64_t needed = estimate_memory(hp, plan.length, largest).total();
    if (needed > available) {
        throw resource_error("explaining " + std::to_string(plan.length) + " positions in batches of " +
                             std::to_string(rows) + " rows needs about " + format_bytes(needed) +
                             " of memory, but only " + format_bytes(available) +
                             " is available; lower --batch or shorten the prompt");
    }
}

std::string format_bytes(std::uint64_t bytes) {
    static const char* const units[] = {"bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double value = double(bytes);
    int unit = 0;
    while (value >= 1024 && unit < 6) value /= 1024, ++unit;
    char text[32];
    std::snprintf(text, sizeof text, unit == 0 ? "%.0f %s" : "%.1f %s", value, units[unit]);
    return text;
}

}  // namespace atman::engine
