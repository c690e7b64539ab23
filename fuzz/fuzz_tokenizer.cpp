// Fuzzes the byte-level BPE tokenizer: encoding arbitrary bytes with each
// pre-tokenizer (with and without special-token parsing), decoding arbitrary
// ids, and building a tokenizer from an arbitrary vocabulary.
//
// Properties checked beyond "no crash": invalid UTF-8 is the only reason
// encode may throw; the tokens tile the text; with a vocabulary holding every
// byte, decode(encode(text)) == text.

#include <fuzzer/FuzzedDataProvider.h>

#include <atman/error.hpp>

#include <array>
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "engine/tokenizer.hpp"
#include "engine/utf8.hpp"

#include "check.hpp"

namespace eng = atman::engine;

namespace {

// GPT-2's byte-level alphabet: printable bytes stand for themselves, the
// others for the code points 256, 257, ... in byte order.
std::array<std::string, 256> byte_level_strings() {
    std::array<std::string, 256> strings;
    std::uint32_t next = 256;
    for (std::uint32_t byte = 0; byte < 256; ++byte) {
        const bool printable = (byte >= 33 && byte <= 126) || (byte >= 161 && byte <= 172) || byte >= 174;
        eng::append_utf8(strings[byte], printable ? byte : next++);
    }
    return strings;
}

// Every byte, merges that spell a few words (with and without a leading
// space, "Ġ"), and special tokens of each kind.
eng::vocabulary full_vocabulary(const std::string& pre_tokenizer) {
    eng::vocabulary v;
    v.pre_tokenizer = pre_tokenizer;
    std::set<std::string> known;
    const auto add = [&](const std::string& text, eng::token_kind kind) {
        if (!known.insert(text).second) return;
        v.tokens.push_back(text);
        v.kinds.push_back(kind);
    };
    for (const std::string& s : byte_level_strings()) add(s, eng::token_kind::normal);
    std::set<std::string> merged;
    for (const std::string word : {"the", "and", "ing", "tion", "Paris", "capital", "France", "123"}) {
        for (const std::string& spelled : {word, "\xC4\xA0" + word}) {  // U+0120 'Ġ' = space
            std::size_t first = spelled[0] == '\xC4' ? 2 : 1;
            std::string left = spelled.substr(0, first);
            for (std::size_t i = first; i < spelled.size(); ++i) {
                const std::string right(1, spelled[i]);
                if (merged.insert(left + " " + right).second) v.merges.push_back(left + " " + right);
                left += right;
                add(left, eng::token_kind::normal);
            }
        }
    }
    add("<|endoftext|>", eng::token_kind::control);
    add("<|im_start|>", eng::token_kind::control);
    add("<|im_end|>", eng::token_kind::control);
    add("<unk>", eng::token_kind::unknown);
    add("<tool>", eng::token_kind::user_defined);
    v.bos_id = v.eos_id = static_cast<std::int32_t>(v.tokens.size()) - 5;
    return v;
}

const std::vector<eng::tokenizer>& full_tokenizers() {
    static const std::vector<eng::tokenizer> tokenizers = [] {
        std::vector<eng::tokenizer> t;
        for (const char* pre : {"smollm", "gpt-2", "default", "llama3"}) t.emplace_back(full_vocabulary(pre));
        return t;
    }();
    return tokenizers;
}

bool valid_utf8(const std::string& text) {
    try {
        eng::validate_utf8(text);
        return true;
    } catch (const atman::invalid_argument&) {
        return false;
    }
}

// Encodes text; checks the tiling, and the round trip when every byte has a token.
void encode_and_check(const eng::tokenizer& tok, const std::string& text, bool parse_special, bool all_bytes) {
    std::vector<eng::token> tokens;
    try {
        tokens = tok.encode(text, parse_special);
    } catch (const atman::invalid_argument&) {
        ATMAN_FUZZ_CHECK(!valid_utf8(text));
        return;
    }
    ATMAN_FUZZ_CHECK(valid_utf8(text));
    atman::index_t at = 0;
    std::vector<std::int32_t> ids;
    for (const eng::token& t : tokens) {
        ATMAN_FUZZ_CHECK(t.start == at && t.end >= t.start && t.end <= atman::index_t(text.size()));
        ATMAN_FUZZ_CHECK(t.id >= 0 && t.id < tok.vocab_size());
        at = t.end;
        ids.push_back(t.id);
    }
    if (all_bytes) {
        ATMAN_FUZZ_CHECK(at == atman::index_t(text.size()));
        ATMAN_FUZZ_CHECK(tok.decode(ids) == text);
    }
}

// A vocabulary from the input: token strings, kinds and merges of its choosing.
void fuzz_vocabulary(FuzzedDataProvider& in) {
    eng::vocabulary v;
    v.pre_tokenizer = in.PickValueInArray({"smollm", "gpt-2", "default", "llama3", "unknown"});
    const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 64);
    for (std::size_t i = 0; i < n; ++i) {
        v.tokens.push_back(in.ConsumeRandomLengthString(16));
        v.kinds.push_back(static_cast<eng::token_kind>(in.ConsumeIntegralInRange<int>(0, 7)));
    }
    const std::size_t n_merges = in.ConsumeIntegralInRange<std::size_t>(0, 32);
    for (std::size_t i = 0; i < n_merges; ++i) v.merges.push_back(in.ConsumeRandomLengthString(16));
    v.bos_id = in.ConsumeIntegralInRange<std::int32_t>(-2, 64);
    v.eos_id = in.ConsumeIntegralInRange<std::int32_t>(-2, 64);
    v.add_bos = in.ConsumeBool();
    try {
        const eng::tokenizer tok(std::move(v));
        encode_and_check(tok, in.ConsumeRemainingBytesAsString(), in.ConsumeBool(), false);
    } catch (const atman::invalid_argument&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    switch (in.ConsumeIntegralInRange<int>(0, 3)) {
        case 0:
            fuzz_vocabulary(in);
            break;
        case 1: {  // decode arbitrary ids
            const eng::tokenizer& tok = full_tokenizers().front();
            std::vector<std::int32_t> ids;
            while (in.remaining_bytes() >= 2) ids.push_back(in.ConsumeIntegralInRange<std::int32_t>(-2, 300));
            bool in_range = true;
            for (std::int32_t id : ids) in_range = in_range && id >= 0 && id < tok.vocab_size();
            try {
                (void)tok.decode(ids);
                ATMAN_FUZZ_CHECK(in_range);
            } catch (const atman::invalid_argument&) {
                ATMAN_FUZZ_CHECK(!in_range);
            }
            break;
        }
        default: {  // encode arbitrary bytes
            const auto& tokenizers = full_tokenizers();
            const eng::tokenizer& tok = tokenizers[in.ConsumeIntegralInRange<std::size_t>(0, tokenizers.size() - 1)];
            const bool parse_special = in.ConsumeBool();
            encode_and_check(tok, in.ConsumeRemainingBytesAsString(), parse_special, true);
        }
    }
    return 0;
}
