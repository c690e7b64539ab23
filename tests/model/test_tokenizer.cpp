// The byte-level BPE tokenizer on the real default model, against ids from
// llama.cpp's own tokenizer (tests/fixtures/tokenizer_*.json, written by
// make_tokenizer_fixtures.py), plus hand-made vocabularies and GGUF files.

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/gguf.hpp"
#include "engine/tokenizer.hpp"
#include "support/default_model.hpp"

using atman::engine::gguf_error;
using atman::engine::gguf_file;
using atman::engine::token;
using atman::engine::token_kind;
using atman::engine::tokenizer;
using atman::engine::vocabulary;
using json = nlohmann::json;

namespace {

const tokenizer& smollm() {
    static const auto instance = std::make_unique<tokenizer>(gguf_file::open(atman_test::model_path()));
    return *instance;
}

json read_json(const std::string& path) {
    std::ifstream in(path);
    if (!in) FAIL("cannot read " << path);
    return json::parse(in);
}

json fixture(const std::string& name) { return read_json(std::string(ATMAN_FIXTURES_DIR) + "/" + name); }

std::vector<json> squad_records() {
    const std::string path = std::string(ATMAN_SHARED_DATA_DIR) + "/squad_public.jsonl";
    std::ifstream in(path);
    if (!in) FAIL("cannot read " << path);
    std::vector<json> records;
    for (std::string line; std::getline(in, line);) records.push_back(json::parse(line));
    return records;
}

std::vector<std::int32_t> ids_of(const std::vector<token>& tokens) {
    std::vector<std::int32_t> ids;
    for (const token& t : tokens) ids.push_back(t.id);
    return ids;
}

// FNV-1a 64 over the ids as int32 little-endian bytes (the fixture's definition).
std::string fnv1a64(const std::vector<std::int32_t>& ids) {
    std::uint64_t h = 0xCBF29CE484222325ull;
    for (const std::int32_t id : ids) {
        const auto u = static_cast<std::uint32_t>(id);
        for (int shift = 0; shift < 32; shift += 8) {
            h ^= (u >> shift) & 0xFFu;
            h *= 0x100000001B3ull;
        }
    }
    std::ostringstream hex;
    hex << std::hex;
    hex.width(16);
    hex.fill('0');
    hex << h;
    return hex.str();
}

std::string byte_level(unsigned char byte);

// The text without the bytes the vocabulary has no token for (which the
// tokenizer drops, as llama.cpp does).
std::string expressible(const tokenizer& tok, const std::string& text) {
    std::string out;
    for (const char c : text)
        if (tok.find(byte_level(static_cast<unsigned char>(c))) >= 0) out += c;
    return out;
}

// Tokens must cover [0, size) without gaps or overlaps, each one spelling its
// own bytes, and the ids must decode to the text.
void require_tiling(const tokenizer& tok, const std::string& text, const std::vector<token>& tokens) {
    atman::index_t pos = 0;
    for (const token& t : tokens) {
        REQUIRE(t.start == pos);
        REQUIRE(t.end > t.start);
        const std::string covered = text.substr(static_cast<std::size_t>(t.start), static_cast<std::size_t>(t.end - t.start));
        REQUIRE(expressible(tok, covered) == tok.token_bytes(t.id));
        pos = t.end;
    }
    REQUIRE(pos == static_cast<atman::index_t>(tokens.empty() ? 0 : text.size()));
    REQUIRE(tok.decode(ids_of(tokens)) == expressible(tok, text));
}

// GPT-2's byte-to-code-point table, written independently of the engine.
std::string byte_level(unsigned char byte) {
    int code_point = byte;
    if (!((byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) || byte >= 0xAE)) {
        int unprintable_before = 0;
        for (int b = 0; b < byte; ++b)
            if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)) ++unprintable_before;
        code_point = 256 + unprintable_before;
    }
    std::string out;
    if (code_point < 0x80) {
        out += static_cast<char>(code_point);
    } else {
        out += static_cast<char>(0xC0 | (code_point >> 6));
        out += static_cast<char>(0x80 | (code_point & 0x3F));
    }
    return out;
}

