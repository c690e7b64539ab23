#pragma once
// atman's adapter contract (atman/adapter.hpp) on top of an unmodified
// llama.cpp, through its public C API: the eval callback
// (llama_context_params.cb_eval) stops the CPU graph before each layer's
// attention softmax ("kq_soft_max-<layer>", flash attention off) and
// manipulates the pre-softmax scores in place. docs/llama-cpp.md explains the
// route, the tensor layout and the cell-to-position map.
//
// What the route cannot manipulate is refused with a message naming it: flash
// attention, a GPU or other non-host buffer, sliding-window, recurrent or
// hybrid models, ALiBi, scores that reach the softmax through an op the
// callback cannot stop before.

#include <atman/adapter.hpp>
#include <atman/config.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

struct llama_model;
struct llama_context;
struct ggml_tensor;

namespace atman::llamacpp {

struct engine_options {
    index_t max_length = 0;  // longest sequence to run: the context holds 2 x this (base + one row)
    int threads = 0;         // 0: the hardware's thread count
};

class engine {
public:
    // Loads the GGUF at model_path on the CPU. Throws atman::invalid_argument
    // for a model the route cannot manipulate, atman::error when llama.cpp fails.
    engine(const std::string& model_path, const engine_options& options);
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    // The adapter contract. Perturbed rows run one at a time, each reusing
    // the base pass's KV cells for positions < first_affected.
    void base_pass(const sequence_view& seq, double* ce);
    void perturbed_pass(const sequence_view& seq, const batch_view& batch, double* ce);

    // Greedy decoding: the new tokens, stopping after max_new_tokens, at the
    // context's end, at a token of stop_ids or at llama.cpp's end-of-generation
    // tokens (not included).
    std::vector<std::int32_t> generate(const std::vector<std::int32_t>& prompt, index_t max_new_tokens,
                                       const std::vector<std::int32_t>& stop_ids);
    // llama.cpp's own tokenisation of text (no BOS, special tokens as text).
    std::vector<std::int32_t> tokenize(const std::string& text) const;

    std::string metadata(const char* key) const;  // "" when absent
    std::uint64_t parameter_count() const;
    index_t context_length() const;  // the model's training context
    // Layers whose scores the last manipulated pass changed (a check: all of them).
    index_t manipulated_layers() const { return manipulated_layers_; }

private:
    static bool eval_callback(ggml_tensor* t, bool ask, void* user);
    bool on_node(ggml_tensor* t, bool ask);
    void at_softmax(ggml_tensor* softmax);
    void map_cells(const ggml_tensor* mask, std::int64_t n_kv, std::int64_t n_tokens);
    // Decodes positions [from, seq.length) of seq on llama sequence seq_id;
    // writes the CE of the targets at positions >= from into ce (the others untouched).
    void decode(const sequence_view& seq, index_t from, int seq_id, double* ce);
    void fail(const std::string& message);

    llama_model* model_ = nullptr;
    llama_context* ctx_ = nullptr;
    index_t n_ctx_ = 0, n_layer_ = 0;

    // The decode in flight, as the callback sees it.
    bool observing_ = false;            // a base or perturbed decode: check and map the layout
    manipulation_mode mode_ = manipulation_mode::multiplicative;
    const float* factors_ = nullptr;    // the row's T factors by position; nullptr: base pass
    index_t first_pos_ = 0;             // position of the decode's first token
    index_t prefix_ = 0;                // positions < prefix_ come from the base pass's cells
    bool mapped_ = false;               // cell_pos_ holds this decode's map
    std::vector<std::int32_t> cell_pos_;       // position of each kv cell this decode sees, -1 none
    std::vector<std::int32_t> base_cell_pos_;  // the base pass's map
    std::vector<std::vector<std::int32_t>> row_cells_;  // per query row: its visible cells by position
    const ggml_tensor* last_stop_ = nullptr;  // the last node the graph stopped after
    index_t manipulated_layers_ = 0;
    std::string error_;                 // set by the callback; decode throws it
    std::vector<double> base_ce_;
    std::vector<float> scratch_;
};

}  // namespace atman::llamacpp
