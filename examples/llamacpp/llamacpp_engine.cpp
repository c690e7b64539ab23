#include "llamacpp_engine.hpp"

#include <atman/error.hpp>
#include <atman/manipulation.hpp>

#include <ggml-backend.h>
#include <ggml.h>
#include <llama.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <thread>

namespace atman::llamacpp {

namespace {

bool starts_with(const char* name, const char* prefix) {
    return std::strncmp(name, prefix, std::strlen(prefix)) == 0;
}

// llama.cpp names the attention softmax "kq_soft_max-<layer>" and the ops that
// lead to it "kq-<layer>", "kq_scaled_1-<layer>", ...; "kqv" is the product after it.
bool is_attention_softmax(const ggml_tensor* t) {
    return t->op == GGML_OP_SOFT_MAX && starts_with(t->name, "kq_soft_max");
}
bool is_pre_softmax_score(const ggml_tensor* t) {
    return starts_with(t->name, "kq") && !starts_with(t->name, "kq_soft_max") && !starts_with(t->name, "kqv");
}

void quiet_log(ggml_log_level level, const char* text, void*) {
    if (level == GGML_LOG_LEVEL_ERROR) std::fputs(text, stderr);
}

// -log softmax(logits)[target] in nats, accumulated in double.
double cross_entropy(const float* logits, std::int32_t n_vocab, std::int32_t target) {
    const float top = *std::max_element(logits, logits + n_vocab);
    double sum = 0;
    for (std::int32_t v = 0; v < n_vocab; ++v) sum += std::exp(double(logits[v]) - top);
    return std::log(sum) + top - double(logits[target]);
}

}  // namespace

void init_llama() {
    llama_log_set(quiet_log, nullptr);
    llama_backend_init();
}

engine::engine(const std::string& model_path, const engine_options& options) {
    detail::require(options.max_length >= 1,
                    "llama.cpp adapter: max_length must be >= 1, got " + std::to_string(options.max_length));
    detail::require(options.rows_per_decode >= 1, "llama.cpp adapter: rows_per_decode must be >= 1, got " +
                                                      std::to_string(options.rows_per_decode));
    init_llama();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;  // the route manipulates host memory only
    if (options.model_params) options.model_params(mp);
    if (mp.n_gpu_layers != 0)
        throw invalid_argument("llama.cpp adapter: n_gpu_layers = " + std::to_string(mp.n_gpu_layers) +
                               " offloads layers to a GPU backend; the eval-callback route manipulates "
                               "scores in host memory only (n_gpu_layers must be 0)");
    model_ = llama_model_load_from_file(model_path.c_str(), mp);
    if (model_ == nullptr) throw error("llama.cpp could not load the model " + model_path);
    const std::string arch = metadata("general.architecture");
    auto refuse = [&](const std::string& what) {
        llama_model_free(model_);
        throw invalid_argument("llama.cpp adapter: the " + arch + " model " + model_path + " has " + what +
                               ", which the eval-callback route cannot manipulate");
    };
    auto refuse_setting = [&](const std::string& what) {
        llama_model_free(model_);
        throw invalid_argument("llama.cpp adapter: " + what);
    };
    if (llama_model_is_recurrent(model_) || llama_model_is_hybrid(model_)) refuse("recurrent layers");

    n_layer_ = llama_model_n_layer(model_);
    n_swa_ = llama_model_n_swa(model_);
    max_length_ = options.max_length;
    // llama.cpp reserves one layer's scores for the largest decode, float32
    // [cells, tokens, heads]: fewer rows per decode where that would pass 1 GiB.
    rows_per_decode_ = options.rows_per_decode;
    const auto score_bytes = [&](index_t rows) {
        return double(1 + rows) * double(max_length_) * double(rows * max_length_) * llama_model_n_head(model_) * 4;
    };
    while (rows_per_decode_ > 1 && score_bytes(rows_per_decode_) > double(1 << 30)) --rows_per_decode_;
    llama_context_params cp = llama_context_default_params();
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.offload_kqv = false;
    cp.op_offload = false;
    // float32 keys and values: with the default float16 cache llama.cpp rounds
    // the queries and the attention probabilities to float16 too, and its CE
    // then moves by up to 0.1 nats with the cells a sequence lands in.
    cp.type_k = cp.type_v = GGML_TYPE_F32;
    const int threads = options.threads > 0 ? options.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    cp.n_threads = cp.n_threads_batch = threads;
    if (options.context_params) options.context_params(cp);
    if (cp.flash_attn_type != LLAMA_FLASH_ATTN_TYPE_DISABLED)
        refuse_setting(std::string("flash attention was requested (flash_attn_type = ") +
                       llama_flash_attn_type_name(cp.flash_attn_type) +
                       "): it fuses the softmax, so the scores never exist for the eval callback to manipulate");
    if (cp.offload_kqv || cp.op_offload)
        refuse_setting("offload_kqv or op_offload puts attention on a GPU backend; the eval-callback route "
                       "manipulates scores in host memory only");
    // The base pass's cells and each row's; one decode is one ubatch, whose
    // tokens keep the batch's order (a unified cache splits it simply).
    const index_t n_ctx = (1 + rows_per_decode_) * max_length_;
    cp.n_ctx = std::uint32_t(n_ctx);
    cp.n_batch = cp.n_ubatch = std::uint32_t(std::max(max_length_, rows_per_decode_ * (max_length_ - 1)));
    cp.n_seq_max = std::uint32_t(1 + rows_per_decode_);
    cp.kv_unified = true;  // seq_cp shares the base pass's cells instead of copying them
    cp.cb_eval = &engine::eval_callback;
    cp.cb_eval_user_data = this;
    ctx_ = llama_init_from_model(model_, cp);
    if (ctx_ == nullptr) {
        llama_model_free(model_);
        throw error("llama.cpp could not create a context of " + std::to_string(n_ctx) + " cells");
    }
}

engine::~engine() {
    llama_free(ctx_);
    llama_model_free(model_);
}

std::string engine::metadata(const char* key) const {
    char buf[512];
    const int n = llama_model_meta_val_str(model_, key, buf, sizeof buf);
    return n < 0 ? std::string() : std::string(buf, std::min<std::size_t>(std::size_t(n), sizeof buf - 1));
}

std::uint64_t engine::parameter_count() const { return llama_model_n_params(model_); }
index_t engine::context_length() const { return llama_model_n_ctx_train(model_); }

void engine::fail(const std::string& message) {
    if (error_.empty()) error_ = "llama.cpp adapter: " + message;
}

bool engine::eval_callback(ggml_tensor* t, bool ask, void* user) {
    return static_cast<engine*>(user)->on_node(t, ask);
}

// ask = true: "do you want this node's result?" (asked before the node runs);
// true makes the scheduler compute the graph up to it and call again with ask
// = false. Stopping after each pre-softmax score op leaves the scores computed
// and the softmax not yet run when the softmax itself is asked about.
bool engine::on_node(ggml_tensor* t, bool ask) {
    if (!observing_) return false;
    if (!ask) {
        last_stop_ = t;
        return error_.empty();  // false aborts the graph
    }
    if (!error_.empty()) return true;  // to abort at the next answer
    if (t->op == GGML_OP_FLASH_ATTN_EXT) {
        fail(std::string("node ") + t->name + " is fused flash attention, whose scores the callback cannot reach");
        return true;
    }
    if (is_attention_softmax(t)) {
        at_softmax(t);
        return !error_.empty();
    }
    return perturbing_ && is_pre_softmax_score(t);
}

// The map of the cache whose mask this is: the k-th mask the graph uses is the
// k-th cache, in the base pass as in a perturbed one (the same graph, shorter).
engine::cell_map& engine::map_for(const ggml_tensor* mask, std::int64_t n_tokens) {
    std::size_t k = 0;
    while (k < maps_.size() && maps_[k].mask != mask) ++k;
    if (k == maps_.size()) {
        const cell_map* base = !perturbing_ ? nullptr : k < base_maps_.size() ? &base_maps_[k] : nullptr;
        if (perturbing_ && base == nullptr) fail("a perturbed pass uses more kv caches than the base pass");
        maps_.push_back({mask, {}, {}, {}});
        map_cells(maps_.back(), base, n_tokens);
    }
    const std::size_t softmax = softmax_maps_.size();
    softmax_maps_.push_back(k);
    if (perturbing_ && (softmax >= base_softmax_maps_.size() || base_softmax_maps_[softmax] != k))
        fail("attention softmax " + std::to_string(softmax) + " uses another kv cache than in the base pass");
    return maps_[k];
}

// The cells each query row of this decode sees, from the mask (0 visible,
// -inf masked), checked against the positions the adapter put there: row i
// holds queries_[i].pos and must see exactly one cell for each position from
// its first to its own, the first being 0 (causal) or the start of its
// sliding window (pos - n_swa + 1); a cell that holds a position before the
// row's prefix in the base pass (base) is that position's, and each row
// writes one new cell, its own. A cell a row sees is its position's for the
// rows after it (those of its sequence; the other sequences' are masked).
void engine::map_cells(cell_map& map, const cell_map* base, std::int64_t n_tokens) {
    const ggml_tensor* mask = map.mask;
    const std::int64_t n_kv = mask->ne[0];
    map.cell_pos.assign(std::size_t(n_kv), -1);
    map.row_first.assign(std::size_t(n_tokens), 0);
    map.row_cells.assign(std::size_t(n_tokens), {});
    for (std::int64_t i = 0; i < n_tokens; ++i) {
        const std::int32_t pos = queries_[std::size_t(i)].pos;
        const index_t prefix = queries_[std::size_t(i)].prefix;
        const float* m = reinterpret_cast<const float*>(static_cast<const char*>(mask->data) + i * mask->nb[1]);
        std::vector<std::int32_t> by_pos(std::size_t(pos) + 1, -1);
        std::int32_t fresh = -1, n_visible = 0, first = pos;
        for (std::int64_t c = 0; c < n_kv; ++c) {
            if (m[c] == -INFINITY) continue;
            if (m[c] != 0.0f) return fail("mask cell " + std::to_string(c) + " holds " + std::to_string(m[c]) +
                                          " (ALiBi or a bias), not 0 or -inf");
            ++n_visible;
            std::int32_t p = map.cell_pos[std::size_t(c)];
            if (p < 0 && base != nullptr && c < std::int64_t(base->cell_pos.size())) {
                const std::int32_t b = base->cell_pos[std::size_t(c)];
                if (b >= 0 && b < prefix) p = b;
            }
            if (p < 0) {
                if (fresh >= 0) return fail("query position " + std::to_string(pos) + " sees two new kv cells");
                fresh = std::int32_t(c);
                p = pos;
            }
            if (p > pos || by_pos[std::size_t(p)] >= 0)
                return fail("query position " + std::to_string(pos) + " sees kv cell " + std::to_string(c) +
                            " of position " + std::to_string(p) + " (a future or repeated position)");
            map.cell_pos[std::size_t(c)] = p;
            by_pos[std::size_t(p)] = std::int32_t(c);
            first = std::min(first, p);
        }
        const std::int32_t window_start = n_swa_ > 0 ? std::max<std::int32_t>(0, pos - std::int32_t(n_swa_) + 1) : 0;
        if (fresh < 0 || n_visible != pos - first + 1 || (first != 0 && first != window_start))
            return fail("query position " + std::to_string(pos) + " sees " + std::to_string(n_visible) +
                        " kv cells from position " + std::to_string(first) +
                        ", not one for each position from 0 or from its sliding window's start (" +
                        std::to_string(window_start) + ") to its own");
        map.row_first[std::size_t(i)] = first;
        map.row_cells[std::size_t(i)].assign(by_pos.begin() + first, by_pos.end());
    }
}

void engine::at_softmax(ggml_tensor* softmax) {
    ggml_tensor* scores = softmax->src[0];
    const ggml_tensor* mask = softmax->src[1];
    if (mask == nullptr) return fail(std::string(softmax->name) + " has no mask");
    if (!ggml_backend_buffer_is_host(scores->buffer) || !ggml_backend_buffer_is_host(mask->buffer))
        return fail(std::string(softmax->name) + " runs in buffer " + ggml_backend_buffer_name(scores->buffer) +
                    ", not host memory (a GPU backend?)");
    if (scores->type != GGML_TYPE_F32 || mask->type != GGML_TYPE_F32)
        return fail(std::string(softmax->name) + ": scores or mask are not float32");
    const std::int64_t n_kv = scores->ne[0], n_tokens = scores->ne[1], n_head = scores->ne[2];
    if (scores->ne[3] != 1 || mask->ne[2] != 1 || mask->ne[3] != 1 || mask->ne[0] != n_kv || mask->ne[1] < n_tokens)
        return fail(std::string(softmax->name) + ": unexpected layout (several kv streams?)");
    float scale = 0, max_bias = 0;
    std::memcpy(&scale, reinterpret_cast<const float*>(softmax->op_params) + 0, sizeof(float));
    std::memcpy(&max_bias, reinterpret_cast<const float*>(softmax->op_params) + 1, sizeof(float));
    if (max_bias != 0.0f) return fail(std::string(softmax->name) + " uses ALiBi");
    if (!(scale > 0.0f)) return fail(std::string(softmax->name) + " has a non-positive scale");
    const cell_map& map = map_for(mask, n_tokens);
    if (!error_.empty() || !perturbing_) return;
    if (last_stop_ != scores)
        return fail(std::string("the scores of ") + softmax->name + " come from op " + ggml_op_name(scores->op) +
                    " (" + scores->name + "), which the callback did not stop after");

    // Rows of the scores: ne0 = kv cells (padded), ne1 = query tokens, ne2 = heads.
    // The softmax computes softmax(scale * scores + mask): multiplicative
    // manipulation of the unscaled scores with the minimum over the same visible
    // keys is the scaled one divided by scale; the additive bias is divided by it.
    // A row's visible keys are the positions row_first.. of its own cache: a
    // key outside a sliding window is neither manipulated nor in the minimum.
    for (std::int64_t h = 0; h < n_head; ++h) {
        for (std::int64_t i = 0; i < n_tokens; ++i) {
            float* row = reinterpret_cast<float*>(static_cast<char*>(scores->data) + i * scores->nb[1] + h * scores->nb[2]);
            const std::vector<std::int32_t>& cells = map.row_cells[std::size_t(i)];
            const float* factors = queries_[std::size_t(i)].factors + map.row_first[std::size_t(i)];
            const index_t n_visible = index_t(cells.size());
            if (mode_ == manipulation_mode::multiplicative) {
                scratch_.resize(std::size_t(n_visible));
                for (index_t p = 0; p < n_visible; ++p) scratch_[std::size_t(p)] = row[cells[std::size_t(p)]];
                manipulate_scores(mode_, scratch_.data(), n_visible, factors);
                for (index_t p = 0; p < n_visible; ++p) row[cells[std::size_t(p)]] = scratch_[std::size_t(p)];
            } else {
                for (index_t p = 0; p < n_visible; ++p) {
                    if (factors[p] != 1.0f) row[cells[std::size_t(p)]] += key_bias(factors[p]) / scale;
                }
            }
        }
    }
    ++manipulated_layers_;
}

void engine::decode(const sequence_view& seq, const std::vector<segment>& segments) {
    queries_.clear();
    for (const segment& part : segments)
        for (index_t pos = part.from; pos < seq.length; ++pos) queries_.push_back({std::int32_t(pos), part.from, part.factors});
    const auto n = std::int32_t(queries_.size());
    llama_batch batch = llama_batch_init(n, 0, 1);
    std::int32_t i = 0;
    for (const segment& part : segments) {
        for (index_t pos = part.from; pos < seq.length; ++pos, ++i) {
            batch.token[i] = seq.tokens[pos];
            batch.pos[i] = std::int32_t(pos);
            batch.n_seq_id[i] = 1;
            batch.seq_id[i][0] = part.seq_id;
            batch.logits[i] = pos >= seq.first_scored ? 1 : 0;
        }
    }
    batch.n_tokens = n;
    error_.clear();
    observing_ = true;
    maps_.clear();
    softmax_maps_.clear();
    last_stop_ = nullptr;
    manipulated_layers_ = 0;
    const std::int32_t rc = llama_decode(ctx_, batch);
    observing_ = false;
    llama_batch_free(batch);
    if (!error_.empty()) throw invalid_argument(error_);
    if (rc != 0) throw error("llama_decode failed with code " + std::to_string(rc));
    if (maps_.empty()) throw invalid_argument("llama.cpp adapter: the graph has no attention softmax the callback could see");
    if (perturbing_ && manipulated_layers_ != n_layer_)
        throw invalid_argument("llama.cpp adapter: manipulated " + std::to_string(manipulated_layers_) + " of " +
                               std::to_string(n_layer_) + " layers");
    const std::int32_t n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model_));
    std::int32_t first = 0;  // the segment's first token in the batch
    for (const segment& part : segments) {
        for (index_t t = 0; t < seq.n_targets; ++t) {
            const index_t pos = seq.first_scored + t;
            if (pos < part.from) continue;
            const float* logits = llama_get_logits_ith(ctx_, first + std::int32_t(pos - part.from));
            if (logits == nullptr) throw error("llama.cpp returned no logits for position " + std::to_string(pos));
            part.ce[t] = cross_entropy(logits, n_vocab, seq.targets[t]);
        }
        first += std::int32_t(seq.length - part.from);
    }
}

