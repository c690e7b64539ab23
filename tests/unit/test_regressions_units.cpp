// Inputs the fuzzers (fuzz/fuzz_units.cpp) found to misbehave, kept as tests.
// Under the sanitizer build an overflow here fails the test run.

#include <catch2/catch.hpp>

#include <limits>
#include <string>
#include <vector>

#include <atman/units.hpp>

namespace {

std::vector<atman::token_offsets> one_byte_tokens(atman::index_t n) {
    std::vector<atman::token_offsets> tokens;
    for (atman::index_t i = 0; i < n; ++i) tokens.push_back({i, i + 1, false});
    return tokens;
}

}  // namespace

TEST_CASE("a grid whose rows x cols overflows is rejected, not multiplied") {
    const std::string text = "abcdefgh";
    const auto tokens = one_byte_tokens(8);
    atman::unit_options options;
    options.by = atman::granularity::grid;
    const atman::index_t big = atman::index_t(1844674407370955161);  // big * big overflows 64 bits
    for (const atman::grid_layout grid : {atman::grid_layout{0, big, big, 1, 1}, atman::grid_layout{2, 2, big, 1, 1},
                                          atman::grid_layout{std::numeric_limits<atman::index_t>::max(), 1, 1, 1, 1}}) {
        options.grid = grid;
        CHECK_THROWS_WITH(atman::make_units(text, tokens, options), Catch::Contains("do not fit in 8 tokens"));
    }
    options.grid = {4, 2, 2, 1, 1};  // the last four tokens exactly
    CHECK(atman::make_units(text, tokens, options).size() == 4);
    options.grid = {5, 2, 2, 1, 1};  // one past the end
    CHECK_THROWS_AS(atman::make_units(text, tokens, options), atman::invalid_argument);
}
