// Dequantisation against the PyPI `gguf` package (fixtures written by
// tests/fixtures/make_dequant_fixtures.py) and against hand-made blocks.

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "engine/dequant.hpp"
#include "engine/gguf.hpp"
#include "support/default_model.hpp"

using namespace atman::engine;
using bytes = std::vector<std::uint8_t>;

namespace {

nlohmann::json load_fixture(const std::string& name) {
    const std::string path = std::string(ATMAN_FIXTURES_DIR) + "/" + name;
    std::ifstream in(path);
    if (!in) FAIL("cannot read fixture " << path << " (regenerate with tests/fixtures/make_dequant_fixtures.py)");
    return nlohmann::json::parse(in);
}

bytes from_hex(const std::string& hex) {
    REQUIRE(hex.size() % 2 == 0);
    bytes out(hex.size() / 2);
    for (std::size_t i = 0; i < out.size(); ++i) out[i] = std::uint8_t(std::stoul(hex.substr(2 * i, 2), nullptr, 16));
    return out;
}

std::vector<std::uint32_t> float_bits_from_hex(const std::string& hex) {
    const bytes raw = from_hex(hex);
    std::vector<std::uint32_t> bits(raw.size() / 4);
    std::memcpy(bits.data(), raw.data(), bits.size() * 4);
    return bits;
}

std::uint32_t bits_of(float f) {
    std::uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}

std::vector<float> dequantized(ggml_type type, const bytes& raw, std::int64_t n) {
    std::vector<float> out(std::size_t(n), -12345.f);
    dequantize(type, raw.data(), n, out.data());
    return out;
}

// Index of the first element whose float bits differ, or -1.
std::ptrdiff_t first_bit_mismatch(const std::vector<float>& actual, const std::vector<std::uint32_t>& expected) {
    REQUIRE(actual.size() == expected.size());
    for (std::size_t i = 0; i < actual.size(); ++i)
        if (bits_of(actual[i]) != expected[i]) return std::ptrdiff_t(i);
    return -1;
}

void put_half(bytes& block, std::size_t at, std::uint16_t half) { std::memcpy(block.data() + at, &half, 2); }

}  // namespace

TEST_CASE("dequant: every fixture matches gguf-py bit for bit", "[dequant]") {
    const nlohmann::json fixture = load_fixture("dequant_blocks.json");
    REQUIRE(fixture.at("cases").size() == 13);
    for (const nlohmann::json& c : fixture.at("cases")) {
        const std::string name = c.at("type");
        DYNAMIC_SECTION(name) {
            const auto type = ggml_type(c.at("type_id").get<std::uint32_t>());
            CHECK(to_string(type) == name);
            REQUIRE(is_supported(type));
            const std::int64_t n = c.at("n_elements");
            const bytes raw = from_hex(c.at("raw_hex"));
            REQUIRE(raw.size() == std::size_t(n / block_elements(type)) * block_bytes(type));
            const std::vector<std::uint32_t> expected = float_bits_from_hex(c.at("expected_f32_hex"));
            const std::vector<float> actual = dequantized(type, raw, n);
            const std::ptrdiff_t bad = first_bit_mismatch(actual, expected);
            if (bad >= 0) {
                float want;
                std::memcpy(&want, &expected[std::size_t(bad)], 4);
                FAIL(name << " element " << bad << ": got " << actual[std::size_t(bad)] << ", gguf-py " << want);
            }
            for (float v : actual) REQUIRE_FALSE(std::isnan(v));
        }
    }
}

