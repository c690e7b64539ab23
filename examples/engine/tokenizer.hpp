#pragma once
// The model's own byte-level BPE tokenizer, built from a GGUF file's
// tokenizer metadata, producing the same ids as llama.cpp plus the byte range
// of every token in the input text (a text_codec).

#include <atman/config.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gguf.hpp"
#include "text_codec.hpp"

namespace atman::engine {

// GGUF tokenizer.ggml.token_type values 1..6.
enum class token_kind { normal = 1, unknown, control, user_defined, unused, byte };

// The tokenizer metadata of a model in plain form; from_gguf reads it, tests
// may also write a small one by hand.
struct vocabulary {
    std::string pre_tokenizer;         // tokenizer.ggml.pre: smollm, gpt-2, default (or empty), llama3
    std::vector<std::string> tokens;   // GGUF token strings (byte-level encoded)
    std::vector<token_kind> kinds;     // one per token
    std::vector<std::string> merges;   // "left right", highest priority first
    std::int32_t bos_id = -1, eos_id = -1;
    bool add_bos = false;

    // Throws gguf_error naming a missing key or a value of the wrong type.
    static vocabulary from_gguf(const gguf_file& file);
};

class tokenizer : public text_codec {
public:
    // Reads and validates the metadata; any problem -> gguf_error naming it.
    explicit tokenizer(const gguf_file& file);
    // Validates the vocabulary; any problem -> atman::invalid_argument naming it.
    explicit tokenizer(vocabulary vocab);
    // Whether the file's tokenizer is one this class implements: byte-level
    // BPE ('gpt2') with a known pre-tokenizer.
    static bool supports(const gguf_file& file);

    // Throws atman::invalid_argument naming the byte offset on invalid UTF-8.
    // parse_special: occurrences of special token texts (e.g. "<|im_start|>")
    // become those tokens; otherwise they are ordinary text. User-defined
    // tokens are matched either way, as llama.cpp does. A byte the vocabulary
    // has no token for (SmolLM2 lacks 21, e.g. 0x04, 0xC0, 0xF5-0xFF) is
    // dropped, as llama.cpp does; the next token's range absorbs it.
    std::vector<token> encode(std::string_view text, bool parse_special = false) const override;

    // The exact bytes the ids stand for; an id out of range -> invalid_argument.
    std::string decode(const std::vector<std::int32_t>& ids) const override;
    // The bytes of one token (may be a partial UTF-8 sequence).
    std::string token_bytes(std::int32_t id) const override;

    index_t vocab_size() const;
    std::int32_t bos_id() const override;
    std::int32_t eos_id() const override;
    bool add_bos() const override;
    // Control, user-defined and unknown tokens: written as their text, never
    // produced by BPE.
    bool is_special(std::int32_t id) const override;
    // The id of a GGUF token string, or -1 if absent.
    std::int32_t find(std::string_view token_text) const override;

private:
    struct model;
    std::shared_ptr<const model> model_;  // immutable; copies share it
};

}  // namespace atman::engine
