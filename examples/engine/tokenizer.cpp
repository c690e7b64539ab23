#include "tokenizer.hpp"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <array>
#include <queue>
#include <unordered_map>
#include <utility>

#include <atman/error.hpp>

#include "utf8.hpp"

namespace atman::engine {
namespace {

// ---------------------------------------------------------------- byte level
// Byte-level BPE writes every byte as one printable code point: printable
// Latin-1 bytes stand for themselves, the other 68 bytes for U+0100.. in
// byte order (the GPT-2 byte-to-unicode table).
std::array<std::uint32_t, 256> byte_code_points() {
    std::array<std::uint32_t, 256> table{};
    std::uint32_t next_unprintable = 256;
    for (std::uint32_t byte = 0; byte < 256; ++byte) {
        const bool printable = (byte >= 0x21 && byte <= 0x7E) || (byte >= 0xA1 && byte <= 0xAC) ||
                               (byte >= 0xAE && byte <= 0xFF);
        table[byte] = printable ? byte : next_unprintable++;
    }
    return table;
}

// The raw bytes of a byte-level token string; false if a code point is not
// one of the 256 byte stand-ins.
bool byte_level_decode(std::string_view text, const std::unordered_map<std::uint32_t, char>& byte_of,
                       std::string& out) {
    index_t pos = 0;
    while (pos < static_cast<index_t>(text.size())) {
        const auto found = byte_of.find(decode_utf8(text, pos));
        if (found == byte_of.end()) return false;
        out += found->second;
    }
    return true;
}

// ---------------------------------------------------------------- pre-tokenizer
// llama.cpp splits text with a list of regexes applied one after another:
// each regex splits every piece of the previous step, and both its matches
// and the text between them become pieces. Whitespace is Unicode White_Space
// (PCRE2's own \s lacks U+0085), so \s and \S are rewritten before compiling.
std::string with_unicode_whitespace(std::string_view pattern) {
    std::string out;
    for (std::size_t i = 0; i < pattern.size(); ++i) {
        if (pattern[i] == '\\' && i + 1 < pattern.size()) {
            const char next = pattern[++i];
            if (next == 's') out += "\\p{White_Space}";
            else if (next == 'S') out += "\\P{White_Space}";
            else out.append({'\\', next});
        } else {
            out += pattern[i];
        }
    }
    return out;
}

constexpr const char* gpt2_regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct pre_tokenizer {
    std::vector<std::string> regexes;
    bool whole_piece_tokens = false;  // a piece that is a token skips merging (llama.cpp's ignore_merges)
};

// The pre-tokenizers llama.cpp (src/llama-vocab.cpp) uses for these
// tokenizer.ggml.pre values; an empty name is llama.cpp's default.
pre_tokenizer find_pre_tokenizer(const std::string& name) {
    if (name == "smollm") return {{R"(\p{N})", gpt2_regex}};  // every digit on its own
    if (name == "gpt-2" || name == "gpt2") return {{gpt2_regex}};
    if (name == "default" || name.empty())
        return {{R"([\p{P}\$\+<=>\^~\|]+)", gpt2_regex, R"(\p{N}+)", "[0-9][0-9][0-9]"}};
    if (name == "llama3" || name == "llama-v3" || name == "llama-bpe" || name == "falcon3")
        return {{R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
                 R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)"},
                true};
    throw invalid_argument("unsupported pre-tokenizer '" + name +
                           "' (tokenizer.ggml.pre); supported: smollm, gpt-2, default, llama3");
}

struct pcre2_code_deleter {
    void operator()(pcre2_code* code) const { pcre2_code_free(code); }
};
struct pcre2_match_data_deleter {
    void operator()(pcre2_match_data* data) const { pcre2_match_data_free(data); }
};
using regex = std::unique_ptr<pcre2_code, pcre2_code_deleter>;
using match_data = std::unique_ptr<pcre2_match_data, pcre2_match_data_deleter>;

regex compile(const std::string& pattern) {
    const std::string source = with_unicode_whitespace(pattern);
    int error_code = 0;
    PCRE2_SIZE error_offset = 0;
    regex code(pcre2_compile(reinterpret_cast<PCRE2_SPTR>(source.data()), source.size(),
                             PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &error_code, &error_offset,
                             nullptr));
    if (!code) {
        std::array<PCRE2_UCHAR, 256> message{};
        pcre2_get_error_message(error_code, message.data(), message.size());
        throw invalid_argument("pre-tokenizer regex '" + pattern + "' does not compile at offset " +
                               std::to_string(error_offset) + ": " +
                               reinterpret_cast<const char*>(message.data()));
    }
    pcre2_jit_compile(code.get(), PCRE2_JIT_COMPLETE);  // optional speed-up; the interpreter is the fallback
    return code;
}

struct piece {
    index_t start = 0, end = 0;
};

// Splits every piece by one regex; the text is valid UTF-8 (checked once by encode).
std::vector<piece> split(const pcre2_code* code, std::string_view text, const std::vector<piece>& pieces) {
    match_data match(pcre2_match_data_create_from_pattern(code, nullptr));
    std::vector<piece> out;
    out.reserve(pieces.size() * 2);
    const auto subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    for (const piece& p : pieces) {
        index_t pos = p.start;
        // The subject ends with the piece, so lookaheads cannot see past it.
        while (pos < p.end) {
            const int rc = pcre2_match(code, subject, static_cast<PCRE2_SIZE>(p.end),
                                       static_cast<PCRE2_SIZE>(pos), PCRE2_NO_UTF_CHECK, match.get(), nullptr);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0) throw error("pre-tokenizer regex failed with PCRE2 error " + std::to_string(rc));
            const PCRE2_SIZE* range = pcre2_get_ovector_pointer(match.get());
            const auto start = static_cast<index_t>(range[0]), end = static_cast<index_t>(range[1]);
            if (end == start) break;  // none of the patterns matches empty text; never loop on it
            if (start > pos) out.push_back({pos, start});
            out.push_back({start, end});
            pos = end;
        }
        if (pos < p.end) out.push_back({pos, p.end});
    }
    return out;
}

std::uint64_t pair_key(std::int32_t left, std::int32_t right) {
    return (static_cast<std::uint64_t>(static_cast<std::uint32_t>(left)) << 32) |
           static_cast<std::uint32_t>(right);
}

// Symbol ids during merging besides real token ids.
constexpr std::int32_t no_token = -1;  // a byte the vocabulary has no token for
constexpr std::int32_t absorbed = -2;  // merged into its left neighbour

bool is_special_kind(token_kind kind) {
    return kind == token_kind::control || kind == token_kind::user_defined || kind == token_kind::unknown;
}

}  // namespace