TEST_CASE("dequant: hand-made blocks", "[dequant]") {
    SECTION("F16 and BF16 special values") {
        const std::vector<std::uint16_t> halves = {0x3c00, 0xc000, 0x0001, 0x7bff, 0x7c00, 0x8000, 0x0400};
        bytes raw(halves.size() * 2);
        std::memcpy(raw.data(), halves.data(), raw.size());
        const auto f16 = dequantized(ggml_type::f16, raw, std::int64_t(halves.size()));
        CHECK(f16 == std::vector<float>{1.f, -2.f, std::ldexp(1.f, -24), 65504.f, INFINITY, -0.f, std::ldexp(1.f, -14)});
        CHECK(std::signbit(f16[5]));
        const auto bf16 = dequantized(ggml_type::bf16, raw, std::int64_t(halves.size()));
        CHECK(bf16[0] == std::ldexp(1.f, -7));  // 0x3c000000: exponent 120
        CHECK(bf16[1] == -2.f);                 // 0xc0000000
    }
    SECTION("Q8_0: x = d q") {
        bytes block(34);
        put_half(block, 0, 0x3800);  // 0.5
        for (int j = 0; j < 32; ++j) block[2 + j] = std::uint8_t(std::int8_t(j * 8 - 128));
        const auto x = dequantized(ggml_type::q8_0, block, 32);
        for (int j = 0; j < 32; ++j) CHECK(x[j] == 0.5f * float(j * 8 - 128));
    }
    SECTION("Q4_0: x = d (q - 8), low nibbles first") {
        bytes block(18);
        put_half(block, 0, 0x4000);  // 2
        for (int j = 0; j < 16; ++j) block[2 + j] = std::uint8_t(j | (15 - j) << 4);
        const auto x = dequantized(ggml_type::q4_0, block, 32);
        for (int j = 0; j < 16; ++j) {
            CHECK(x[j] == 2.f * float(j - 8));
            CHECK(x[j + 16] == 2.f * float(15 - j - 8));
        }
    }
    SECTION("Q4_1: x = d q + m") {
        bytes block(20);
        put_half(block, 0, 0x3400);  // 0.25
        put_half(block, 2, 0xbc00);  // -1
        for (int j = 0; j < 16; ++j) block[4 + j] = std::uint8_t(j | (15 - j) << 4);
        const auto x = dequantized(ggml_type::q4_1, block, 32);
        for (int j = 0; j < 16; ++j) {
            CHECK(x[j] == 0.25f * float(j) - 1.f);
            CHECK(x[j + 16] == 0.25f * float(15 - j) - 1.f);
        }
    }
    SECTION("Q5_0: the fifth bit of element j is bit j of qh") {
        bytes block(22);
        put_half(block, 0, 0x3c00);  // 1
        const std::uint32_t qh = 0xaaaa5555u;
        std::memcpy(block.data() + 2, &qh, 4);
        for (int j = 0; j < 16; ++j) block[6 + j] = std::uint8_t(j | j << 4);
        const auto x = dequantized(ggml_type::q5_0, block, 32);
        for (int j = 0; j < 32; ++j) CHECK(x[j] == float((j % 16) + 16 * int((qh >> j) & 1) - 16));
    }
}

TEST_CASE("dequant: block layouts", "[dequant]") {
    CHECK((block_elements(ggml_type::f32) == 1 && block_bytes(ggml_type::f32) == 4));
    CHECK((block_elements(ggml_type::f16) == 1 && block_bytes(ggml_type::f16) == 2));
    CHECK((block_elements(ggml_type::bf16) == 1 && block_bytes(ggml_type::bf16) == 2));
    CHECK((block_elements(ggml_type::q4_0) == 32 && block_bytes(ggml_type::q4_0) == 18));
    CHECK((block_elements(ggml_type::q4_1) == 32 && block_bytes(ggml_type::q4_1) == 20));
    CHECK((block_elements(ggml_type::q5_0) == 32 && block_bytes(ggml_type::q5_0) == 22));
    CHECK((block_elements(ggml_type::q5_1) == 32 && block_bytes(ggml_type::q5_1) == 24));
    CHECK((block_elements(ggml_type::q8_0) == 32 && block_bytes(ggml_type::q8_0) == 34));
    CHECK((block_elements(ggml_type::q2_k) == 256 && block_bytes(ggml_type::q2_k) == 84));
    CHECK((block_elements(ggml_type::q3_k) == 256 && block_bytes(ggml_type::q3_k) == 110));
    CHECK((block_elements(ggml_type::q4_k) == 256 && block_bytes(ggml_type::q4_k) == 144));
    CHECK((block_elements(ggml_type::q5_k) == 256 && block_bytes(ggml_type::q5_k) == 176));
    CHECK((block_elements(ggml_type::q6_k) == 256 && block_bytes(ggml_type::q6_k) == 210));
    CHECK((block_elements(ggml_type::q8_k) == 256 && block_bytes(ggml_type::q8_k) == 292));
    CHECK(is_known_type(ggml_type::iq4_xs));
    CHECK_FALSE(is_known_type(ggml_type(4)));  // Q4_2, removed from ggml
    CHECK_THROWS_AS(block_bytes(ggml_type(99)), gguf_error);
    CHECK(std::string(to_string(ggml_type::q6_k)) == "Q6_K");
    CHECK(std::string(to_string(ggml_type(99))) == "unknown");
}

