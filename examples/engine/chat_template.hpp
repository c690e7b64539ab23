#pragma once
// The model's chat template: recognised by family from the Jinja source in
// tokenizer.chat_template, rendered natively for one user turn (a chat_format).

#include <atman/config.hpp>

#include <string>
#include <string_view>

#include "chat_format.hpp"
#include "gguf.hpp"

namespace atman::engine {

class chat_template : public chat_format {
public:
    enum class family_kind { chatml, llama3, zephyr };

    // Reads tokenizer.chat_template (and the EOS token text, which Zephyr
    // templates end turns with). A missing or unrecognised template throws
    // atman::invalid_argument suggesting --raw.
    static chat_template from_gguf(const gguf_file& file);
    // The recogniser on its own: `source` is the Jinja text, `eos_text` the
    // EOS token's text. Throws like from_gguf.
    static chat_template from_source(std::string_view source, std::string_view eos_text = {});

    // One user turn after the system message (empty: the template's default
    // system message, if it has one). Texts are inserted verbatim.
    chat_prompt render(std::string_view user, std::string_view system = {},
                       bool add_generation_prompt = true) const override;
    std::string end_of_turn() const override;  // the stop text for generation, e.g. "<|im_end|>"
    std::string family() const;       // "chatml", "llama3" or "zephyr"
    std::string default_system() const;

private:
    chat_template(family_kind kind, std::string default_system, std::string end_of_turn);

    family_kind kind_;
    std::string default_system_;
    std::string end_of_turn_;
};

}  // namespace atman::engine
