#include <atman/attention.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace {

using atman::index_t;
using atman::manipulation_mode;

// A strided (pos, head, d) array: either position-major or head-major, with padding,
// so the kernel is exercised on layouts other than the packed one.
template <class Scalar>
struct strided_tensor {
    index_t positions = 0, heads = 0, dim = 0, pos_stride = 0, head_stride = 0;
    std::vector<Scalar> data;

    strided_tensor(index_t positions_, index_t heads_, index_t dim_, bool head_major, index_t pad)
        : positions(positions_), heads(heads_), dim(dim_) {
        if (head_major) {
            pos_stride = dim + pad;
            head_stride = positions * pos_stride + pad;
        } else {
            head_stride = dim + pad;
            pos_stride = heads * head_stride + pad;
        }
        // NaN in the padding: reading it would poison the result.
        data.assign(std::size_t(std::max<index_t>(1, heads * head_stride + positions * pos_stride)),
                    std::numeric_limits<Scalar>::quiet_NaN());
    }
    Scalar& at(index_t pos, index_t head, index_t d) {
        return data[std::size_t(pos * pos_stride + head * head_stride + d)];
    }
    Scalar at(index_t pos, index_t head, index_t d) const {
        return data[std::size_t(pos * pos_stride + head * head_stride + d)];
    }
    void fill(std::mt19937& rng, double magnitude) {
        std::normal_distribution<double> normal(0, magnitude);
        for (index_t p = 0; p < positions; ++p)
            for (index_t h = 0; h < heads; ++h)
                for (index_t d = 0; d < dim; ++d) at(p, h, d) = Scalar(normal(rng));
    }
};

// One attention problem: the queries of one row, prefix and own K/V, factors.
template <class Scalar>
struct attention_problem {
    atman::attention_shape shape;
    index_t q_begin = 0, n_queries = 0;
    strided_tensor<Scalar> q, out, prefix_k, prefix_v, own_k, own_v;
    std::vector<float> factors;  // empty = none
    manipulation_mode mode = manipulation_mode::multiplicative;

    attention_problem(atman::attention_shape shape_, index_t prefix_length, index_t own_length,
                      index_t q_begin_, index_t n_queries_, std::mt19937& rng, double magnitude = 1)
        : shape(shape_),
          q_begin(q_begin_),
          n_queries(n_queries_),
          q(n_queries_, shape_.n_head, shape_.head_dim, rng() % 2 == 0, index_t(rng() % 3)),
          out(n_queries_, shape_.n_head, shape_.head_dim, rng() % 2 == 0, index_t(rng() % 3)),
          prefix_k(prefix_length, shape_.n_kv_head, shape_.head_dim, rng() % 2 == 0, 2),
          prefix_v(prefix_length, shape_.n_kv_head, shape_.head_dim, false, 0),
          own_k(own_length, shape_.n_kv_head, shape_.head_dim, rng() % 2 == 0, 1),
          own_v(own_length, shape_.n_kv_head, shape_.head_dim, false, 0) {
        // V shares K's strides (the API's contract): build V with K's layout.
        prefix_v = prefix_k;
        own_v = own_k;
        q.fill(rng, magnitude);
        prefix_k.fill(rng, magnitude);
        own_k.fill(rng, magnitude);
        prefix_v.fill(rng, 1);
        own_v.fill(rng, 1);
    }

    index_t n_keys() const { return prefix_k.positions + own_k.positions; }

    atman::attention_row<Scalar> row() {
        atman::attention_row<Scalar> r;
        r.q = q.data.data();
        r.q_pos_stride = q.pos_stride;
        r.q_head_stride = q.head_stride;
        r.q_begin = q_begin;
        r.n_queries = n_queries;
        r.prefix = {prefix_k.data.data(), prefix_v.data.data(), prefix_k.positions,
                    prefix_k.pos_stride, prefix_k.head_stride};
        r.own = {own_k.data.data(), own_v.data.data(), own_k.positions, own_k.pos_stride,
                 own_k.head_stride};
        r.key_factors = factors.empty() ? nullptr : factors.data();
        r.mode = mode;
        r.out = out.data.data();
        r.out_pos_stride = out.pos_stride;
        r.out_head_stride = out.head_stride;
        return r;
    }

