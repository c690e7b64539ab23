#include "engine/llama_model.hpp"

#include <cstdio>
#include <exception>
#include <limits>
#include <sstream>
#include <utility>

#include "engine/dequant.hpp"

namespace atman::engine {
namespace {

[[noreturn]] void fail(const std::string& message) { throw gguf_error("llama model: " + message); }

std::string shape_string(const std::vector<std::int64_t>& dims) {
    std::ostringstream out;
    out << '[';
    for (std::size_t i = 0; i < dims.size(); ++i) out << (i ? ", " : "") << dims[i];
    out << ']';
    return out.str();
}

index_t positive_count(const gguf_file& file, const std::string& key) {
    if (!file.has(key)) fail("missing metadata key " + key);
    const std::uint64_t value = file.get_uint(key);
    if (value == 0 || value > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max()))
        fail("metadata " + key + " = " + std::to_string(value) + " is out of range");
    return static_cast<index_t>(value);
}

index_t optional_count(const gguf_file& file, const std::string& key, index_t fallback) {
    return file.has(key) ? positive_count(file, key) : fallback;
}

// body(i) for i in [0, n) on the OpenMP threads. An exception must not leave
// the parallel region: the first one is rethrown after it.
template <class Body>
void parallel_for(index_t n, Body&& body) {
    std::exception_ptr failure;
#pragma omp parallel for schedule(dynamic)
    for (index_t i = 0; i < n; ++i) {
        try {
            body(i);
        } catch (...) {
#pragma omp critical(atman_llama_load_failure)
            if (!failure) failure = std::current_exception();
        }
    }
    if (failure) std::rethrow_exception(failure);
}

// One tensor to dequantise into its place in a weight matrix, once all are validated.
struct dequant_job {
    const tensor_info* tensor;
    float* destination;
};

class weight_loader {
public:
    explicit weight_loader(const gguf_file& file) : file_(file) {}

    // Checks that `name` exists with exactly `dims` (dims[0] contiguous) and
    // schedules it to be written at `destination`.
    void add(const std::string& name, std::vector<std::int64_t> dims, float* destination) {
        const tensor_info* tensor = file_.find_tensor(name);
        if (tensor == nullptr) fail("missing tensor " + name);
        if (tensor->dims != dims)
            fail("tensor " + name + " has shape " + shape_string(tensor->dims) + ", expected " +
                 shape_string(dims));
        jobs_.push_back({tensor, destination});
        parameter_count_ += tensor->n_elements;
    }

    // Dequantises all scheduled tensors, in parallel; rethrows the first failure.
    void run() const {
        parallel_for(static_cast<index_t>(jobs_.size()), [&](index_t i) {
            const dequant_job& job = jobs_[static_cast<std::size_t>(i)];
            dequantize(job.tensor->type, job.tensor->data, job.tensor->n_elements, job.destination);
        });
    }

    std::int64_t parameter_count() const { return parameter_count_; }

private:
    const gguf_file& file_;
    std::vector<dequant_job> jobs_;
    std::int64_t parameter_count_ = 0;
};

llama_hparams read_hparams(const gguf_file& file, const std::string& arch) {
    const auto key = [&](const char* suffix) { return arch + "." + suffix; };
    llama_hparams hp;
    hp.n_layer = positive_count(file, key("block_count"));
    hp.n_embd = positive_count(file, key("embedding_length"));
    hp.n_ff = positive_count(file, key("feed_forward_length"));
    hp.n_head = positive_count(file, key("attention.head_count"));
    hp.n_kv_head = optional_count(file, key("attention.head_count_kv"), hp.n_head);
    hp.n_ctx = positive_count(file, key("context_length"));
    if (hp.n_head % hp.n_kv_head != 0)
        fail("head_count " + std::to_string(hp.n_head) + " is not a multiple of head_count_kv " +
             std::to_string(hp.n_kv_head));
    if (!file.has(key("attention.key_length")) && hp.n_embd % hp.n_head != 0)
        fail("embedding_length " + std::to_string(hp.n_embd) + " is not a multiple of head_count " +
             std::to_string(hp.n_head));
    hp.head_dim = optional_count(file, key("attention.key_length"), hp.n_embd / hp.n_head);
    if (optional_count(file, key("attention.value_length"), hp.head_dim) != hp.head_dim)
        fail("attention.value_length differs from attention.key_length (unsupported)");
    if (hp.head_dim % 2 != 0) fail("head dimension " + std::to_string(hp.head_dim) + " is odd");
    if (optional_count(file, key("rope.dimension_count"), hp.head_dim) != hp.head_dim)
        fail("rope.dimension_count differs from the head dimension (partial RoPE is unsupported)");
    if (file.has(key("rope.scaling.type")) && file.get_string(key("rope.scaling.type")) != "none")
        fail("RoPE scaling '" + file.get_string(key("rope.scaling.type")) + "' is unsupported");

    if (file.has(key("rope.freq_base"))) hp.rope_base = file.get_float(key("rope.freq_base"));
    if (!(hp.rope_base > 0)) fail("rope.freq_base must be > 0");
    if (!file.has(key("attention.layer_norm_rms_epsilon")))
        fail("missing metadata key " + key("attention.layer_norm_rms_epsilon"));
    hp.rms_eps = file.get_float(key("attention.layer_norm_rms_epsilon"));
    if (!(hp.rms_eps > 0)) fail("attention.layer_norm_rms_epsilon must be > 0");

    const tensor_info* embedding = file.find_tensor("token_embd.weight");
    if (embedding == nullptr) fail("missing tensor token_embd.weight");
    if (embedding->dims.size() != 2) fail("token_embd.weight is not a matrix");
    hp.n_vocab = static_cast<index_t>(embedding->dims[1]);
    if (file.has(key("vocab_size")) && positive_count(file, key("vocab_size")) != hp.n_vocab)
        fail("vocab_size disagrees with token_embd.weight " + shape_string(embedding->dims));
    return hp;
}

// The weights are allocated from the metadata's sizes before each tensor's
// shape is checked; a file whose tensors cannot hold that many parameters is
// rejected first, so a forged size cannot cause a huge allocation. (In double:
// the product of forged sizes may overflow 64 bits.)
void require_parameters_in_file(const gguf_file& file, const llama_hparams& hp, bool has_output) {
    const double embd = double(hp.n_embd), ff = double(hp.n_ff), q_dim = double(hp.q_dim());
    const double kv_dim = double(hp.kv_dim()), vocab = double(hp.n_vocab);
    const double per_layer = 2 * embd + (q_dim + 2 * kv_dim) * embd + q_dim * embd + 3 * ff * embd;
    const double needed = (has_output ? 2 : 1) * vocab * embd + embd + double(hp.n_layer) * per_layer;
    double present = 0;
    for (const tensor_info& t : file.tensors()) present += double(t.n_elements);
    if (needed > present) {
        char message[160];
        std::snprintf(message, sizeof message,
                      "the hyperparameters need %.4g parameters, the file's tensors hold %.4g", needed, present);
        fail(message);
    }
}

}  // namespace