// A vocabulary of the 256 byte tokens plus `extra`, with `merges`.
vocabulary byte_vocabulary(const std::vector<std::string>& extra, const std::vector<std::string>& merges) {
    vocabulary v;
    v.pre_tokenizer = "gpt2";
    for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_level(static_cast<unsigned char>(b)));
    for (const auto& t : extra) v.tokens.push_back(t);
    v.kinds.assign(v.tokens.size(), token_kind::normal);
    v.merges = merges;
    return v;
}

// A minimal GGUF v3 file with metadata only.
class gguf_writer {
public:
    gguf_writer& string(const std::string& key, const std::string& value) {
        begin(key, 8);
        put_string(value);
        return *this;
    }
    gguf_writer& uint32(const std::string& key, std::uint32_t value) {
        begin(key, 4);
        put(value, 4);
        return *this;
    }
    gguf_writer& strings(const std::string& key, const std::vector<std::string>& values) {
        begin(key, 9);
        put(8, 4);
        put(values.size(), 8);
        for (const auto& v : values) put_string(v);
        return *this;
    }
    gguf_writer& int32s(const std::string& key, const std::vector<std::int32_t>& values) {
        begin(key, 9);
        put(5, 4);
        put(values.size(), 8);
        for (const auto v : values) put(static_cast<std::uint32_t>(v), 4);
        return *this;
    }
    std::vector<std::uint8_t> bytes() const {
        std::vector<std::uint8_t> out{'G', 'G', 'U', 'F', 3, 0, 0, 0};
        for (int i = 0; i < 8; ++i) out.push_back(0);  // no tensors
        for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(count_ >> (8 * i)));
        out.insert(out.end(), body_.begin(), body_.end());
        while (out.size() % 32 != 0) out.push_back(0);
        return out;
    }

private:
    void put(std::uint64_t value, int n) {
        for (int i = 0; i < n; ++i) body_.push_back(static_cast<std::uint8_t>(value >> (8 * i)));
    }
    void put_string(const std::string& s) {
        put(s.size(), 8);
        body_.insert(body_.end(), s.begin(), s.end());
    }
    void begin(const std::string& key, std::uint32_t type) {
        ++count_;
        put_string(key);
        put(type, 4);
    }
    std::vector<std::uint8_t> body_;
    std::uint64_t count_ = 0;
};

}  // namespace

TEST_CASE("SQuAD contexts and questions: token counts and ids agree with llama.cpp", "[tokenizer][model]") {
    const tokenizer& tok = smollm();
    const auto records = squad_records();
    const json expected = fixture("tokenizer_squad.json");
    REQUIRE(expected["texts"].size() == 2 * records.size());

    std::size_t count_agree = 0, hash_agree = 0, ids_checked = 0, total_tokens = 0;
    double context_seconds = 0;
    std::size_t contexts = 0;
    for (const json& e : expected["texts"]) {
        const std::string text = records.at(e["line"].get<std::size_t>())[e["field"].get<std::string>()];
        const auto begin = std::chrono::steady_clock::now();
        const auto tokens = tok.encode(text);
        if (e["field"] == "context") {
            context_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - begin).count();
            ++contexts;
        }
        const auto ids = ids_of(tokens);
        total_tokens += ids.size();
        INFO("line " << e["line"] << " " << e["field"] << ": " << text);
        count_agree += ids.size() == e["count"].get<std::size_t>();
        hash_agree += fnv1a64(ids) == e["fnv1a64"].get<std::string>();
        if (e.contains("ids")) {
            CHECK(ids == e["ids"].get<std::vector<std::int32_t>>());
            ++ids_checked;
        }
        require_tiling(tok, text, tokens);
    }
    const double mean_ms = 1e3 * context_seconds / static_cast<double>(contexts);
    WARN("SQuAD: " << count_agree << "/" << expected["texts"].size() << " token counts and " << hash_agree
                   << " id hashes agree with llama.cpp (" << ids_checked << " full id lists compared, "
                   << total_tokens << " tokens); mean encode time per context " << mean_ms << " ms");
    REQUIRE(count_agree == expected["texts"].size());
    REQUIRE(hash_agree == expected["texts"].size());
    CHECK(mean_ms < 5.0);  // generous: a regression to quadratic merging shows up far above this
}