    // The textbook computation in double: full score row, manipulation, causal
    // mask, softmax, weighted sum. Returns out(i, head, d) packed.
    std::vector<double> reference() const {
        const index_t n_head = shape.n_head, dim = shape.head_dim;
        const index_t group = n_head / shape.n_kv_head;
        const double scale = shape.scale == 0 ? 1 / std::sqrt(double(dim)) : shape.scale;
        const index_t n_prefix = prefix_k.positions;
        auto key = [&](index_t j, index_t kv, index_t d) {
            return j < n_prefix ? double(prefix_k.at(j, kv, d))
                                : double(own_k.at(j - n_prefix, kv, d));
        };
        auto value = [&](index_t j, index_t kv, index_t d) {
            return j < n_prefix ? double(prefix_v.at(j, kv, d))
                                : double(own_v.at(j - n_prefix, kv, d));
        };
        std::vector<double> result(std::size_t(n_queries * n_head * dim));
        for (index_t i = 0; i < n_queries; ++i) {
            const index_t n_visible = q_begin + i + 1;
            for (index_t h = 0; h < n_head; ++h) {
                const index_t kv = h / group;
                std::vector<double> s(std::size_t(n_keys()), 0.0);
                for (index_t j = 0; j < n_keys(); ++j) {
                    for (index_t d = 0; d < dim; ++d) s[j] += double(q.at(i, h, d)) * key(j, kv, d);
                    s[j] *= scale;
                }
                if (!factors.empty()) {
                    double row_min = std::numeric_limits<double>::infinity();
                    for (index_t j = 0; j < n_visible; ++j) row_min = std::min(row_min, s[j]);
                    for (index_t j = 0; j < n_visible; ++j) {
                        const double phi = factors[j];
                        s[j] = mode == manipulation_mode::multiplicative
                                   ? row_min + phi * (s[j] - row_min)
                                   : s[j] + (phi == 0 ? -1e4 : std::log(phi));
                    }
                }
                double row_max = -std::numeric_limits<double>::infinity();
                for (index_t j = 0; j < n_visible; ++j) row_max = std::max(row_max, s[j]);
                double sum = 0;
                std::vector<double> p(std::size_t(n_keys()), 0.0);
                for (index_t j = 0; j < n_visible; ++j) sum += p[j] = std::exp(s[j] - row_max);
                for (index_t d = 0; d < dim; ++d) {
                    double acc = 0;
                    for (index_t j = 0; j < n_visible; ++j) acc += p[j] * value(j, kv, d);
                    result[std::size_t((i * n_head + h) * dim + d)] = acc / sum;
                }
            }
        }
        return result;
    }

    // Largest |out - reference| over all outputs.
    double max_error() const {
        const auto expected = reference();
        double worst = 0;
        for (index_t i = 0; i < n_queries; ++i)
            for (index_t h = 0; h < shape.n_head; ++h)
                for (index_t d = 0; d < shape.head_dim; ++d) {
                    const double e =
                        expected[std::size_t((i * shape.n_head + h) * shape.head_dim + d)];
                    const double error = std::abs(double(out.at(i, h, d)) - e);
                    worst = std::isnan(error) ? std::numeric_limits<double>::infinity()
                                              : std::max(worst, error);
                }
        return worst;
    }
};

template <class Scalar>
double tolerance(double magnitude = 1) {
    return std::is_same_v<Scalar, float> ? 2e-5 * magnitude * magnitude
                                         : 1e-11 * magnitude * magnitude;
}

}  // namespace

TEMPLATE_TEST_CASE("attend matches the naive reference on random shapes", "[attention]", float,
                   double) {
    std::mt19937 rng(2024);
    const float factor_choices[] = {0.f, 0.1f, 1.f, 2.f};
    const index_t gqa_ratios[] = {1, 3, 8};
    const index_t head_dims[] = {1, 2, 7, 16, 33, 64, 80};
    int cases = 0;
    for (index_t ratio : gqa_ratios) {
        for (index_t head_dim : head_dims) {
            for (int trial = 0; trial < 4; ++trial) {
                const index_t n_kv_head = 1 + index_t(rng() % 2);
                atman::attention_shape shape{ratio * n_kv_head, n_kv_head, head_dim, 0};
                if (trial == 3) shape.scale = 0.37;
                const index_t total = 1 + index_t(rng() % 90);
                // Queries anywhere; the prefix/own split anywhere, including 0 and
                // own covering only the queries.
                const index_t n_queries = 1 + index_t(rng() % std::size_t(total));
                const index_t q_begin = index_t(rng() % std::size_t(total - n_queries + 1));
                const index_t last_query_end = q_begin + n_queries;
                index_t prefix_length;
                switch (trial % 4) {
                    case 0:
                        prefix_length = 0;
                        break;
                    case 1:
                        prefix_length = q_begin;
                        break;  // own = exactly the queries (and later keys)
                    default:
                        prefix_length = index_t(rng() % std::size_t(total + 1));
                        break;
                }
                attention_problem<TestType> problem(shape, prefix_length, total - prefix_length,
                                                    q_begin, n_queries, rng);
                const bool manipulated = trial != 2 || ratio != 1;
                if (manipulated) {
                    problem.factors.resize(std::size_t(total));
                    for (auto& f : problem.factors) f = factor_choices[rng() % 4];
                }
                problem.mode =
                    rng() % 2 ? manipulation_mode::multiplicative : manipulation_mode::log_additive;
                atman::attend(shape, problem.row());
                INFO("ratio " << ratio << ", head_dim " << head_dim << ", T " << total
                              << ", prefix " << prefix_length << ", queries " << q_begin << ".."
                              << last_query_end << ", mode " << atman::to_string(problem.mode)
                              << ", factors " << manipulated);
                CHECK(problem.max_error() <= tolerance<TestType>());
                ++cases;
            }
        }
    }
    CHECK(cases == 3 * 7 * 4);
}