// ---------------------------------------------------------------- the model
struct tokenizer::model {
    vocabulary vocab;
    std::vector<std::string> bytes;                      // raw bytes of every token
    std::unordered_map<std::string, std::int32_t> id_of;  // GGUF token string -> id
    std::array<std::int32_t, 256> byte_token{};          // byte -> its single-byte token, or no_token
    struct merge {
        std::int32_t rank, result;
    };
    std::unordered_map<std::uint64_t, merge> merges;     // (left id, right id) -> rank, merged id
    std::vector<std::int32_t> specials;                  // longest text first
    std::vector<regex> regexes;
    bool whole_piece_tokens = false;
    std::array<std::string, 256> byte_text;              // byte -> its byte-level string

    explicit model(vocabulary v);
    void bpe(std::string_view text, piece p, std::vector<token>& out) const;
};

tokenizer::model::model(vocabulary v) : vocab(std::move(v)) {
    const auto n = static_cast<std::int32_t>(vocab.tokens.size());
    if (n == 0) throw invalid_argument("the vocabulary has no tokens");
    if (vocab.kinds.size() != vocab.tokens.size())
        throw invalid_argument("token_type has " + std::to_string(vocab.kinds.size()) + " entries for " +
                               std::to_string(n) + " tokens");
    for (const std::int32_t id : {vocab.bos_id, vocab.eos_id})
        if (id < -1 || id >= n) throw invalid_argument("special token id " + std::to_string(id) + " is out of range");
    if (vocab.add_bos && vocab.bos_id < 0) throw invalid_argument("add_bos_token is set but there is no BOS token");

    const auto code_points = byte_code_points();
    std::unordered_map<std::uint32_t, char> byte_of;
    for (std::size_t byte = 0; byte < 256; ++byte) byte_of[code_points[byte]] = static_cast<char>(byte);

    bytes.resize(vocab.tokens.size());
    id_of.reserve(vocab.tokens.size());
    for (std::int32_t id = 0; id < n; ++id) {
        const std::string& text = vocab.tokens[static_cast<std::size_t>(id)];
        const token_kind kind = vocab.kinds[static_cast<std::size_t>(id)];
        if (static_cast<int>(kind) < 1 || static_cast<int>(kind) > 6)
            throw invalid_argument("token " + std::to_string(id) + " has token_type " +
                                   std::to_string(static_cast<int>(kind)) + ", expected 1..6");
        try {
            validate_utf8(text);
        } catch (const invalid_argument& e) {
            throw invalid_argument("token " + std::to_string(id) + ": " + e.what());
        }
        id_of[text] = id;  // a repeated string maps to its last id, as in llama.cpp
        if (is_special_kind(kind)) {
            bytes[static_cast<std::size_t>(id)] = text;
            if (!text.empty()) specials.push_back(id);
        } else if (!byte_level_decode(text, byte_of, bytes[static_cast<std::size_t>(id)])) {
            throw invalid_argument("token " + std::to_string(id) + " '" + text +
                                   "' is not a byte-level BPE string");
        }
    }
    // Some vocabularies lack a few byte tokens (SmolLM2: 0x04, 0xC0, 0xF5, ...).
    for (std::size_t byte = 0; byte < 256; ++byte) {
        append_utf8(byte_text[byte], code_points[byte]);
        const auto found = id_of.find(byte_text[byte]);
        byte_token[byte] = found == id_of.end() ? no_token : found->second;
    }
    // Longest special text first: where two overlap, the longer one wins (as in llama.cpp).
    std::stable_sort(specials.begin(), specials.end(), [&](std::int32_t a, std::int32_t b) {
        return vocab.tokens[static_cast<std::size_t>(a)].size() > vocab.tokens[static_cast<std::size_t>(b)].size();
    });

    merges.reserve(vocab.merges.size());
    for (std::size_t rank = 0; rank < vocab.merges.size(); ++rank) {
        const std::string& merge_text = vocab.merges[rank];
        const auto space = merge_text.find(' ', 1);
        const auto where = "merge " + std::to_string(rank) + " '" + merge_text + "'";
        if (space == std::string::npos) throw invalid_argument(where + " is not two tokens separated by a space");
        const auto left = id_of.find(merge_text.substr(0, space));
        const auto right = id_of.find(merge_text.substr(space + 1));
        const auto result = id_of.find(merge_text.substr(0, space) + merge_text.substr(space + 1));
        if (left == id_of.end() || right == id_of.end()) throw invalid_argument(where + " names an unknown token");
        if (result == id_of.end()) throw invalid_argument(where + " makes a string that is not a token");
        // A repeated pair keeps its first (highest-priority) rank.
        merges.emplace(pair_key(left->second, right->second),
                       merge{static_cast<std::int32_t>(rank), result->second});
    }

    const pre_tokenizer pre = find_pre_tokenizer(vocab.pre_tokenizer);
    for (const std::string& pattern : pre.regexes) regexes.push_back(compile(pattern));
    whole_piece_tokens = pre.whole_piece_tokens;
}

