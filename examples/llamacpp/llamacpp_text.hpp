#pragma once
// llama.cpp's tokenizer and chat template as atman's prompt builders take them
// (engine/text_codec.hpp, engine/chat_format.hpp), for models whose vocabulary
// atman's own tokenizer lacks (SentencePiece models such as Gemma 3).
//
// Byte offsets: llama.cpp gives ids only, so encode() aligns each token's
// piece (llama_token_to_piece) with the text; the tokens tile the text as
// atman's tokenizer's do, and a token that does not match is an error naming
// it. The template: llama_chat_apply_template renders the model's template
// (llama.cpp's built-in list, no Jinja); the user's text is found in the
// rendering.

#include <memory>
#include <string>
#include <string_view>

#include "engine/chat_format.hpp"
#include "engine/gguf.hpp"
#include "engine/text_codec.hpp"

struct llama_model;
struct llama_vocab;

namespace atman::llamacpp {

class tokenizer : public atman::engine::text_codec {
public:
    // Loads only the vocabulary of the GGUF at model_path; atman::error when
    // llama.cpp cannot.
    explicit tokenizer(const std::string& model_path);

    std::vector<atman::engine::token> encode(std::string_view text, bool parse_special = false) const override;
    std::string decode(const std::vector<std::int32_t>& ids) const override;
    std::string token_bytes(std::int32_t id) const override;
    std::int32_t bos_id() const override;
    std::int32_t eos_id() const override;
    bool add_bos() const override;
    bool is_special(std::int32_t id) const override;
    std::int32_t find(std::string_view token_text) const override;

    // The model's default chat template (its Jinja source); empty when it has none.
    std::string chat_template_source() const;

private:
    std::vector<std::int32_t> ids_of(std::string_view text, bool parse_special) const;
    const llama_vocab* vocab() const;

    std::shared_ptr<llama_model> model_;  // vocabulary only
};

class chat_renderer : public atman::engine::chat_format {
public:
    // The model's template as llama.cpp renders it; atman::invalid_argument
    // suggesting --raw when the model has none or llama.cpp does not know it.
    explicit chat_renderer(const tokenizer& tok);

    // An empty system message is left out (llama.cpp renders no default one).
    atman::engine::chat_prompt render(std::string_view user, std::string_view system = {},
                               bool add_generation_prompt = true) const override;
    // Empty: llama.cpp's generation stops at the vocabulary's end-of-generation tokens.
    std::string end_of_turn() const override { return {}; }

private:
    std::string source_;
};

// The tokenizer and chat template of a model run in llama.cpp: atman's own
// (engine/tokenizer.hpp, engine/chat_template.hpp) where atman's tokenizer
// supports the vocabulary, so the tokens are the reference engine's too;
// llama.cpp's otherwise. raw: no template.
struct prompt_text {
    std::unique_ptr<const atman::engine::text_codec> tok;
    std::unique_ptr<const atman::engine::chat_format> tmpl;  // nullptr: raw
    std::string by;                                    // "atman" or "llama.cpp"
};
prompt_text load_prompt_text(const atman::engine::gguf_file& file, const std::string& model_path, bool raw);

}  // namespace atman::llamacpp
