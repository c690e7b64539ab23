#pragma once
// The tiny Llama GGUF of the fuzz corpus (fuzz/corpus/make_seeds.py: one
// layer, 32-dim embeddings, 267 tokens, a ChatML template), loaded as bytes
// that a test may patch before parsing: a metadata value, or a tensor's data.

#include <catch2/catch.hpp>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/gguf.hpp"

namespace tiny_llama {

inline std::string path() { return ATMAN_SOURCE_DIR "/fuzz/corpus/fuzz_gguf/tiny_llama.gguf"; }

inline std::vector<std::uint8_t> bytes() {
    std::ifstream in(path(), std::ios::binary);
    REQUIRE(in);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The offset of metadata `key`'s value type (its value follows the 4 bytes of it).
inline std::size_t metadata_value_at(const std::vector<std::uint8_t>& file, const std::string& key) {
    std::string pattern(8, '\0');
    const std::uint64_t length = key.size();
    std::memcpy(&pattern[0], &length, 8);
    pattern += key;
    const std::string text(file.begin(), file.end());
    const std::size_t at = text.find(pattern);
    REQUIRE(at != std::string::npos);
    return at + pattern.size();
}

// Overwrites the uint32 value of metadata `key` (the 4 bytes after the key and its type).
inline void set_uint32(std::vector<std::uint8_t>& file, const std::string& key, std::uint32_t value) {
    const std::size_t at = metadata_value_at(file, key);
    std::uint32_t type = 0;
    std::memcpy(&type, &file[at], 4);
    REQUIRE(type == 4);  // uint32
    std::memcpy(&file[at + 4], &value, 4);
}

// Overwrites the string value of metadata `key` with one of the same length.
inline void set_string(std::vector<std::uint8_t>& file, const std::string& key, const std::string& value) {
    const std::size_t at = metadata_value_at(file, key);
    std::uint32_t type = 0;
    std::uint64_t old_length = 0;
    std::memcpy(&type, &file[at], 4);
    std::memcpy(&old_length, &file[at + 4], 8);
    REQUIRE(type == 8);  // string
    REQUIRE(old_length == value.size());
    std::memcpy(&file[at + 12], value.data(), value.size());
}

// Overwrites element `index` of F32 tensor `name`.
inline void set_f32(std::vector<std::uint8_t>& file, const std::string& name, std::int64_t index, float value) {
    const atman::engine::gguf_file parsed = atman::engine::gguf_file::from_bytes(file);
    const atman::engine::tensor_info& t = parsed.tensor(name);
    REQUIRE(t.type == atman::engine::ggml_type::f32);
    REQUIRE(index < t.n_elements);
    std::memcpy(&file[parsed.data_offset() + t.offset + std::uint64_t(index) * 4], &value, 4);
}

}  // namespace tiny_llama