// Merges the bytes of one piece, lowest rank first and leftmost first among
// equal ranks, then writes the resulting tokens with their byte ranges.
void tokenizer::model::bpe(std::string_view text, piece p, std::vector<token>& out) const {
    if (whole_piece_tokens) {
        std::string spelled;
        for (index_t i = p.start; i < p.end; ++i)
            spelled += byte_text[static_cast<unsigned char>(text[static_cast<std::size_t>(i)])];
        const auto found = id_of.find(spelled);
        if (found != id_of.end()) {
            out.push_back({found->second, p.start, p.end});
            return;
        }
    }
    struct symbol {
        std::int32_t id;
        index_t start, end;
        index_t prev, next;  // -1: none
    };
    std::vector<symbol> symbols;
    symbols.reserve(static_cast<std::size_t>(p.end - p.start));
    for (index_t i = p.start; i < p.end; ++i) {
        const auto index = static_cast<index_t>(symbols.size());
        symbols.push_back({byte_token[static_cast<unsigned char>(text[static_cast<std::size_t>(i)])], i, i + 1,
                           index - 1, i + 1 < p.end ? index + 1 : -1});
    }
    struct candidate {
        std::int32_t rank, result, left_id, right_id;
        index_t left, right;
        bool operator<(const candidate& other) const {  // "lower priority than", for the max-heap
            return rank != other.rank ? rank > other.rank : left > other.left;
        }
    };
    std::priority_queue<candidate> queue;
    const auto consider = [&](index_t left, index_t right) {
        if (left < 0 || right < 0) return;
        const auto& l = symbols[static_cast<std::size_t>(left)];
        const auto& r = symbols[static_cast<std::size_t>(right)];
        const auto found = merges.find(pair_key(l.id, r.id));
        if (found != merges.end()) queue.push({found->second.rank, found->second.result, l.id, r.id, left, right});
    };
    for (index_t i = 0; i + 1 < static_cast<index_t>(symbols.size()); ++i) consider(i, i + 1);

    while (!queue.empty()) {
        const candidate best = queue.top();
        queue.pop();
        auto& l = symbols[static_cast<std::size_t>(best.left)];
        auto& r = symbols[static_cast<std::size_t>(best.right)];
        // Stale if either side has merged since: a symbol's id changes when it
        // absorbs its right neighbour or is absorbed.
        if (l.id != best.left_id || r.id != best.right_id) continue;
        l.id = best.result;
        l.end = r.end;
        l.next = r.next;
        if (r.next >= 0) symbols[static_cast<std::size_t>(r.next)].prev = best.left;
        r.id = absorbed;
        consider(l.prev, best.left);
        consider(best.left, l.next);
    }
    for (index_t i = symbols.empty() ? -1 : 0; i >= 0; i = symbols[static_cast<std::size_t>(i)].next) {
        const auto& s = symbols[static_cast<std::size_t>(i)];
        if (s.id != no_token) out.push_back({s.id, s.start, s.end});  // llama.cpp drops such bytes too
    }
}

