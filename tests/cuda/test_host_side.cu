// The host side of the CUDA tests and the code the GPU shares with the CPU,
// checked on the CPU (no device needed): the score formula against the
// method in double, the rounding of inputs, and the comparisons the GPU tests rely on.
#include <atman/cuda/neighborhood.cuh>
#include <atman/manipulation.hpp>
#include <cmath>
#include <random>
#include <vector>

#include "harness.hpp"
#include "neighborhood_compare.hpp"
#include "support.hpp"

namespace {

using atman::index_t;
using atman::manipulation_mode;
using namespace atman::cuda_test;

ATMAN_HOST_TEST(shared_score_formula_matches_the_method_in_double) {
    std::mt19937 rng(3);
    for (manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        const std::vector<float> scores = random_values(50, 30, rng);
        const std::vector<float> phi = {1, 0, 0.1f, 2.5f, 1, 0.37f, 0, 1, 7, 0.5f};
        const index_t n_visible = 41;
        float row_min = scores[0];
        for (index_t j = 1; j < n_visible; ++j) row_min = std::fmin(row_min, scores[std::size_t(j)]);
        std::vector<float> got, expected;
        for (index_t j = 0; j < n_visible; ++j) {
            const float s = scores[std::size_t(j)], f = phi[std::size_t(j) % phi.size()];
            got.push_back(atman::manipulated_score(mode, s, atman::key_coefficient(mode, f), row_min));
            // atman-method.md, section 2, in double.
            const double m = row_min;
            expected.push_back(float(mode == manipulation_mode::multiplicative
                                         ? m + double(f) * (double(s) - m)
                                         : double(s) + (f == 0 ? -1e4 : std::log(double(f)))));
        }
        const std::string problem = mismatch(got, expected, 1e-4);
        ATMAN_REQUIRE(problem.empty(), std::string(atman::to_string(mode)) + ": " + problem);
    }
    // phi = 1 leaves a score bit-exact in both modes; phi = 0 in log_additive adds the zero bias.
    ATMAN_REQUIRE(atman::manipulated_score(manipulation_mode::multiplicative, 0.3f,
                                           atman::key_coefficient(manipulation_mode::multiplicative, 1), -7.0f) == 0.3f,
                  "multiplicative phi = 1 changed the score");
    ATMAN_REQUIRE(atman::key_coefficient(manipulation_mode::log_additive, 0) == atman::log_additive_zero_bias,
                  "log_additive phi = 0 is not the zero bias");
}

ATMAN_HOST_TEST(mismatch_accepts_within_tolerance_and_rejects_beyond) {
    const std::vector<float> expected = {1, -200, 0, 3.5f};
    ATMAN_REQUIRE(mismatch(expected, expected, 1e-4).empty(), "identical vectors differ");
    ATMAN_REQUIRE(mismatch({1.00005f, -200.01f, 0.00009f, 3.5f}, expected, 1e-4).empty(),
                  "differences inside the tolerance rejected");
    ATMAN_REQUIRE(!mismatch({1.0002f, -200, 0, 3.5f}, expected, 1e-4).empty(), "relative error 2e-4 accepted");
    ATMAN_REQUIRE(!mismatch({1, -200.05f, 0, 3.5f}, expected, 1e-4).empty(), "error 0.05 at 200 accepted");
    ATMAN_REQUIRE(!mismatch({1, -200, NAN, 3.5f}, expected, 1e-4).empty(), "NaN accepted");
    ATMAN_REQUIRE(!mismatch({1, -200, 0}, expected, 1e-4).empty(), "shorter vector accepted");
}

ATMAN_HOST_TEST(rounded_inputs_are_what_the_cpu_sees) {
    std::mt19937 rng(4);
    const std::vector<float> values = random_values(100, 70000, rng);
    const auto half = round_to<__half>(values);
    const auto brain = round_to<__nv_bfloat16>(values);
    const auto single = round_to<float>(values);
    ATMAN_REQUIRE(single.exact == values, "float32 inputs were changed");
    for (std::size_t i = 0; i < values.size(); ++i) {
        ATMAN_REQUIRE(atman::cuda::to_float(half.typed[i]) == half.exact[i], "float16 copy differs");
        ATMAN_REQUIRE(atman::cuda::to_float(brain.typed[i]) == brain.exact[i], "bfloat16 copy differs");
        ATMAN_REQUIRE(std::fabs(brain.exact[i] - values[i]) <= std::fabs(values[i]) / 128, "bfloat16 rounding too coarse");
        if (std::fabs(values[i]) < 65504)
            ATMAN_REQUIRE(std::fabs(half.exact[i] - values[i]) <= std::fabs(values[i]) / 1024, "float16 rounding too coarse");
    }
}

ATMAN_HOST_TEST(cosine_similarity_snaps_near_unit) {
    const float slack = 8 * std::sqrt(16.0f) * FLT_EPSILON;
    ATMAN_REQUIRE(atman::cuda::detail::cosine_similarity(4.0000005f, 0.5f, 0.5f, slack) == 1.0f, "not snapped to 1");
    ATMAN_REQUIRE(atman::cuda::detail::cosine_similarity(-3.9999995f, 0.5f, 0.5f, slack) == -1.0f, "not snapped to -1");
    ATMAN_REQUIRE(atman::cuda::detail::cosine_similarity(2.0f, 0.5f, 0.5f, slack) == 0.5f, "0.5 changed");
}

atman::neighborhood csr(std::vector<index_t> offsets, std::vector<index_t> neighbors, std::vector<float> similarity) {
    atman::neighborhood h;
    h.offsets = std::move(offsets);
    h.neighbors = std::move(neighbors);
    h.similarity = std::move(similarity);
    return h;
}

ATMAN_HOST_TEST(neighborhood_comparison_tolerates_only_the_threshold) {
    const auto expected = csr({0, 2, 3, 3}, {1, 2, 0}, {0.9f, 0.7000001f, 0.9f});
    ATMAN_REQUIRE(neighborhood_mismatch(expected, expected, 0.7, 0, 1e-5).empty(), "identical differ");
    const auto at_threshold = csr({0, 1, 2, 2}, {1, 0}, {0.9f, 0.9f});
    ATMAN_REQUIRE(neighborhood_mismatch(at_threshold, expected, 0.7, 0, 1e-5).empty(),
                  "a pair at kappa may be missing");
    const auto missing = csr({0, 2, 2, 2}, {1, 2}, {0.9f, 0.7000001f});
    ATMAN_REQUIRE(!neighborhood_mismatch(missing, expected, 0.7, 0, 1e-5).empty(), "a clear neighbour missing");
    const auto unsorted = csr({0, 2, 3, 3}, {2, 1, 0}, {0.7000001f, 0.9f, 0.9f});
    ATMAN_REQUIRE(!neighborhood_mismatch(unsorted, expected, 0.7, 0, 1e-5).empty(), "unsorted row accepted");
    const auto off = csr({0, 2, 3, 3}, {1, 2, 0}, {0.8f, 0.7000001f, 0.9f});
    ATMAN_REQUIRE(!neighborhood_mismatch(off, expected, 0.7, 0, 1e-5).empty(), "wrong similarity accepted");
    const auto capped = csr({0, 1, 2, 2}, {2, 0}, {0.9f, 0.9f});
    const auto capped_tie = csr({0, 1, 2, 2}, {1, 0}, {0.9f, 0.9f});
    const auto tie = csr({0, 2, 3, 3}, {1, 2, 0}, {0.9f, 0.9f, 0.9f});
    ATMAN_REQUIRE(neighborhood_mismatch(capped, csr({0, 1, 2, 2}, {2, 0}, {0.9f, 0.9f}), 0.7, 1, 1e-5).empty(),
                  "capped identical differ");
    ATMAN_REQUIRE(!neighborhood_mismatch(capped, capped_tie, 0.7, 0, 1e-5).empty(), "different neighbour accepted");
    ATMAN_REQUIRE(neighborhood_mismatch(capped, capped_tie, 0.7, 1, 1e-5).empty() &&
                      neighborhood_mismatch(tie, tie, 0.7, 0, 1e-5).empty(),
                  "a tie at the cap may go either way");
}

}  // namespace