TEST_CASE("hard cases agree with llama.cpp, tile the text and round-trip", "[tokenizer][model]") {
    const tokenizer& tok = smollm();
    const json expected = fixture("tokenizer_cases.json");
    REQUIRE(expected["cases"].size() > 40);
    for (const json& c : expected["cases"]) {
        const std::string text = c["text"];
        const bool parse_special = c["parse_special"];
        INFO(c["name"].get<std::string>() << " (parse_special " << parse_special << "): '" << text << "'");
        const auto tokens = tok.encode(text, parse_special);
        CHECK(ids_of(tokens) == c["ids"].get<std::vector<std::int32_t>>());
        require_tiling(tok, text, tokens);
    }
}

TEST_CASE("other pre-tokenizers on the same vocabulary agree with llama.cpp", "[tokenizer][model]") {
    const json expected = fixture("tokenizer_pre.json");
    const auto file = gguf_file::open(atman_test::model_path());
    for (const auto& [name, cases] : expected["pre_tokenizers"].items()) {
        vocabulary v = vocabulary::from_gguf(file);
        v.pre_tokenizer = name;
        const tokenizer tok(std::move(v));
        std::size_t agree = 0;
        for (const json& c : cases) {
            const std::string text = c["text"];
            INFO(name << ": '" << text << "'");
            const auto tokens = tok.encode(text);
            const bool same = ids_of(tokens) == c["ids"].get<std::vector<std::int32_t>>();
            CHECK(same);
            agree += same;
            require_tiling(tok, text, tokens);
        }
        WARN("pre-tokenizer " << name << ": " << agree << "/" << cases.size() << " texts agree with llama.cpp");
    }
}

TEST_CASE("parse_special turns special token texts into those tokens, or leaves them text", "[tokenizer][model]") {
    const tokenizer& tok = smollm();
    const std::string text = "<|im_start|>user\nHi<|im_end|>";
    const std::int32_t im_start = tok.find("<|im_start|>"), im_end = tok.find("<|im_end|>");
    REQUIRE(im_start == 1);
    REQUIRE(im_end == 2);
    REQUIRE(tok.is_special(im_start));
    REQUIRE_FALSE(tok.is_special(tok.find("Hi")));

    const auto parsed = tok.encode(text, true);
    REQUIRE(parsed.size() >= 4);
    CHECK(parsed.front().id == im_start);
    CHECK(parsed.front().end == 12);
    CHECK(parsed.back().id == im_end);
    CHECK(parsed.back().start == static_cast<atman::index_t>(text.size()) - 10);

    const auto plain = tok.encode(text, false);
    for (const token& t : plain) CHECK_FALSE(tok.is_special(t.id));
    CHECK(plain.size() > parsed.size());
    CHECK(tok.decode(ids_of(plain)) == text);
    CHECK(tok.decode(ids_of(parsed)) == text);
}

