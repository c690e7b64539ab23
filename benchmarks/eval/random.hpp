#pragma once
// A small seeded generator (SplitMix64) whose sequence is the same with every
// compiler and standard library, so random baselines and tie-breaks repeat
// exactly across machines (std::uniform_real_distribution and std::shuffle
// are implementation-defined).

#include <atman/config.hpp>

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

namespace atman::eval {

class splitmix64 {
public:
    explicit splitmix64(std::uint64_t seed) : state_(seed) {}

    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform in [0, 1) with 53 random bits.
    double uniform() { return double(next() >> 11) * 0x1.0p-53; }
    // Uniform in [0, n) for n >= 1 (the modulo bias of 64-bit draws is negligible here).
    std::uint64_t below(std::uint64_t n) { return next() % n; }

private:
    std::uint64_t state_;
};

// The generator for one sample of a run and one purpose: depends on nothing
// else, so a sample draws the same numbers whichever other samples a run holds.
inline splitmix64 sample_generator(std::uint64_t seed, index_t sample, std::uint64_t purpose) {
    const std::uint64_t key = splitmix64(splitmix64(seed).next() ^ std::uint64_t(sample)).next();
    return splitmix64(key ^ purpose);
}

// A permutation of 0..n-1 (Fisher-Yates).
inline std::vector<index_t> random_permutation(index_t n, splitmix64& rng) {
    std::vector<index_t> order(std::size_t(std::max<index_t>(n, 0)));
    std::iota(order.begin(), order.end(), index_t(0));
    for (index_t i = n - 1; i > 0; --i) std::swap(order[i], order[rng.below(std::uint64_t(i) + 1)]);
    return order;
}

}  // namespace atman::eval
