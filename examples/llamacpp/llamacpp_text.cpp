#include "llamacpp_text.hpp"

#include <atman/error.hpp>

#include <llama.h>

#include <vector>

#include "engine/chat_template.hpp"
#include "engine/tokenizer.hpp"
#include "llamacpp_engine.hpp"

namespace atman::llamacpp {

namespace {

// A text llama.cpp writes into a buffer: call(buf, size) returns the text's
// length, or minus it when the buffer is too small.
template <class Call>
std::string sized_text(Call call) {
    std::string out(64, '\0');
    int n = call(out.data(), int(out.size()));
    if (n < 0) {
        out.resize(std::size_t(-n));
        n = call(out.data(), int(out.size()));
    }
    if (n < 0) throw error("llama.cpp returned no text");
    out.resize(std::size_t(n));
    return out;
}

}  // namespace

tokenizer::tokenizer(const std::string& model_path) {
    init_llama();
    llama_model_params mp = llama_model_default_params();
    mp.vocab_only = true;
    mp.n_gpu_layers = 0;
    llama_model* model = llama_model_load_from_file(model_path.c_str(), mp);
    if (model == nullptr) throw error("llama.cpp could not load the vocabulary of " + model_path);
    model_.reset(model, llama_model_free);
}

const llama_vocab* tokenizer::vocab() const { return llama_model_get_vocab(model_.get()); }

std::vector<std::int32_t> tokenizer::ids_of(std::string_view text, bool parse_special) const {
    std::vector<llama_token> ids(text.size() + 8);
    const auto n_text = std::int32_t(text.size());
    int n = llama_tokenize(vocab(), text.data(), n_text, ids.data(), std::int32_t(ids.size()), false, parse_special);
    if (n < 0) {
        ids.resize(std::size_t(-n));
        n = llama_tokenize(vocab(), text.data(), n_text, ids.data(), std::int32_t(ids.size()), false, parse_special);
    }
    if (n < 0) throw error("llama.cpp could not tokenise the text");
    ids.resize(std::size_t(n));
    return ids;
}

// Each token's piece must be the text's next bytes; a piece that starts with
// a space llama.cpp added (SentencePiece's space prefix) matches without it.
std::vector<atman::engine::token> tokenizer::encode(std::string_view text, bool parse_special) const {
    std::vector<atman::engine::token> out;
    index_t at = 0;
    for (const std::int32_t id : ids_of(text, parse_special)) {
        const std::string piece = token_bytes(id);
        const std::string_view rest = text.substr(std::size_t(at));
        index_t length = -1;
        if (rest.substr(0, piece.size()) == piece) {
            length = index_t(piece.size());
        } else if (!piece.empty() && piece[0] == ' ' && rest.substr(0, piece.size() - 1) == piece.substr(1)) {
            length = index_t(piece.size()) - 1;
        }
        if (length < 0)
            throw invalid_argument("llama.cpp's token " + std::to_string(id) + " ('" + piece +
                                   "') does not match the text at byte " + std::to_string(at) +
                                   ", so it has no byte range");
        out.push_back({id, at, at + length});
        at += length;
    }
    if (at != index_t(text.size()))
        throw invalid_argument("llama.cpp's tokens cover " + std::to_string(at) + " of the text's " +
                               std::to_string(text.size()) + " bytes");
    return out;
}

std::string tokenizer::token_bytes(std::int32_t id) const {
    if (id < 0 || id >= llama_vocab_n_tokens(vocab()))
        throw invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary of " +
                               std::to_string(llama_vocab_n_tokens(vocab())));
    return sized_text([&](char* buf, int n) { return llama_token_to_piece(vocab(), id, buf, n, 0, true); });
}

std::string tokenizer::decode(const std::vector<std::int32_t>& ids) const {
    std::string out;
    for (const std::int32_t id : ids) out += token_bytes(id);
    return out;
}

std::int32_t tokenizer::bos_id() const { return llama_vocab_bos(vocab()); }
std::int32_t tokenizer::eos_id() const { return llama_vocab_eos(vocab()); }
bool tokenizer::add_bos() const { return llama_vocab_get_add_bos(vocab()); }