// ---------------------------------------------------------------- metadata
namespace {
std::string pre_tokenizer_name(const gguf_file& file) {
    return file.has("tokenizer.ggml.pre") ? file.get_string("tokenizer.ggml.pre") : "default";
}
}  // namespace

vocabulary vocabulary::from_gguf(const gguf_file& file) {
    vocabulary v;
    const std::string model = file.get_string("tokenizer.ggml.model");
    if (model != "gpt2")
        throw gguf_error("tokenizer.ggml.model is '" + model + "'; only byte-level BPE ('gpt2') is supported");
    v.pre_tokenizer = pre_tokenizer_name(file);
    v.tokens = file.get_string_array("tokenizer.ggml.tokens");
    if (file.has("tokenizer.ggml.token_type")) {
        for (const std::int64_t kind : file.get_int_array("tokenizer.ggml.token_type")) {
            if (kind < 1 || kind > 6)
                throw gguf_error("tokenizer.ggml.token_type holds " + std::to_string(kind) + ", expected 1..6");
            v.kinds.push_back(static_cast<token_kind>(kind));
        }
    } else {
        v.kinds.assign(v.tokens.size(), token_kind::normal);
    }
    v.merges = file.get_string_array("tokenizer.ggml.merges");
    const auto optional_id = [&](const char* key) -> std::int32_t {
        if (!file.has(key)) return -1;
        const std::uint64_t id = file.get_uint(key);
        if (id >= v.tokens.size())
            throw gguf_error(std::string(key) + " = " + std::to_string(id) + " is not a token id (" +
                             std::to_string(v.tokens.size()) + " tokens)");
        return static_cast<std::int32_t>(id);
    };
    v.bos_id = optional_id("tokenizer.ggml.bos_token_id");
    v.eos_id = optional_id("tokenizer.ggml.eos_token_id");
    v.add_bos = file.has("tokenizer.ggml.add_bos_token") && file.get_bool("tokenizer.ggml.add_bos_token");
    return v;
}

// ---------------------------------------------------------------- tokenizer
tokenizer::tokenizer(vocabulary vocab) : model_(std::make_shared<const model>(std::move(vocab))) {}

