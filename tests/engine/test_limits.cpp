// Bad sizes and bad files end in a clear error before anything large is
// allocated: a sequence beyond the context window, a batch beyond the memory
// available, zero or negative sizes, a model that is not a regular file
// (a directory, a FIFO, a device), a truncated file.

#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <future>
#include <string>
#include <vector>

#include <atman/explainer.hpp>

#include "engine/gguf.hpp"
#include "engine/limits.hpp"
#include "engine/llama_engine.hpp"
#include "engine/llama_model.hpp"
#include "tiny_llama.hpp"

namespace eng = atman::engine;
using atman::index_t;

namespace {

const eng::llama_model& tiny_model() {
    static const eng::llama_model model = eng::llama_model::load(eng::gguf_file::from_bytes(tiny_llama::bytes()));
    return model;
}

// A request of n prompt tokens (one unit per token) and m target tokens.
atman::explain_request request_of(index_t n, index_t m) {
    atman::explain_request r;
    r.prompt = std::string(std::size_t(n), 'a');
    for (index_t i = 0; i < n; ++i) {
        r.prompt_tokens.push_back(std::int32_t(65 + i % 26));
        r.units.push_back({{i}, i, i + 1});
    }
    r.target_tokens.assign(std::size_t(m), 66);
    return r;
}

std::string temp_path(const std::string& name) {
    return (std::filesystem::temp_directory_path() / ("atman_limits_" + std::to_string(::getpid()) + "_" + name))
        .string();
}

}  // namespace

TEST_CASE("limits: the teacher-forced sequence must fit in the context window") {
    const index_t n_ctx = tiny_model().hparams().n_ctx;
    REQUIRE(n_ctx == 64);
    CHECK_NOTHROW(eng::check_context(64, 1, n_ctx));  // T = n + m - 1 = 64
    CHECK_NOTHROW(eng::check_context(60, 5, n_ctx));
    CHECK_THROWS_WITH(eng::check_context(60, 6, n_ctx),
                      Catch::Contains("need 65 positions") && Catch::Contains("context window of 64"));
    CHECK_THROWS_AS(eng::check_context(0, 1, n_ctx), atman::invalid_argument);
    CHECK_THROWS_AS(eng::check_context(1, 0, n_ctx), atman::invalid_argument);
    CHECK_THROWS_AS(eng::check_context(-5, 3, n_ctx), atman::invalid_argument);

    // The request check covers the contrast as well as the target.
    const auto& hp = tiny_model().hparams();
    atman::explain_request r = request_of(60, 5);
    CHECK_NOTHROW(eng::check_request(hp, r, {}));
    r.contrast_tokens.assign(6, 67);
    CHECK_THROWS_WITH(eng::check_request(hp, r, {}), Catch::Contains("context window"));

    // The engine refuses such a sequence too, before its first pass.
    eng::llama_engine engine(tiny_model());
    const atman::explain_request too_long = request_of(60, 6);
    CHECK_THROWS_WITH(atman::explain(engine, too_long, {}), Catch::Contains("exceeds the context length 64"));
}

TEST_CASE("limits: the memory estimate counts the KV cache and the batch activations") {
    const auto& hp = tiny_model().hparams();
    // Independent count for the tiny model: embd 32, 2 heads and 1 KV head of 16, ff 32, 267 tokens, 1 layer.
    const std::uint64_t floats_per_row = 32 + 32 + (32 + 16 + 16) + 32 + 2 * 32;
    CHECK(eng::bytes_per_token_row(hp) == floats_per_row * 4 + 16);
    const eng::memory_estimate m = eng::estimate_memory(hp, 10, 50);
    CHECK(m.kv_cache == 2 * 1 * 10 * 16 * 4);
    CHECK(m.batch == 50 * (floats_per_row * 4 + 16) + 64 * (267 + 32) * 4);
    CHECK(m.total() == m.kv_cache + m.batch);
    CHECK(eng::available_memory_bytes() > 0);  // Linux: /proc/meminfo
    CHECK(eng::format_bytes(1536) == "1.5 KiB");
    CHECK(eng::format_bytes(3ull << 30) == "3.0 GiB");
}