TEMPLATE_TEST_CASE("attend covers tiles, long rows and every factor", "[attention]", float,
                   double) {
    // More queries than one tile holds, so tile boundaries and the causal tail are exercised.
    std::mt19937 rng(11);
    for (index_t ratio : {1, 3, 8}) {
        for (auto mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
            atman::attention_shape shape{ratio * 2, 2, 24, 0};
            attention_problem<TestType> problem(shape, 70, 130, 45, 150, rng);
            problem.factors.resize(200);
            for (auto& f : problem.factors) f = (rng() % 3 == 0) ? 0.1f : (rng() % 2 ? 1.f : 0.f);
            problem.mode = mode;
            atman::attend(shape, problem.row());
            INFO("ratio " << ratio << ", mode " << atman::to_string(mode));
            CHECK(problem.max_error() <= tolerance<TestType>());
        }
    }
}

TEMPLATE_TEST_CASE("attend with a few manipulated keys, as a perturbation has, matches the reference",
                   "[attention]", float, double) {
    // Few keys take the kernel's sparse path; over 150 queries x 6 heads some
    // row's largest score falls on a manipulated key, which must move its
    // maximum: with scores of ~1e4 (trials 4..7), the old one as softmax shift
    // would underflow every weight of such a row.
    std::mt19937 rng(23);
    const float factor_choices[] = {0.f, 0.1f, 0.5f, 2.f};
    for (int trial = 0; trial < 8; ++trial) {
        for (auto mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
            atman::attention_shape shape{6, 2, 24, 0};
            const double magnitude = trial < 4 ? 2 : 100;
            attention_problem<TestType> problem(shape, 70, 130, 45, 150, rng, magnitude);
            problem.factors.assign(200, 1.f);
            const int manipulated = 1 + trial % 4;
            for (int k = 0; k < manipulated; ++k) problem.factors[rng() % 200] = factor_choices[rng() % 4];
            problem.mode = mode;
            atman::attend(shape, problem.row());
            INFO("trial " << trial << ", mode " << atman::to_string(mode));
            // Float scores of 1e4 carry absolute rounding ~1e-3 (as in the test below).
            const bool large = magnitude > 2;
            CHECK(problem.max_error() <= (large ? (std::is_same_v<TestType, float> ? 5e-2 : 1e-8)
                                                : tolerance<TestType>(magnitude)));
        }
    }
}

TEMPLATE_TEST_CASE("attend is stable for large score magnitudes", "[attention]", float, double) {
    std::mt19937 rng(5);
    for (auto mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        atman::attention_shape shape{6, 2, 32, 0};
        attention_problem<TestType> problem(shape, 20, 41, 10, 51, rng, 100);  // scores ~ 1e4
        problem.factors.assign(61, 1.f);
        for (std::size_t j = 0; j < problem.factors.size(); j += 3) problem.factors[j] = 0.1f;
        problem.mode = mode;
        atman::attend(shape, problem.row());
        INFO("mode " << atman::to_string(mode));
        // Float scores of 1e4 carry absolute rounding ~1e-3, so weights are only that close.
        CHECK(problem.max_error() <= (std::is_same_v<TestType, float> ? 5e-2 : 1e-8));
    }
}

TEMPLATE_TEST_CASE("attend with a single key returns its value", "[attention]", float, double) {
    std::mt19937 rng(9);
    atman::attention_shape shape{3, 1, 5, 0};
    for (index_t prefix_length : {0, 1}) {
        attention_problem<TestType> problem(shape, prefix_length, 1 - prefix_length, 0, 1, rng);
        problem.factors = {0.f};
        atman::attend(shape, problem.row());
        const auto& v = prefix_length ? problem.prefix_v : problem.own_v;
        for (index_t h = 0; h < 3; ++h)
            for (index_t d = 0; d < 5; ++d)
                CHECK(double(problem.out.at(0, h, d)) == Approx(double(v.at(0, 0, d))));
    }
}

