#pragma once
// What turning a prompt into an explain request needs of a tokenizer
// (prompt.hpp): atman's own byte-level BPE (tokenizer.hpp) or another
// engine's, such as llama.cpp's for vocabularies atman's lacks
// (examples/llamacpp/llamacpp_text.hpp).

#include <atman/config.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace atman::engine {

// One token of an encoded text: its id and the bytes [start, end) it covers.
// The tokens of one encode() tile the text exactly.
struct token {
    std::int32_t id = 0;
    index_t start = 0, end = 0;
};

class text_codec {
public:
    virtual ~text_codec() = default;

    // parse_special: texts of special tokens (e.g. "<|im_start|>") become
    // those tokens; otherwise they are ordinary text.
    virtual std::vector<token> encode(std::string_view text, bool parse_special) const = 0;
    // The bytes the ids stand for, and those of one token (may be a partial
    // UTF-8 sequence); an id out of range -> invalid_argument.
    virtual std::string decode(const std::vector<std::int32_t>& ids) const = 0;
    virtual std::string token_bytes(std::int32_t id) const = 0;
    virtual std::int32_t bos_id() const = 0;  // -1: none
    virtual std::int32_t eos_id() const = 0;  // -1: none
    virtual bool add_bos() const = 0;
    // Control, user-defined and unknown tokens: written as their text.
    virtual bool is_special(std::int32_t id) const = 0;
    // The id of a token written as token_text, or -1 if absent.
    virtual std::int32_t find(std::string_view token_text) const = 0;

    // The ids of encode(text) without special tokens parsed.
    std::vector<std::int32_t> encode_ids(std::string_view text, bool parse_special = false) const {
        std::vector<std::int32_t> ids;
        for (const token& t : encode(text, parse_special)) ids.push_back(t.id);
        return ids;
    }

protected:
    text_codec() = default;
    text_codec(const text_codec&) = default;
    text_codec& operator=(const text_codec&) = default;
};

}  // namespace atman::engine