TEST_CASE("limits: a plan whose largest batch exceeds the available memory is refused before it runs") {
    const auto& hp = tiny_model().hparams();
    const atman::explain_request r = request_of(40, 3);  // T = 42, 40 units at positions 0..39
    atman::config cfg;
    cfg.max_batch_rows = 40;
    // Accepted with exactly `needed` bytes, refused with one less.
    const auto needs = [&](const atman::plan& plan, std::uint64_t needed) {
        CHECK_NOTHROW(eng::check_plan_memory(hp, plan, needed));
        CHECK_THROWS_AS(eng::check_plan_memory(hp, plan, needed - 1), eng::resource_error);
    };
    const atman::plan one_batch = atman::make_plan(r.units, {42, 39, nullptr}, cfg);
    REQUIRE(one_batch.batches.size() == 1);
    // The unit at position p recomputes 42 - p positions: 42 + 41 + ... + 3.
    const std::uint64_t needed = eng::estimate_memory(hp, 42, (42 + 3) * 40 / 2).total();
    needs(one_batch, needed);
    CHECK_THROWS_WITH(eng::check_plan_memory(hp, one_batch, needed / 2),
                      Catch::Contains("batches of 40 rows") && Catch::Contains("lower --batch"));
    // Smaller batches need less: the largest one counts (the first, whose rows start earliest).
    cfg.max_batch_rows = 10;
    const atman::plan four_batches = atman::make_plan(r.units, {42, 39, nullptr}, cfg);
    REQUIRE(four_batches.batches.size() == 4);
    needs(four_batches, eng::estimate_memory(hp, 42, (42 + 33) * 10 / 2).total());
    // Unknown memory (0): nothing is checked.
    CHECK_NOTHROW(eng::check_plan_memory(hp, one_batch, 0));

    // atman::explain asks before the first pass.
    eng::llama_engine engine(tiny_model());
    atman::explain_options refuse;
    refuse.before_running = [&](const atman::plan& p) { eng::check_plan_memory(hp, p, 1); };
    CHECK_THROWS_AS(atman::explain(engine, r, cfg, refuse), eng::resource_error);
}

TEST_CASE("limits: zero and negative sizes are rejected") {
    const auto& hp = tiny_model().hparams();
    atman::config cfg;
    cfg.max_batch_rows = -1;
    CHECK_THROWS_WITH(eng::check_request(hp, request_of(4, 2), cfg), Catch::Contains("max_batch_rows"));
    cfg = {};
    cfg.max_batch_token_rows = -8;
    CHECK_THROWS_AS(eng::check_request(hp, request_of(4, 2), cfg), atman::invalid_argument);
    CHECK_THROWS_AS(eng::check_request(hp, request_of(4, 0), {}), atman::invalid_argument);

    eng::llama_engine engine(tiny_model());
    CHECK_THROWS_WITH(engine.generate({1, 2, 3}, -1, {}), Catch::Contains("max_new_tokens must be >= 0"));
    CHECK_THROWS_AS(engine.generate({}, 4, {}), atman::invalid_argument);
    CHECK(engine.generate({1, 2, 3}, 0, {}).empty());
    atman::explain_request r = request_of(4, 2);
    r.units.clear();
    CHECK_THROWS_WITH(atman::explain(engine, r, {}), Catch::Contains("no units"));
}

TEST_CASE("limits: a model path that is not a regular file fails at once") {
    CHECK_THROWS_WITH(eng::gguf_file::open(std::filesystem::temp_directory_path().string()),
                      Catch::Contains("is not a regular file"));
    CHECK_THROWS_WITH(eng::gguf_file::open("/dev/zero"), Catch::Contains("is not a regular file"));
    CHECK_THROWS_WITH(eng::gguf_file::open(temp_path("missing.gguf")), Catch::Contains("cannot open"));

    // A FIFO used to block open() until some writer came (forever).
    const std::string fifo = temp_path("fifo.gguf");
    REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
    auto opened = std::async(std::launch::async, [&] { eng::gguf_file::open(fifo); });
    const bool finished = opened.wait_for(std::chrono::seconds(10)) == std::future_status::ready;
    if (!finished) ::close(::open(fifo.c_str(), O_WRONLY | O_NONBLOCK));  // let the blocked open return
    CHECK(finished);
    CHECK_THROWS_WITH(opened.get(), Catch::Contains("is not a regular file"));
    std::remove(fifo.c_str());
}

TEST_CASE("limits: a truncated model file is rejected by the reader, wherever it is cut") {
    const std::vector<std::uint8_t> bytes = tiny_llama::bytes();
    const std::string path = temp_path("truncated.gguf");
    // Cuts in the header, the metadata, the tensor infos, the padding and the data.
    for (const std::size_t size : {std::size_t(0), std::size_t(3), std::size_t(20), std::size_t(1000),
                                   bytes.size() / 2, bytes.size() - 1}) {
        INFO("cut at " << size << " of " << bytes.size() << " bytes");
        {
            std::ofstream out(path, std::ios::binary);
            out.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(size));
        }
        CHECK_THROWS_AS(eng::gguf_file::open(path), eng::gguf_error);
    }
    std::remove(path.c_str());
}