TEST_CASE("dequant: unsupported types and bad sizes throw", "[dequant]") {
    std::vector<float> out(256);
    const bytes raw(292 * 2);
    CHECK_FALSE(is_supported(ggml_type::q8_k));
    CHECK_FALSE(is_supported(ggml_type::iq2_xxs));
    CHECK_FALSE(is_supported(ggml_type(99)));
    CHECK_THROWS_WITH(dequantize(ggml_type::q8_k, raw.data(), 256, out.data()), Catch::Contains("Q8_K"));
    CHECK_THROWS_AS(dequantize(ggml_type::iq2_xxs, raw.data(), 256, out.data()), gguf_error);
    CHECK_THROWS_WITH(dequantize(ggml_type(99), raw.data(), 256, out.data()), Catch::Contains("99"));
    CHECK_THROWS_AS(dequantize(ggml_type::q4_1, raw.data(), 33, out.data()), atman::invalid_argument);
    CHECK_THROWS_AS(dequantize(ggml_type::q4_1, raw.data(), -32, out.data()), atman::invalid_argument);
    CHECK_THROWS_AS(dequantize(ggml_type::q4_1, nullptr, 32, out.data()), atman::invalid_argument);
    CHECK_NOTHROW(dequantize(ggml_type::q4_1, nullptr, 0, nullptr));
}

TEST_CASE("dequant: the default model's tensors match gguf-py's checksums", "[dequant][model]") {
    const nlohmann::json fixture = load_fixture("dequant_model_checksums.json");
    const gguf_file f = gguf_file::open(atman_test::model_path());
    for (const nlohmann::json& expected : fixture.at("tensors")) {
        const std::string name = expected.at("name");
        DYNAMIC_SECTION(name) {
            INFO("fixture made from " << fixture.at("model").get<std::string>() << ", sha256 "
                                      << fixture.at("model_sha256").get<std::string>());
            const tensor_info& t = f.tensor(name);
            CHECK(to_string(t.type) == expected.at("type").get<std::string>());
            CHECK(t.dims == expected.at("dims").get<std::vector<std::int64_t>>());
            REQUIRE(t.n_elements == expected.at("n_elements").get<std::int64_t>());
            std::vector<float> values(std::size_t(t.n_elements));
            dequantize(t.type, t.data, t.n_elements, values.data());
            double sum = 0, sum_of_squares = 0;
            for (float v : values) {
                sum += v;
                sum_of_squares += double(v) * v;
            }
            CHECK(sum == Approx(expected.at("sum").get<double>()).epsilon(1e-6));
            CHECK(sum_of_squares == Approx(expected.at("sum_of_squares").get<double>()).epsilon(1e-6));
            const std::vector<float> first(values.begin(), values.begin() + 16);
            const std::vector<float> last(values.end() - 16, values.end());
            CHECK(first_bit_mismatch(first, float_bits_from_hex(expected.at("first16_f32_hex"))) == -1);
            CHECK(first_bit_mismatch(last, float_bits_from_hex(expected.at("last16_f32_hex"))) == -1);
        }
    }
}