void engine::base_pass(const sequence_view& seq, double* ce) {
    detail::require(seq.length <= max_length_, "llama.cpp adapter: sequence of " + std::to_string(seq.length) +
                                                   " tokens exceeds max_length " + std::to_string(max_length_));
    llama_memory_clear(llama_get_memory(ctx_), true);
    perturbing_ = false;
    base_maps_.clear();
    base_softmax_maps_.clear();
    decode(seq, {{0, 0, nullptr, ce}});
    base_maps_ = maps_;
    base_softmax_maps_ = softmax_maps_;
    base_ce_.assign(ce, ce + seq.n_targets);
}

// Rows r0.. go to sequences 1..: each first drops what its sequence held and
// shares the base pass's cells of positions < first_affected.
void engine::perturbed_pass(const sequence_view& seq, const batch_view& batch, double* ce) {
    llama_memory_t memory = llama_get_memory(ctx_);
    mode_ = batch.mode;
    perturbing_ = true;
    std::vector<segment> segments;
    for (index_t r0 = 0; r0 < batch.n_rows; r0 += rows_per_decode_) {
        segments.clear();
        for (index_t r = r0; r < std::min(batch.n_rows, r0 + rows_per_decode_); ++r) {
            const row_view& row = batch.rows[r];
            const int seq_id = int(1 + r - r0);
            const index_t from = std::min(row.first_affected, seq.length - 1);
            double* out = ce + r * seq.n_targets;
            std::copy(base_ce_.begin(), base_ce_.end(), out);  // targets before `from` are unchanged
            llama_memory_seq_rm(memory, seq_id, -1, -1);
            llama_memory_seq_cp(memory, 0, seq_id, 0, std::int32_t(from));
            segments.push_back({seq_id, from, row.key_factors, out});
        }
        try {
            decode(seq, segments);
        } catch (...) {
            perturbing_ = false;
            throw;
        }
    }
    perturbing_ = false;
    for (index_t s = 1; s <= rows_per_decode_; ++s) llama_memory_seq_rm(memory, std::int32_t(s), -1, -1);
}

