#include <atman/manipulation.hpp>
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace {

// The method's formulas, written out per key (atman-method.md, section 2).
std::vector<double> reference_manipulation(atman::manipulation_mode mode,
                                           const std::vector<double>& scores, std::size_t n_visible,
                                           const std::vector<float>& phi) {
    std::vector<double> result = scores;
    double row_min = std::numeric_limits<double>::infinity();
    for (std::size_t j = 0; j < n_visible; ++j) row_min = std::min(row_min, scores[j]);
    for (std::size_t j = 0; j < n_visible; ++j) {
        if (mode == atman::manipulation_mode::multiplicative) {
            result[j] = row_min + phi[j] * (scores[j] - row_min);
        } else {
            result[j] = scores[j] + (phi[j] == 0 ? -1e4 : std::log(double(phi[j])));
        }
    }
    return result;
}

const atman::manipulation_mode both_modes[] = {atman::manipulation_mode::multiplicative,
                                               atman::manipulation_mode::log_additive};

}  // namespace

TEMPLATE_TEST_CASE("manipulate_scores follows the formulas of both modes", "[manipulation]", float,
                   double) {
    std::mt19937 rng(7);
    std::normal_distribution<double> normal(0, 3);
    const float factor_choices[] = {0.f, 0.1f, 1.f, 2.f, 0.5f};
    std::uniform_int_distribution<int> pick(0, 4);
    const double tolerance = std::is_same_v<TestType, float> ? 1e-4 : 1e-12;

    for (auto mode : both_modes) {
        for (std::size_t n : {1, 2, 5, 33, 200}) {
            for (std::size_t n_visible : {std::size_t(1), n / 2 + 1, n}) {
                std::vector<double> scores(n);
                std::vector<float> phi(n);
                for (auto& s : scores) s = normal(rng);
                for (auto& f : phi) f = factor_choices[pick(rng)];
                std::vector<TestType> row(scores.begin(), scores.end());
                const std::vector<double> input(row.begin(), row.end());
                atman::manipulate_scores(mode, row.data(), atman::index_t(n_visible), phi.data());
                const auto expected = reference_manipulation(mode, input, n_visible, phi);
                for (std::size_t j = 0; j < n; ++j) {
                    INFO("mode " << atman::to_string(mode) << ", n " << n << ", visible "
                                 << n_visible << ", key " << j << ", phi " << phi[j]);
                    CHECK(double(row[j]) == Approx(expected[j]).margin(tolerance));
                }
            }
        }
    }
}

TEST_CASE("manipulate_scores leaves a row alone for phi = 1 or no factors", "[manipulation]") {
    std::mt19937 rng(3);
    std::normal_distribution<float> normal(0, 50);
    std::vector<float> row(97);
    for (auto& s : row) s = normal(rng);
    const std::vector<float> ones(row.size(), 1.f);
    for (auto mode : both_modes) {
        std::vector<float> manipulated = row;
        atman::manipulate_scores(mode, manipulated.data(), atman::index_t(row.size()), ones.data());
        CHECK(manipulated == row);
        atman::manipulate_scores(mode, manipulated.data(), atman::index_t(row.size()), nullptr);
        CHECK(manipulated == row);
    }
}

TEST_CASE("multiplicative minimum is taken over the visible keys only", "[manipulation]") {
    // The future key (index 3) is far below every visible score: it must not move the minimum.
    std::vector<double> row = {2.0, 5.0, 3.0, -100.0};
    const std::vector<float> phi = {1.f, 0.f, 0.5f, 0.f};
    atman::manipulate_scores(atman::manipulation_mode::multiplicative, row.data(), 3, phi.data());
    CHECK(row[0] == 2.0);
    CHECK(row[1] == 2.0);          // pulled down to the visible minimum 2
    CHECK(row[2] == Approx(2.5));  // 2 + 0.5 * (3 - 2)
    CHECK(row[3] == -100.0);       // beyond n_visible: untouched
}

TEST_CASE("phi = 0 pulls a key to the row minimum but does not remove it", "[manipulation]") {
    std::vector<float> row = {1.f, 4.f, -2.f};
    const std::vector<float> phi = {0.f, 0.f, 0.f};
    atman::manipulate_scores(atman::manipulation_mode::multiplicative, row.data(), 3, phi.data());
    for (float s : row) CHECK(s == Approx(-2.f));

    std::vector<float> additive = {1.f, 4.f, -2.f};
    atman::manipulate_scores(atman::manipulation_mode::log_additive, additive.data(), 3,
                             phi.data());
    CHECK(additive[1] == Approx(4.f - 1e4f));
}

TEST_CASE("validate_key_factors names the first bad factor", "[manipulation]") {
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const float inf = std::numeric_limits<float>::infinity();
    const std::vector<float> good = {0.f, 0.1f, 1.f, 2.f};
    CHECK_NOTHROW(atman::validate_key_factors(good.data(), 4));
    CHECK_NOTHROW(atman::validate_key_factors(nullptr, 0));

    const std::vector<float> negative = {1.f, 1.f, -0.5f, nan};
    CHECK_THROWS_WITH(atman::validate_key_factors(negative.data(), 4),
                      Catch::Contains("key_factors[2]"));
    const std::vector<float> not_a_number = {1.f, nan};
    CHECK_THROWS_AS(atman::validate_key_factors(not_a_number.data(), 2), atman::invalid_argument);
    CHECK_THROWS_WITH(atman::validate_key_factors(not_a_number.data(), 2),
                      Catch::Contains("key_factors[1]"));
    const std::vector<float> infinite = {inf};
    CHECK_THROWS_WITH(atman::validate_key_factors(infinite.data(), 1),
                      Catch::Contains("key_factors[0]"));
    CHECK_THROWS_AS(atman::validate_key_factors(nullptr, 3), atman::invalid_argument);
    CHECK_THROWS_AS(atman::validate_key_factors(good.data(), -1), atman::invalid_argument);
}