bool tokenizer::is_special(std::int32_t id) const {
    if (id < 0 || id >= llama_vocab_n_tokens(vocab())) return false;
    const int special = LLAMA_TOKEN_ATTR_CONTROL | LLAMA_TOKEN_ATTR_USER_DEFINED | LLAMA_TOKEN_ATTR_UNKNOWN;
    return (int(llama_vocab_get_attr(vocab(), id)) & special) != 0;
}

std::int32_t tokenizer::find(std::string_view token_text) const {
    if (token_text.empty()) return -1;
    const std::vector<std::int32_t> ids = ids_of(token_text, true);
    return ids.size() == 1 && token_bytes(ids[0]) == token_text ? ids[0] : -1;
}

std::string tokenizer::chat_template_source() const {
    const char* source = llama_model_chat_template(model_.get(), nullptr);
    return source == nullptr ? std::string() : std::string(source);
}

chat_renderer::chat_renderer(const tokenizer& tok) : source_(tok.chat_template_source()) {
    const std::string hint = "; pass --raw to use the prompt as it is, without a chat template";
    if (source_.empty()) throw invalid_argument("the model has no chat template (tokenizer.chat_template)" + hint);
    const llama_chat_message probe{"user", "x"};
    if (llama_chat_apply_template(source_.c_str(), &probe, 1, true, nullptr, 0) < 0)
        throw invalid_argument("llama.cpp does not know the model's chat template, starting with '" +
                               source_.substr(0, 60) + "'" + hint);
}

atman::engine::chat_prompt chat_renderer::render(std::string_view user, std::string_view system,
                                          bool add_generation_prompt) const {
    const std::string user_text(user), system_text(system);
    std::vector<llama_chat_message> messages;
    if (!system_text.empty()) messages.push_back({"system", system_text.c_str()});
    messages.push_back({"user", user_text.c_str()});
    // It returns the rendering's full length, which may exceed the buffer.
    const auto apply = [&](std::string& buf) {
        return llama_chat_apply_template(source_.c_str(), messages.data(), messages.size(), add_generation_prompt,
                                         buf.data(), std::int32_t(buf.size()));
    };
    atman::engine::chat_prompt out;
    out.text.resize(2 * (user.size() + system.size()) + 256);
    std::int32_t n = apply(out.text);
    if (n > std::int32_t(out.text.size())) {
        out.text.resize(std::size_t(n));
        n = apply(out.text);
    }
    if (n < 0) throw error("llama.cpp could not render the chat template");
    out.text.resize(std::size_t(n));
    // The user's turn is the last message: its text's last occurrence (some
    // templates trim it, e.g. Gemma's).
    std::string_view needle = user;
    while (!needle.empty() && (needle.front() == ' ' || needle.front() == '\n')) needle.remove_prefix(1);
    while (!needle.empty() && (needle.back() == ' ' || needle.back() == '\n')) needle.remove_suffix(1);
    const std::size_t at = out.text.rfind(needle);
    if (needle.empty() || at == std::string::npos)
        throw invalid_argument("llama.cpp's rendering of the chat template does not contain the prompt's text");
    out.user_ranges.push_back({index_t(at), index_t(at + needle.size())});
    return out;
}

prompt_text load_prompt_text(const atman::engine::gguf_file& file, const std::string& model_path, bool raw) {
    prompt_text out;
    if (atman::engine::tokenizer::supports(file)) {
        out.tok = std::make_unique<atman::engine::tokenizer>(file);
        if (!raw) out.tmpl = std::make_unique<atman::engine::chat_template>(atman::engine::chat_template::from_gguf(file));
        out.by = "atman";
    } else {
        auto tok = std::make_unique<tokenizer>(model_path);
        if (!raw) out.tmpl = std::make_unique<chat_renderer>(*tok);
        out.tok = std::move(tok);
        out.by = "llama.cpp";
    }
    return out;
}

}  // namespace atman::llamacpp