bool tokenizer::supports(const gguf_file& file) {
    if (!file.has("tokenizer.ggml.model") || file.get_string("tokenizer.ggml.model") != "gpt2") return false;
    try {
        find_pre_tokenizer(pre_tokenizer_name(file));
        return true;
    } catch (const invalid_argument&) {
        return false;
    }
}

tokenizer::tokenizer(const gguf_file& file) {
    vocabulary vocab = vocabulary::from_gguf(file);
    try {
        model_ = std::make_shared<const model>(std::move(vocab));
    } catch (const invalid_argument& e) {
        throw gguf_error(std::string("tokenizer metadata: ") + e.what());
    }
}

std::vector<token> tokenizer::encode(std::string_view text, bool parse_special) const {
    validate_utf8(text);
    const model& m = *model_;

    // Special tokens first: each one, longest first, cuts the remaining text fragments.
    struct fragment {
        piece range;
        std::int32_t special;  // -1: ordinary text
    };
    std::vector<fragment> fragments;
    if (!text.empty()) fragments.push_back({{0, static_cast<index_t>(text.size())}, -1});
    for (const std::int32_t id : m.specials) {
        if (!parse_special && m.vocab.kinds[static_cast<std::size_t>(id)] != token_kind::user_defined) continue;
        const std::string& special = m.vocab.tokens[static_cast<std::size_t>(id)];
        std::vector<fragment> cut;
        for (const fragment& f : fragments) {
            if (f.special >= 0) {
                cut.push_back(f);
                continue;
            }
            index_t pos = f.range.start;
            const std::string_view window = text.substr(0, static_cast<std::size_t>(f.range.end));
            for (auto found = window.find(special, static_cast<std::size_t>(pos)); found != std::string_view::npos;
                 found = window.find(special, static_cast<std::size_t>(pos))) {
                const auto start = static_cast<index_t>(found);
                if (start > pos) cut.push_back({{pos, start}, -1});
                pos = start + static_cast<index_t>(special.size());
                cut.push_back({{start, pos}, id});
            }
            if (pos < f.range.end) cut.push_back({{pos, f.range.end}, -1});
        }
        fragments = std::move(cut);
    }

    std::vector<token> out;
    out.reserve(text.size() / 3 + 4);
    for (const fragment& f : fragments) {
        if (f.special >= 0) {
            out.push_back({f.special, f.range.start, f.range.end});
            continue;
        }
        std::vector<piece> pieces{f.range};
        for (const regex& r : m.regexes) pieces = split(r.get(), text, pieces);
        for (const piece& p : pieces) m.bpe(text, p, out);
    }
    // Dropped bytes leave gaps; the token after a gap (or the last one)
    // absorbs it so that the ranges still tile the text.
    for (std::size_t i = 0; i < out.size(); ++i) out[i].start = i == 0 ? 0 : out[i - 1].end;
    if (!out.empty()) out.back().end = static_cast<index_t>(text.size());
    return out;
}

std::string tokenizer::token_bytes(std::int32_t id) const {
    if (id < 0 || id >= static_cast<std::int32_t>(model_->bytes.size()))
        throw invalid_argument("token id " + std::to_string(id) + " is outside the vocabulary of " +
                               std::to_string(model_->bytes.size()));
    return model_->bytes[static_cast<std::size_t>(id)];
}

std::string tokenizer::decode(const std::vector<std::int32_t>& ids) const {
    std::string out;
    for (const std::int32_t id : ids) out += token_bytes(id);
    return out;
}

index_t tokenizer::vocab_size() const { return static_cast<index_t>(model_->vocab.tokens.size()); }
std::int32_t tokenizer::bos_id() const { return model_->vocab.bos_id; }
std::int32_t tokenizer::eos_id() const { return model_->vocab.eos_id; }
bool tokenizer::add_bos() const { return model_->vocab.add_bos; }

bool tokenizer::is_special(std::int32_t id) const {
    return id >= 0 && id < static_cast<std::int32_t>(model_->vocab.kinds.size()) &&
           is_special_kind(model_->vocab.kinds[static_cast<std::size_t>(id)]);
}

std::int32_t tokenizer::find(std::string_view token_text) const {
    const auto found = model_->id_of.find(std::string(token_text));
    return found == model_->id_of.end() ? -1 : found->second;
}

}  // namespace atman::engine