std::string require_llama_architecture(const gguf_file& file) {
    if (!file.has("general.architecture")) fail("missing metadata key general.architecture");
    const std::string arch = file.get_string("general.architecture");
    if (arch != "llama") fail("architecture '" + arch + "' is not supported (expected 'llama')");
    return arch;
}

llama_model llama_model::load(const gguf_file& file) {
    const std::string arch = require_llama_architecture(file);

    llama_model model;
    model.hparams_ = read_hparams(file, arch);
    model.name_ = file.has("general.name") ? file.get_string("general.name") : arch;
    const llama_hparams& hp = model.hparams_;
    const std::int64_t embd = hp.n_embd, ff = hp.n_ff, vocab = hp.n_vocab;
    const std::int64_t q_dim = hp.q_dim(), kv_dim = hp.kv_dim();

    require_parameters_in_file(file, hp, file.find_tensor("output.weight") != nullptr);
    weight_loader loader(file);
    model.token_embedding_.resize(vocab, embd);
    loader.add("token_embd.weight", {embd, vocab}, model.token_embedding_.data());
    model.output_norm_.resize(embd);
    loader.add("output_norm.weight", {embd}, model.output_norm_.data());
    model.has_output_ = file.find_tensor("output.weight") != nullptr;
    if (model.has_output_) {
        model.output_.resize(vocab, embd);
        loader.add("output.weight", {embd, vocab}, model.output_.data());
    }

    // Each layer's matrices are dequantised in place, then packed, a matrix per
    // thread, each freed once packed: the peak stays a few matrices above the weights.
    struct layer_matrices {
        matrix_rm qkv, attn_output, gate_up, ffn_down;
    };
    std::vector<layer_matrices> loaded(static_cast<std::size_t>(hp.n_layer));
    model.layers_.resize(static_cast<std::size_t>(hp.n_layer));
    for (index_t i = 0; i < hp.n_layer; ++i) {
        llama_layer& layer = model.layers_[static_cast<std::size_t>(i)];
        layer_matrices& m = loaded[static_cast<std::size_t>(i)];
        const std::string prefix = "blk." + std::to_string(i) + ".";
        layer.attn_norm.resize(embd);
        m.qkv.resize(q_dim + 2 * kv_dim, embd);
        m.attn_output.resize(embd, q_dim);
        layer.ffn_norm.resize(embd);
        m.gate_up.resize(2 * ff, embd);
        m.ffn_down.resize(embd, ff);
        loader.add(prefix + "attn_norm.weight", {embd}, layer.attn_norm.data());
        loader.add(prefix + "attn_q.weight", {embd, q_dim}, m.qkv.data());
        loader.add(prefix + "attn_k.weight", {embd, kv_dim}, m.qkv.row(q_dim).data());
        loader.add(prefix + "attn_v.weight", {embd, kv_dim}, m.qkv.row(q_dim + kv_dim).data());
        loader.add(prefix + "attn_output.weight", {q_dim, embd}, m.attn_output.data());
        loader.add(prefix + "ffn_norm.weight", {embd}, layer.ffn_norm.data());
        loader.add(prefix + "ffn_gate.weight", {embd, ff}, m.gate_up.data());
        loader.add(prefix + "ffn_up.weight", {embd, ff}, m.gate_up.row(ff).data());
        loader.add(prefix + "ffn_down.weight", {ff, embd}, m.ffn_down.data());
    }
    loader.run();
    std::vector<std::pair<matrix_rm*, packed_weight*>> to_pack;
    for (std::size_t i = 0; i < loaded.size(); ++i) {
        llama_layer& layer = model.layers_[i];
        layer_matrices& m = loaded[i];
        to_pack.insert(to_pack.end(), {{&m.qkv, &layer.qkv},
                                       {&m.attn_output, &layer.attn_output},
                                       {&m.gate_up, &layer.gate_up},
                                       {&m.ffn_down, &layer.ffn_down}});
    }
    parallel_for(static_cast<index_t>(to_pack.size()), [&](index_t i) {
        auto [matrix, packed] = to_pack[static_cast<std::size_t>(i)];
        *packed = packed_weight(*matrix);
        *matrix = matrix_rm();
    });
    model.parameter_count_ = loader.parameter_count();
    return model;
}

}  // namespace atman::engine