TEST_CASE("invalid UTF-8 throws invalid_argument naming the byte offset", "[tokenizer][model]") {
    const tokenizer& tok = smollm();
    const std::vector<std::pair<std::string, std::string>> cases = {
        {std::string("ab\x80" "c"), "byte 2"},                  // lone continuation byte
        {std::string("x\xC0\xAF"), "byte 1"},                    // overlong '/'
        {std::string("\xE0\x80\xAF"), "byte 0"},                 // overlong, three bytes
        {std::string("abc\xE2\x82"), "byte 3"},                  // truncated by the end
        {std::string("\xE2\x82" "abc"), "byte 0"},               // truncated by a non-continuation
        {std::string("ok \xED\xA0\x80"), "byte 3"},              // surrogate U+D800
        {std::string("\xF4\x90\x80\x80"), "byte 0"},             // above U+10FFFF
        {std::string("\xFF"), "byte 0"},
    };
    for (const auto& [text, where] : cases) {
        INFO("expecting '" << where << "'");
        CHECK_THROWS_AS(tok.encode(text), atman::invalid_argument);
        CHECK_THROWS_WITH(tok.encode(text), Catch::Contains(where));
    }
}

TEST_CASE("vocabulary accessors of the default model", "[tokenizer][model]") {
    const tokenizer& tok = smollm();
    CHECK(tok.vocab_size() == 49152);
    CHECK(tok.bos_id() == 1);
    CHECK(tok.eos_id() == 2);
    CHECK_FALSE(tok.add_bos());
    CHECK(tok.find("no such token string") == -1);
    CHECK(tok.token_bytes(tok.find("Ġthe")) == " the");
    CHECK(tok.token_bytes(2) == "<|im_end|>");
    CHECK_THROWS_AS(tok.token_bytes(49152), atman::invalid_argument);
    CHECK_THROWS_AS(tok.decode({-1}), atman::invalid_argument);
    CHECK(tok.encode("").empty());
}

TEST_CASE("merges apply lowest rank first, leftmost first among equals", "[tokenizer]") {
    SECTION("rank decides the order") {
        // "b c" outranks "a b", so "abc" -> a + bc -> abc.
        const tokenizer tok(byte_vocabulary({"bc", "ab", "abc"}, {"b c", "a b", "a bc"}));
        CHECK(tok.encode_ids("abc") == std::vector<std::int32_t>{258});
        CHECK(tok.encode_ids("ab") == std::vector<std::int32_t>{257});
        // Without "ab c", the early "b c" merge blocks "a b".
        const tokenizer blocked(byte_vocabulary({"bc", "ab"}, {"b c", "a b"}));
        CHECK(blocked.encode_ids("abc") == std::vector<std::int32_t>{'a', 256});
    }
    SECTION("equal ranks merge leftmost first") {
        const tokenizer tok(byte_vocabulary({"aa"}, {"a a"}));
        const auto tokens = tok.encode("aaa");
        REQUIRE(tokens.size() == 2);
        CHECK(tokens[0].id == 256);
        CHECK(tokens[0].end == 2);
        CHECK(tokens[1].id == 'a');
    }
    SECTION("pieces merge separately") {
        // Token ids of the 256 byte tokens are the byte values; "ab ab" splits into "ab" and " ab".
        const tokenizer tok(byte_vocabulary({"ab", "Ġa"}, {"a b", "Ġ a"}));
        const auto tokens = tok.encode("ab ab");
        CHECK(ids_of(tokens) == std::vector<std::int32_t>{256, ' ', 256});
        REQUIRE(tokens.size() == 3);
        CHECK(tokens[1].start == 2);
        CHECK(tokens[2].start == 3);
    }
}

TEST_CASE("a byte without a token is dropped and its range joins the next token", "[tokenizer]") {
    auto v = byte_vocabulary({}, {});
    v.tokens[4] = "x4";  // byte 0x04 loses its token
    const tokenizer tok(v);
    const auto tokens = tok.encode(std::string("a\x04" "b"));
    CHECK(ids_of(tokens) == std::vector<std::int32_t>{'a', 'b'});
    REQUIRE(tokens.size() == 2);
    CHECK(tokens[0].end == 1);
    CHECK(tokens[1].start == 1);
    CHECK(tokens[1].end == 3);
    CHECK(tok.encode(std::string("\x04")).empty());
}

