// cuda::manipulate_scores (a materialised rows x heads x queries x keys score
// tensor) against its CPU twin atman::manipulate_scores, applied row by row.
#include <atman/cuda/manipulation.cuh>
#include <atman/manipulation.hpp>
#include <random>
#include <string>
#include <vector>

#include "harness.hpp"
#include "support.hpp"

namespace {

using atman::index_t;
using atman::manipulation_mode;
using namespace atman::cuda_test;

struct scores_case {
    atman::cuda::score_tensor_shape shape{3, 4, 7, 45, 0};
    float magnitude = 5;
    std::vector<float> factor_choices = {1, 1, 0.1f, 0, 2.5f};
    bool has_factors = true;
};

template <class Scalar>
void check_scores(const scores_case& c, manipulation_mode mode, unsigned seed) {
    std::mt19937 rng(seed);
    const auto& shape = c.shape;
    const std::size_t size = std::size_t(shape.n_rows * shape.n_head * shape.n_queries * shape.n_keys);
    typed_values<Scalar> scores = round_to<Scalar>(random_values(size, c.magnitude, rng));
    std::vector<float> factors(std::size_t(shape.n_rows * shape.n_keys));
    std::uniform_int_distribution<std::size_t> pick(0, c.factor_choices.size() - 1);
    for (float& phi : factors) phi = c.factor_choices[pick(rng)];

    device_array<Scalar> device_scores(scores.typed);
    const device_array<float> device_factors(factors);
    atman::cuda::manipulate_scores(mode, device_scores.data(), shape,
                                   c.has_factors ? device_factors.data() : nullptr);
    atman::cuda::check(cudaDeviceSynchronize(), "manipulate_scores");

    std::vector<float>& expected = scores.exact;
    for (index_t r = 0; r < shape.n_rows; ++r) {
        for (index_t h = 0; h < shape.n_head; ++h) {
            for (index_t i = 0; i < shape.n_queries; ++i) {
                float* row = expected.data() + ((r * shape.n_head + h) * shape.n_queries + i) * shape.n_keys;
                const index_t n_visible = std::min(shape.q_offset + i + 1, shape.n_keys);
                atman::manipulate_scores(mode, row, n_visible,
                                         c.has_factors ? factors.data() + r * shape.n_keys : nullptr);
            }
        }
    }
    const std::string problem = mismatch(to_floats(device_scores.download()), expected, tolerance<Scalar>());
    ATMAN_REQUIRE(problem.empty(), std::string(atman::cuda::scalar_name<Scalar>()) + " " +
                                       atman::to_string(mode) + ", q_offset " +
                                       std::to_string(shape.q_offset) + ": " + problem);
}

template <class Scalar>
void check_offsets_and_modes(scores_case c) {
    for (index_t q_offset : {0, 20, 38, 100}) {  // 38 + 7 = 45 keys; 100: every key visible
        c.shape.q_offset = q_offset;
        for (manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive})
            check_scores<Scalar>(c, mode, unsigned(q_offset) + 1);
    }
}

ATMAN_GPU_TEST(scores_random_float32) { check_offsets_and_modes<float>({}); }
ATMAN_GPU_TEST(scores_random_float16) { check_offsets_and_modes<__half>({}); }
ATMAN_GPU_TEST(scores_random_bfloat16) { check_offsets_and_modes<__nv_bfloat16>({}); }

// Scores of +-1e4 (as large as the log_additive zero bias), and rows longer than a warp's stride.
ATMAN_GPU_TEST(scores_very_large) {
    scores_case c;
    c.magnitude = 1e4f;
    c.shape.n_keys = 300;
    check_offsets_and_modes<float>(c);
    check_offsets_and_modes<__half>(c);
}

ATMAN_GPU_TEST(scores_single_key_and_uniform_factors) {
    scores_case c;
    c.shape = {2, 3, 1, 1, 0};
    for (float phi : {0.0f, 1.0f, 4.0f}) {
        c.factor_choices = {phi};
        check_offsets_and_modes<float>(c);
    }
    c.shape = {2, 3, 5, 40, 10};
    c.factor_choices = {0};
    check_offsets_and_modes<float>(c);
    check_offsets_and_modes<__nv_bfloat16>(c);
}

ATMAN_GPU_TEST(scores_without_factors_untouched) {
    scores_case c;
    c.has_factors = false;
    check_offsets_and_modes<float>(c);
}

ATMAN_HOST_TEST(scores_rejects_bad_shape) {
    float dummy = 0;
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::manipulate_scores(manipulation_mode::multiplicative, &dummy,
                                                           {1, 1, 1, 1, -1}, &dummy),
                            atman::invalid_argument);
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::manipulate_scores(manipulation_mode::log_additive, &dummy,
                                                           {1, -2, 1, 1, 0}, &dummy),
                            atman::invalid_argument);
}

}  // namespace
