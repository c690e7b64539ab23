#pragma once
// A run's size checked against the model and the machine before anything
// large is allocated: the teacher-forced sequence against the context window,
// and the memory the engine will need for its KV cache and the plan's largest
// batch against the memory available.

#include <atman/config.hpp>
#include <atman/error.hpp>
#include <atman/request.hpp>
#include <atman/scheduler.hpp>

#include <cstdint>
#include <string>

#include "llama_model.hpp"

namespace atman::engine {

// A run would need more memory than the machine has.
class resource_error : public atman::error {
public:
    using atman::error::error;
};

// Bytes this process may still allocate: the smaller of MemAvailable
// (/proc/meminfo) and the cgroup's memory.max headroom; 0 when neither is known.
std::uint64_t available_memory_bytes();

// What llama_engine allocates for one explanation, beside the weights.
struct memory_estimate {
    std::uint64_t kv_cache = 0;   // keys and values of T positions, every layer
    std::uint64_t batch = 0;      // activations of the largest batch, and one chunk of logits
    std::uint64_t total() const { return kv_cache + batch; }
};

// Activations of one recomputed position of a batch row: hidden state, its
// normalised copy, Q/K/V, attention output and the gate/up projections.
std::uint64_t bytes_per_token_row(const llama_hparams& hp);

// The memory of a run over `length` positions whose batches recompute at most
// `batch_token_rows` positions in all.
memory_estimate estimate_memory(const llama_hparams& hp, index_t length, index_t batch_token_rows);

// Throws invalid_argument unless n_prompt >= 1, n_target >= 1 and the
// teacher-forced sequence (n_prompt + n_target - 1 positions) fits in n_ctx.
void check_context(index_t n_prompt, index_t n_target, index_t n_ctx);

// Checks a request against the model before anything runs: cfg, and the
// context window (check_context, for the target and the contrast).
void check_request(const llama_hparams& hp, const atman::explain_request& request, const atman::config& cfg);

// Checks the plan of an explanation against the memory available: the KV
// cache of its T positions and its largest batch's recomputed positions
// (explain_options::before_running calls it before the first pass). Throws
// resource_error naming the bytes needed and available and what to lower.
// available: bytes, 0 = unknown (nothing is checked).
void check_plan_memory(const llama_hparams& hp, const atman::plan& plan,
                       std::uint64_t available = available_memory_bytes());

// "1.5 GiB", "12 MiB": for messages.
std::string format_bytes(std::uint64_t bytes);

}  // namespace atman::engine
