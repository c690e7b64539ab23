// Fuzzes unit segmentation: arbitrary text (UTF-8 or not), token offsets,
// explain ranges, spans, delimiters and grids at every granularity. Bad input
// must end in atman::invalid_argument; what make_units returns must satisfy
// the unit invariants (validate_units) and cover only eligible tokens.

#include <fuzzer/FuzzedDataProvider.h>

#include <atman/units.hpp>

#include <cstdint>
#include <string>
#include <vector>

#include "check.hpp"

namespace {

// Mostly plausible offsets: each token starts where the last ended, within
// the text; sometimes arbitrary (out of range, overlapping, empty).
std::vector<atman::token_offsets> fuzz_tokens(FuzzedDataProvider& in, atman::index_t text_size) {
    std::vector<atman::token_offsets> tokens;
    const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 48);
    atman::index_t at = 0;
    for (std::size_t i = 0; i < n; ++i) {
        atman::token_offsets t;
        if (in.ConsumeIntegralInRange<int>(0, 15) == 0) {
            t.start = in.ConsumeIntegralInRange<atman::index_t>(-2, text_size + 2);
            t.end = in.ConsumeIntegralInRange<atman::index_t>(-2, text_size + 2);
        } else {
            t.start = at;
            t.end = std::min(text_size, at + in.ConsumeIntegralInRange<atman::index_t>(0, 6));
        }
        t.special = in.ConsumeIntegralInRange<int>(0, 7) == 0;
        at = std::max(at, t.end);
        tokens.push_back(t);
    }
    return tokens;
}

std::vector<atman::byte_range> fuzz_ranges(FuzzedDataProvider& in, atman::index_t text_size) {
    std::vector<atman::byte_range> ranges;
    const std::size_t n = in.ConsumeIntegralInRange<std::size_t>(0, 4);
    for (std::size_t i = 0; i < n; ++i) {
        const atman::index_t start = in.ConsumeIntegralInRange<atman::index_t>(-1, text_size + 1);
        ranges.push_back({start, start + in.ConsumeIntegralInRange<atman::index_t>(-1, text_size + 1)});
    }
    return ranges;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    FuzzedDataProvider in(data, size);
    atman::unit_options options;
    options.by = static_cast<atman::granularity>(in.ConsumeIntegralInRange<int>(0, 6));
    const std::string text = in.ConsumeRandomLengthString(512);
    const auto text_size = static_cast<atman::index_t>(text.size());
    const std::vector<atman::token_offsets> tokens = fuzz_tokens(in, text_size);
    const auto n_tokens = static_cast<atman::index_t>(tokens.size());
    switch (in.ConsumeIntegralInRange<int>(0, 2)) {
        case 1: options.range.bytes = fuzz_ranges(in, text_size); break;
        case 2: {
            const atman::index_t begin = in.ConsumeIntegralInRange<atman::index_t>(-1, n_tokens + 1);
            options.range.positions.push_back({begin, in.ConsumeIntegralInRange<atman::index_t>(-1, n_tokens + 1)});
            break;
        }
        default: break;
    }
    options.delimiter = in.ConsumeRandomLengthString(4);
    options.spans = fuzz_ranges(in, text_size);
    options.grid.first_position = in.ConsumeIntegralInRange<atman::index_t>(-1, n_tokens);
    // Mostly small grids; sometimes sizes whose product overflows.
    const bool huge = in.ConsumeIntegralInRange<int>(0, 15) == 0;
    options.grid.rows = huge ? in.ConsumeIntegral<atman::index_t>() : in.ConsumeIntegralInRange<atman::index_t>(-1, 8);
    options.grid.cols = huge ? in.ConsumeIntegral<atman::index_t>() : in.ConsumeIntegralInRange<atman::index_t>(-1, 8);
    options.grid.cell_rows = in.ConsumeIntegralInRange<atman::index_t>(-1, 4);
    options.grid.cell_cols = in.ConsumeIntegralInRange<atman::index_t>(-1, 4);

    std::vector<atman::unit> units;
    try {
        units = atman::make_units(text, tokens, options);
    } catch (const atman::invalid_argument&) {
        return 0;
    }
    atman::validate_units(units, n_tokens, text_size);  // throws (= a finding) when broken
    // No spans give no units (explain then rejects the request); anything else gives some.
    ATMAN_FUZZ_CHECK(!units.empty() || (options.by == atman::granularity::spans && options.spans.empty()));
    for (const atman::unit& u : units)
        for (atman::index_t p : u.positions) ATMAN_FUZZ_CHECK(!tokens[static_cast<std::size_t>(p)].special);
    return 0;
}
