#pragma once
// atman's adapter contract (atman/adapter.hpp) on top of an unmodified
// llama.cpp, through its public C API: the eval callback
// (llama_context_params.cb_eval) stops the CPU graph before each layer's
// attention softmax ("kq_soft_max-<layer>", flash attention off) and
// manipulates the pre-softmax scores in place. docs/llama-cpp.md explains the
// route, the tensor layout and the cell-to-position map.
//
// Sliding-window layers (Gemma 3) are manipulated through their own cache's
// cells and mask: a key outside a query's window is not visible to it.
//
// What the route cannot manipulate is refused with a message naming it: flash
// attention, a GPU or other non-host buffer, recurrent or hybrid models,
// ALiBi, a mask that is neither causal nor a causal sliding window, scores
// that reach the softmax through an op the callback cannot stop before.

#include <atman/adapter.hpp>
#include <atman/config.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

struct llama_model;
struct llama_context;
struct llama_model_params;
struct llama_context_params;
struct ggml_tensor;

namespace atman::llamacpp {

struct engine_options {
    engine_options() = default;
    engine_options(index_t max_length_, int threads_) : max_length(max_length_), threads(threads_) {}

    index_t max_length = 0;       // longest sequence to run
    int threads = 0;              // 0: the hardware's thread count
    // Perturbed rows decoded together, one llama.cpp sequence each; the
    // context holds (1 + rows_per_decode) x max_length cells. Fewer where one
    // layer's scores of such a decode would take more than 1 GiB. 1 by
    // default: in one unified cache every token scores every cell, so R rows
    // per decode cost R times the attention, and measured no faster
    // (docs/llama-cpp.md).
    index_t rows_per_decode = 1;
    // The caller's own llama.cpp settings, applied over the adapter's defaults
    // (CPU only, float32 KV cache, flash attention off). Those the route cannot
    // run are refused: flash attention, GPU offload. The context's size,
    // batch, sequences, cache layout and eval callback stay the adapter's.
    std::function<void(llama_model_params&)> model_params;
    std::function<void(llama_context_params&)> context_params;
};

// Quiets llama.cpp's log (errors still reach stderr) and initialises its
// backends; every object of this adapter calls it before touching llama.cpp.
void init_llama();

class engine {
public:
    // Loads the GGUF at model_path on the CPU. Throws atman::invalid_argument
    // for a model the route cannot manipulate, atman::error when llama.cpp fails.
    engine(const std::string& model_path, const engine_options& options);
    ~engine();
    engine(const engine&) = delete;
    engine& operator=(const engine&) = delete;

    // The adapter contract. Perturbed rows run rows_per_decode at a time, each
    // as a sequence of its own that shares the base pass's KV cells for
    // positions < first_affected.
    void base_pass(const sequence_view& seq, double* ce);
    void perturbed_pass(const sequence_view& seq, const batch_view& batch, double* ce);

    // Greedy decoding: the new tokens, stopping after max_new_tokens, at the
    // context's end, at a token of stop_ids or at llama.cpp's end-of-generation
    // tokens (not included).
    std::vector<std::int32_t> generate(const std::vector<std::int32_t>& prompt, index_t max_new_tokens,
                                       const std::vector<std::int32_t>& stop_ids);
    std::string metadata(const char* key) const;  // "" when absent
    std::uint64_t parameter_count() const;
    index_t context_length() const;  // the model's training context
    // Layers whose scores the last manipulated pass changed (a check: all of them).
    index_t manipulated_layers() const { return manipulated_layers_; }
    index_t rows_per_decode() const { return rows_per_decode_; }

private:
    static bool eval_callback(ggml_tensor* t, bool ask, void* user);
    bool on_node(ggml_tensor* t, bool ask);
    void at_softmax(ggml_tensor* softmax);
    // The kv cells of one cache as one decode's mask shows them.
    struct cell_map {
        const ggml_tensor* mask = nullptr;
        std::vector<std::int32_t> cell_pos;   // position each cell holds, -1: not visible to any row
        std::vector<std::int32_t> row_first;  // per query row: the first position it sees (0, or its window's)
        std::vector<std::vector<std::int32_t>> row_cells;  // per query row: the cells of row_first.., by position
    };
    cell_map& map_for(const ggml_tensor* mask, std::int64_t n_tokens);
    void map_cells(cell_map& map, const cell_map* base, std::int64_t n_tokens);
    // One sequence of a decode: positions [from, seq.length) of seq on llama
    // sequence seq_id, with the row's key factors (nullptr: the base pass);
    // the CE of the targets at positions >= from go to ce (the others untouched).
    struct segment {
        int seq_id;
        index_t from;
        const float* factors;
        double* ce;
    };
    void decode(const sequence_view& seq, const std::vector<segment>& segments);
    void fail(const std::string& message);

    llama_model* model_ = nullptr;
    llama_context* ctx_ = nullptr;
    index_t max_length_ = 0, rows_per_decode_ = 1, n_layer_ = 0, n_swa_ = 0;

    // The decode in flight, as the callback sees it.
    bool observing_ = false;            // a base or perturbed decode: check and map the layout
    manipulation_mode mode_ = manipulation_mode::multiplicative;
    bool perturbing_ = false;           // a perturbed decode (else the base pass)
    // Per token of the decode: its position, the positions before which its
    // sequence shares the base pass's cells, and its row's factors by position.
    struct query {
        std::int32_t pos;
        index_t prefix;
        const float* factors;
    };
    std::vector<query> queries_;
    // One map per kv cache (a model with sliding-window layers has two, each
    // with its own mask), in the order the graph first uses their masks.
    std::vector<cell_map> maps_, base_maps_;
    std::vector<std::size_t> softmax_maps_, base_softmax_maps_;  // the map of each softmax, in graph order
    const ggml_tensor* last_stop_ = nullptr;  // the last node the graph stopped after
    index_t manipulated_layers_ = 0;
    std::string error_;                 // set by the callback; decode throws it
    std::vector<double> base_ce_;
    std::vector<float> scratch_;
};

}  // namespace atman::llamacpp
