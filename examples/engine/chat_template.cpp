#include "chat_template.hpp"

#include <atman/error.hpp>

namespace atman::engine {
namespace {

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

[[noreturn]] void unrecognised(const std::string& why) {
    throw invalid_argument(why + "; pass --raw to use the prompt as it is, without a chat template");
}

// A ChatML template that writes a fixed system turn when the conversation has
// none carries it as a string literal: "<|im_start|>system" + newline (real or
// escaped) + the message + "<|im_end|>". Anything that looks like template
// code in between means there is no fixed default.
std::string chatml_default_system(std::string_view source) {
    constexpr std::string_view header = "<|im_start|>system";
    for (auto at = source.find(header); at != std::string_view::npos; at = source.find(header, at + 1)) {
        std::string_view rest = source.substr(at + header.size());
        if (rest.substr(0, 1) == "\n") rest.remove_prefix(1);
        else if (rest.substr(0, 2) == "\\n") rest.remove_prefix(2);
        else continue;
        const auto end = rest.find("<|im_end|>");
        if (end == std::string_view::npos) continue;
        const std::string_view message = rest.substr(0, end);
        if (message.find_first_of("'\"{}+") == std::string_view::npos) return std::string(message);
    }
    return {};
}

struct turn_markup {
    std::string before_role, after_role, after_content;
};

turn_markup markup(chat_template::family_kind kind, const std::string& end_of_turn) {
    switch (kind) {
        case chat_template::family_kind::chatml: return {"<|im_start|>", "\n", end_of_turn + "\n"};
        case chat_template::family_kind::llama3: return {"<|start_header_id|>", "<|end_header_id|>\n\n", end_of_turn};
        case chat_template::family_kind::zephyr: return {"<|", "|>\n", end_of_turn + "\n"};
    }
    return {};
}

}  // namespace

chat_template::chat_template(family_kind kind, std::string default_system, std::string end_of_turn)
    : kind_(kind), default_system_(std::move(default_system)), end_of_turn_(std::move(end_of_turn)) {}

chat_template chat_template::from_source(std::string_view source, std::string_view eos_text) {
    if (source.empty()) unrecognised("the model has an empty chat template");
    if (contains(source, "<|im_start|>") && contains(source, "<|im_end|>"))
        return {family_kind::chatml, chatml_default_system(source), "<|im_end|>"};
    if (contains(source, "<|start_header_id|>") && contains(source, "<|eot_id|>"))
        return {family_kind::llama3, {}, "<|eot_id|>"};
    if (contains(source, "<|user|>") && contains(source, "<|assistant|>")) {
        // Zephyr templates end each turn with the EOS token, by name or as "</s>".
        if (contains(source, "eos_token")) {
            if (eos_text.empty()) unrecognised("the Zephyr-style chat template ends turns with an EOS token the model lacks");
            return {family_kind::zephyr, {}, std::string(eos_text)};
        }
        if (contains(source, "</s>")) return {family_kind::zephyr, {}, "</s>"};
    }
    unrecognised("unrecognised chat template (known: ChatML, Llama-3, Zephyr) starting with '" +
                 std::string(source.substr(0, 60)) + "'");
}

chat_template chat_template::from_gguf(const gguf_file& file) {
    constexpr const char* key = "tokenizer.chat_template";
    if (!file.has(key)) unrecognised("the model has no chat template (" + std::string(key) + ")");
    std::string eos_text;
    if (file.has("tokenizer.ggml.eos_token_id") && file.has("tokenizer.ggml.tokens")) {
        const auto tokens = file.get_string_array("tokenizer.ggml.tokens");
        const auto eos = file.get_uint("tokenizer.ggml.eos_token_id");
        if (eos < tokens.size()) eos_text = tokens[eos];
    }
    return from_source(file.get_string(key), eos_text);
}

chat_prompt chat_template::render(std::string_view user, std::string_view system,
                                  bool add_generation_prompt) const {
    const turn_markup m = markup(kind_, end_of_turn_);
    chat_prompt prompt;
    const auto add_turn = [&](std::string_view role, std::string_view content) {
        prompt.text.append(m.before_role).append(role).append(m.after_role);
        const auto start = static_cast<index_t>(prompt.text.size());
        prompt.text.append(content);
        prompt.text.append(m.after_content);
        return std::make_pair(start, start + static_cast<index_t>(content.size()));
    };
    const std::string_view system_text = system.empty() ? std::string_view(default_system_) : system;
    if (!system_text.empty()) add_turn("system", system_text);
    prompt.user_ranges.push_back(add_turn("user", user));
    if (add_generation_prompt) prompt.text.append(m.before_role).append("assistant").append(m.after_role);
    return prompt;
}

std::string chat_template::end_of_turn() const { return end_of_turn_; }
std::string chat_template::default_system() const { return default_system_; }

std::string chat_template::family() const {
    switch (kind_) {
        case family_kind::chatml: return "chatml";
        case family_kind::llama3: return "llama3";
        case family_kind::zephyr: return "zephyr";
    }
    return "?";
}

}  // namespace atman::engine
