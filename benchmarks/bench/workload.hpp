#pragma once
// atman-bench's cases: a prompt of N tokens (an English text, repeated), 8
// target tokens teacher-forced after it, and a number of token units spread
// evenly over the prompt, with the random sample of them (seed 1) that the
// naive path is timed on.

#include <atman/atman.hpp>

#include <algorithm>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/tokenizer.hpp"

namespace atman::bench {

namespace eng = atman::engine;

inline constexpr index_t target_count = 8;
inline constexpr std::uint32_t sample_seed = 1;

inline const char* const prompt_text =
    "The lighthouse keeper wrote in his log every evening, even when nothing had happened. "
    "He noted the wind, the colour of the sea and the ships that passed too close to the rocks. "
    "In winter the storms came from the west and the lamp had to be wound twice a night. "
    "His daughter learned to read from those pages, and later she kept the log herself, "
    "adding the names of the birds that rested on the gallery and the prices at the market "
    "in the village across the bay. When the light was finally automated, the books were "
    "taken to the museum, where visitors still ask why a keeper would write down a calm day. ";
inline const char* const target_text = " Because a calm day is also a record of the sea.";

struct workload {
    atman::explain_request request;  // all chosen units
    std::vector<index_t> naive_units;  // indices into request.units: the sample timed naively
};

inline workload make_workload(const eng::tokenizer& tok, index_t n_tokens, index_t n_units, index_t n_sample) {
    std::string text;
    std::vector<eng::token> encoded;
    while (index_t(encoded.size()) < n_tokens) {
        text += prompt_text;
        encoded = tok.encode(text);
    }
    encoded.resize(std::size_t(n_tokens));
    workload w;
    atman::explain_request& r = w.request;
    r.prompt = text.substr(0, std::size_t(encoded.back().end));
    std::vector<atman::token_offsets> offsets;
    for (const eng::token& t : encoded) {
        r.prompt_tokens.push_back(t.id);
        offsets.push_back({t.start, t.end, false});
    }
    r.target_tokens = tok.encode_ids(target_text);
    r.target_tokens.resize(std::size_t(target_count));
    r.target = tok.decode(r.target_tokens);

    atman::unit_options by_token;
    by_token.by = atman::granularity::token;
    const std::vector<atman::unit> all = atman::make_units(r.prompt, offsets, by_token);
    n_units = std::min<index_t>(n_units, index_t(all.size()));
    for (index_t k = 0; k < n_units; ++k)
        r.units.push_back(all[std::size_t((2 * k + 1) * index_t(all.size()) / (2 * n_units))]);

    std::vector<index_t> order(static_cast<std::size_t>(n_units));
    for (index_t k = 0; k < n_units; ++k) order[std::size_t(k)] = k;
    std::shuffle(order.begin(), order.end(), std::mt19937(sample_seed));
    order.resize(std::size_t(std::min(n_sample, n_units)));
    std::sort(order.begin(), order.end());
    w.naive_units = order;
    return w;
}

inline atman::explain_request with_units(const atman::explain_request& full, const std::vector<index_t>& chosen) {
    atman::explain_request r = full;
    r.units.clear();
    for (index_t k : chosen) r.units.push_back(full.units[std::size_t(k)]);
    return r;
}

}  // namespace atman::bench
