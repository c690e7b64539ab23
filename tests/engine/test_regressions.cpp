// Inputs the fuzzers (fuzz/fuzz_gguf.cpp) found to misbehave, kept as tests.

#include <catch2/catch.hpp>

#include "engine/gguf.hpp"
#include "engine/llama_model.hpp"
#include "tiny_llama.hpp"

using atman::engine::gguf_error;
using atman::engine::gguf_file;
using atman::engine::llama_model;

TEST_CASE("forged sizes in the metadata are rejected before the weights are allocated") {
    REQUIRE(llama_model::load(gguf_file::from_bytes(tiny_llama::bytes())).parameter_count() == 14784);
    // Each used to reach Eigen's resize with terabytes (bad_alloc, or an ASan abort).
    for (const char* key : {"llama.embedding_length", "llama.feed_forward_length"}) {
        INFO(key);
        auto file = tiny_llama::bytes();
        tiny_llama::set_uint32(file, key, 1u << 30);
        CHECK_THROWS_WITH(llama_model::load(gguf_file::from_bytes(file)),
                          Catch::Contains("parameters, the file's tensors hold"));
    }
    auto file = tiny_llama::bytes();
    tiny_llama::set_uint32(file, "llama.block_count", 1000000);
    CHECK_THROWS_AS(llama_model::load(gguf_file::from_bytes(file)), gguf_error);
}