std::vector<std::int32_t> engine::generate(const std::vector<std::int32_t>& prompt, index_t max_new_tokens,
                                           const std::vector<std::int32_t>& stop_ids) {
    detail::require(!prompt.empty(), "llama.cpp adapter: generate needs a prompt");
    const llama_vocab* vocab = llama_model_get_vocab(model_);
    const std::int32_t n_vocab = llama_vocab_n_tokens(vocab);
    llama_memory_clear(llama_get_memory(ctx_), true);
    std::vector<std::int32_t> tokens = prompt, out;
    llama_batch batch = llama_batch_get_one(tokens.data(), std::int32_t(tokens.size()));
    while (true) {
        if (llama_decode(ctx_, batch) != 0) throw error("llama_decode failed while generating");
        const float* logits = llama_get_logits_ith(ctx_, -1);
        const std::int32_t next = std::int32_t(std::max_element(logits, logits + n_vocab) - logits);
        if (llama_vocab_is_eog(vocab, next) || std::find(stop_ids.begin(), stop_ids.end(), next) != stop_ids.end())
            break;
        out.push_back(next);
        if (index_t(out.size()) >= max_new_tokens || index_t(prompt.size() + out.size()) >= max_length_) break;
        tokens.push_back(next);
        batch = llama_batch_get_one(&tokens.back(), 1);
    }
    llama_memory_clear(llama_get_memory(ctx_), true);
    return out;
}

}  // namespace atman::llamacpp