TEMPLATE_TEST_CASE("phi = 1 everywhere gives exactly plain attention", "[attention]", float,
                   double) {
    std::mt19937 rng(17);
    for (auto mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        atman::attention_shape shape{9, 3, 64, 0};
        attention_problem<TestType> problem(shape, 40, 60, 30, 70, rng, 3);
        atman::attend(shape, problem.row());
        const std::vector<TestType> plain = problem.out.data;
        problem.factors.assign(100, 1.f);
        problem.mode = mode;
        atman::attend(shape, problem.row());
        INFO("mode " << atman::to_string(mode));
        // Element-wise equality, NaN padding included, so compare bit patterns via memcmp-free
        // loop.
        index_t differing = 0;
        for (index_t i = 0; i < 70; ++i)
            for (index_t h = 0; h < 9; ++h)
                for (index_t d = 0; d < 64; ++d) {
                    const std::size_t at =
                        std::size_t(i * problem.out.pos_stride + h * problem.out.head_stride + d);
                    differing += plain[at] != problem.out.data[at];
                }
        CHECK(differing == 0);
    }
}

TEST_CASE("multiplicative minimum ignores future keys", "[attention]") {
    // Queries at positions 2..4; key 4 scores far below every other key, but
    // only query 4 sees it. Queries 2 and 3 must match the same problem without key 4.
    std::mt19937 rng(23);
    atman::attention_shape shape{2, 1, 8, 0};
    attention_problem<double> with_future(shape, 2, 3, 2, 3, rng);
    for (index_t i = 0; i < 3; ++i)
        for (index_t h = 0; h < 2; ++h)
            for (index_t d = 0; d < 8; ++d)
                with_future.q.at(i, h, d) = std::abs(with_future.q.at(i, h, d));
    for (index_t d = 0; d < 8; ++d) with_future.own_k.at(2, 0, d) = -1e3;
    with_future.factors = {0.1f, 1.f, 0.f, 0.5f, 0.f};
    atman::attend(shape, with_future.row());
    CHECK(with_future.max_error() <= 1e-12);

    atman::attention_row<double> truncated = with_future.row();
    truncated.own.length = 2;
    truncated.n_queries = 2;
    std::vector<double> out(with_future.out.data.size(), 0.0);
    truncated.out = out.data();
    atman::attend(shape, truncated);
    for (index_t i = 0; i < 2; ++i)
        for (index_t h = 0; h < 2; ++h)
            for (index_t d = 0; d < 8; ++d) {
                const std::size_t at = std::size_t(i * with_future.out.pos_stride +
                                                   h * with_future.out.head_stride + d);
                CHECK(out[at] == Approx(with_future.out.data[at]).epsilon(1e-12));
            }
}

TEST_CASE("log_additive phi = 0 removes the key", "[attention]") {
    // Independent of the manipulation formula: a bias of -1e4 makes exp() vanish,
    // so suppressing key 1 equals attention over keys {0, 2, 3} only.
    std::mt19937 rng(31);
    atman::attention_shape shape{1, 1, 4, 0};
    attention_problem<double> problem(shape, 0, 4, 3, 1, rng);  // one query at position 3
    problem.factors = {1.f, 0.f, 1.f, 1.f};
    problem.mode = manipulation_mode::log_additive;
    atman::attend(shape, problem.row());
    double scores[3], weights_sum = 0;
    const index_t kept[] = {0, 2, 3};
    for (int n = 0; n < 3; ++n) {
        scores[n] = 0;
        for (index_t d = 0; d < 4; ++d)
            scores[n] += problem.q.at(0, 0, d) * problem.own_k.at(kept[n], 0, d) / 2;
        scores[n] = std::exp(scores[n]);
        weights_sum += scores[n];
    }
    for (index_t d = 0; d < 4; ++d) {
        double expected = 0;
        for (int n = 0; n < 3; ++n)
            expected += scores[n] / weights_sum * problem.own_v.at(kept[n], 0, d);
        CHECK(problem.out.at(0, 0, d) == Approx(expected).epsilon(1e-12));
    }
}

