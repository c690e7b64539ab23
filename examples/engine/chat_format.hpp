#pragma once
// What a prompt builder (prompt.hpp) needs of a chat template: one user turn
// rendered with the byte ranges of the user's text, and the end-of-turn text.
// atman's own recogniser (chat_template.hpp) or another engine's renderer,
// such as llama.cpp's (examples/llamacpp/llamacpp_text.hpp).

#include <atman/config.hpp>

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace atman::engine {

struct chat_prompt {
    std::string text;                                      // ends with the generation prompt
    std::vector<std::pair<index_t, index_t>> user_ranges;  // byte ranges [start, end) of user text
};

class chat_format {
public:
    virtual ~chat_format() = default;

    // One user turn after the system message (empty: the template's default
    // system message, if it has one).
    virtual chat_prompt render(std::string_view user, std::string_view system = {},
                               bool add_generation_prompt = true) const = 0;
    // The stop text for generation, e.g. "<|im_end|>"; empty when unknown.
    virtual std::string end_of_turn() const = 0;

protected:
    chat_format() = default;
    chat_format(const chat_format&) = default;
    chat_format& operator=(const chat_format&) = default;
};

}  // namespace atman::engine