TEST_CASE("bad vocabularies are refused with a message naming the problem", "[tokenizer]") {
    const auto refused = [](vocabulary v, const std::string& part) {
        INFO("expecting '" << part << "'");
        CHECK_THROWS_AS(tokenizer(v), atman::invalid_argument);
        CHECK_THROWS_WITH(tokenizer(v), Catch::Contains(part));
    };
    refused(byte_vocabulary({}, {"a zz"}), "merge 0 'a zz' names an unknown token");
    refused(byte_vocabulary({}, {"ab"}), "merge 0");
    refused(byte_vocabulary({}, {"a b"}), "not a token");
    auto unknown_pre = byte_vocabulary({}, {});
    unknown_pre.pre_tokenizer = "deepseek-llm";
    refused(unknown_pre, "unsupported pre-tokenizer 'deepseek-llm'");
    auto short_kinds = byte_vocabulary({}, {});
    short_kinds.kinds.pop_back();
    refused(short_kinds, "token_type has 255 entries for 256 tokens");
    auto bad_bos = byte_vocabulary({}, {});
    bad_bos.bos_id = 300;
    refused(bad_bos, "out of range");
}

TEST_CASE("a GGUF with broken tokenizer metadata throws gguf_error naming it", "[tokenizer]") {
    std::vector<std::string> tokens;
    for (int b = 0; b < 256; ++b) tokens.push_back(byte_level(static_cast<unsigned char>(b)));
    tokens.push_back("ab");
    const std::vector<std::int32_t> kinds(tokens.size(), 1);
    const auto base = [&] {
        gguf_writer w;
        w.string("tokenizer.ggml.model", "gpt2").string("tokenizer.ggml.pre", "smollm").strings("tokenizer.ggml.tokens", tokens);
        return w;
    };
    SECTION("a merge of unknown tokens") {
        auto w = base();
        w.int32s("tokenizer.ggml.token_type", kinds).strings("tokenizer.ggml.merges", {"a b", "q zz"});
        const auto file = gguf_file::from_bytes(w.bytes());
        CHECK_THROWS_AS(tokenizer(file), gguf_error);
        CHECK_THROWS_WITH(tokenizer(file), Catch::Contains("merge 1 'q zz'"));
    }
    SECTION("merges missing") {
        auto w = base();
        const auto file = gguf_file::from_bytes(w.int32s("tokenizer.ggml.token_type", kinds).bytes());
        CHECK_THROWS_AS(tokenizer(file), gguf_error);
        CHECK_THROWS_WITH(tokenizer(file), Catch::Contains("tokenizer.ggml.merges"));
    }
    SECTION("a token type out of range") {
        auto bad = kinds;
        bad[7] = 9;
        auto w = base();
        const auto file = gguf_file::from_bytes(w.int32s("tokenizer.ggml.token_type", bad).strings("tokenizer.ggml.merges", {}).bytes());
        CHECK_THROWS_WITH(tokenizer(file), Catch::Contains("token_type holds 9"));
    }
    SECTION("a BOS id outside the vocabulary") {
        auto w = base();
        const auto file = gguf_file::from_bytes(w.int32s("tokenizer.ggml.token_type", kinds)
                                                    .strings("tokenizer.ggml.merges", {})
                                                    .uint32("tokenizer.ggml.bos_token_id", 257)
                                                    .bytes());
        CHECK_THROWS_WITH(tokenizer(file), Catch::Contains("bos_token_id = 257"));
    }
    SECTION("an unsupported tokenizer model") {
        gguf_writer w;
        const auto file = gguf_file::from_bytes(w.string("tokenizer.ggml.model", "llama").bytes());
        CHECK_THROWS_WITH(tokenizer(file), Catch::Contains("only byte-level BPE"));
    }
    SECTION("well-formed metadata loads") {
        auto w = base();
        const auto file = gguf_file::from_bytes(w.int32s("tokenizer.ggml.token_type", kinds).strings("tokenizer.ggml.merges", {}).bytes());
        const tokenizer tok(file);
        CHECK(tok.encode("a1").size() == 2);
    }
}