TEMPLATE_TEST_CASE("attend over many rows equals row by row", "[attention]", float, double) {
    std::mt19937 rng(41);
    atman::attention_shape shape{8, 2, 16, 0};
    // Rows share the prefix (as the base pass's cache) but not their suffixes.
    std::vector<attention_problem<TestType>> problems;
    for (int r = 0; r < 5; ++r) {
        const index_t own_length = 3 + r * 7;
        problems.emplace_back(shape, 25, own_length, 25, own_length, rng);
        problems.back().prefix_k = problems.front().prefix_k;
        problems.back().prefix_v = problems.front().prefix_v;
        if (r != 2) {
            problems.back().factors.assign(std::size_t(25 + own_length), 1.f);
            problems.back().factors[std::size_t(r * 4)] = 0.f;
        }
        problems.back().mode =
            r % 2 ? manipulation_mode::multiplicative : manipulation_mode::log_additive;
    }
    std::vector<atman::attention_row<TestType>> rows;
    for (auto& p : problems) rows.push_back(p.row());
    atman::attend(shape, rows.data(), index_t(rows.size()));
    for (std::size_t r = 0; r < problems.size(); ++r) {
        INFO("row " << r);
        CHECK(problems[r].max_error() <= tolerance<TestType>());
    }
    CHECK_NOTHROW(atman::attend(shape, rows.data(), 0));
}

// The engines' batch invariance rests on this: the kernel's working buffer
// grows to the widest row seen, and a row's rounding must not follow it.
TEST_CASE("a row's result is bit-identical whatever rows were attended before it", "[attention]") {
    std::mt19937 rng(43);
    const atman::attention_shape shape{4, 1, 16, 0};
    attention_problem<float> row(shape, 0, 150, 0, 150, rng), wider(shape, 0, 301, 0, 301, rng);
    row.factors.assign(150, 1.f);
    row.factors[7] = 0.f;
    atman::attend(shape, row.row());
    const std::vector<float> alone = row.out.data;
    std::vector<atman::attention_row<float>> rows{wider.row(), row.row()};
    atman::attend(shape, rows.data(), 2);
    // memcmp: the padding holds NaN, which compares unequal to itself.
    CHECK(std::memcmp(alone.data(), row.out.data.data(), alone.size() * sizeof(float)) == 0);
}

TEST_CASE("attend rejects invalid input with a message naming it", "[attention]") {
    std::mt19937 rng(1);
    atman::attention_shape shape{4, 2, 8, 0};
    attention_problem<float> problem(shape, 3, 5, 3, 5, rng);
    problem.factors.assign(8, 1.f);
    const auto valid = problem.row();
    CHECK_NOTHROW(atman::attend(shape, valid));

    CHECK_THROWS_WITH(atman::attend(atman::attention_shape{6, 4, 8, 0}, valid),
                      Catch::Contains("multiple of n_kv_head"));
    CHECK_THROWS_AS(atman::attend(atman::attention_shape{4, 2, 0, 0}, valid),
                    atman::invalid_argument);
    CHECK_THROWS_AS(atman::attend(atman::attention_shape{0, 0, 8, 0}, valid),
                    atman::invalid_argument);
    CHECK_THROWS_WITH(atman::attend(atman::attention_shape{4, 2, 8, -1}, valid),
                      Catch::Contains("scale"));

    auto row = valid;
    row.n_queries = 6;  // 3 + 6 > 8 keys
    CHECK_THROWS_WITH(atman::attend(shape, row), Catch::Contains("keys"));
    row = valid;
    row.q_begin = -1;
    CHECK_THROWS_AS(atman::attend(shape, row), atman::invalid_argument);
    row = valid;
    row.own.length = -2;
    CHECK_THROWS_WITH(atman::attend(shape, row), Catch::Contains("own.length"));
    row = valid;
    row.prefix.k = nullptr;
    CHECK_THROWS_WITH(atman::attend(shape, row), Catch::Contains("prefix.k"));
    row = valid;
    row.out = nullptr;
    CHECK_THROWS_AS(atman::attend(shape, row), atman::invalid_argument);
    row = valid;
    row.q_head_stride = -8;
    CHECK_THROWS_WITH(atman::attend(shape, row), Catch::Contains("strides"));

    std::vector<float> bad_factors(8, 1.f);
    bad_factors[6] = std::numeric_limits<float>::quiet_NaN();
    row = valid;
    row.key_factors = bad_factors.data();
    std::vector<atman::attention_row<float>> rows = {valid, row};
    CHECK_THROWS_WITH(atman::attend(shape, rows.data(), 2),
                      Catch::Contains("row 1") && Catch::Contains("key_factors[6]"));
    CHECK_THROWS_AS(
        atman::attend(shape, static_cast<const atman::attention_row<float>*>(nullptr), 1),
        atman::invalid_argument);
}
