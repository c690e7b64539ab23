#include <atman/neighborhood.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <set>
#include <vector>

namespace {

using atman::index_t;

// Row-major n x dim embeddings drawn around a few cluster centres, so that
// similarities spread over [-1, 1] rather than bunching near 0.
template <class Scalar>
std::vector<Scalar> clustered_embeddings(index_t n, index_t dim, std::mt19937& rng) {
    std::normal_distribution<double> normal(0, 1);
    std::vector<std::vector<double>> centres(4, std::vector<double>(std::size_t(dim)));
    for (auto& c : centres)
        for (auto& x : c) x = normal(rng);
    std::vector<Scalar> e(std::size_t(n * dim));
    for (index_t i = 0; i < n; ++i) {
        const auto& c = centres[rng() % 4];
        const double spread = 0.2 + 0.3 * double(rng() % 4);
        const double sign = rng() % 5 == 0 ? -1 : 1;
        for (index_t d = 0; d < dim; ++d)
            e[std::size_t(i * dim + d)] = Scalar(sign * c[std::size_t(d)] + spread * normal(rng));
    }
    return e;
}

// Brute-force cosine similarity in double, straight from the definition.
template <class Scalar>
double cosine(const std::vector<Scalar>& e, index_t dim, index_t i, index_t j) {
    double dot = 0, ni = 0, nj = 0;
    for (index_t d = 0; d < dim; ++d) {
        const double a = e[std::size_t(i * dim + d)], b = e[std::size_t(j * dim + d)];
        dot += a * b;
        ni += a * a;
        nj += b * b;
    }
    const double s = dot / (std::max(std::sqrt(ni), 1e-8) * std::max(std::sqrt(nj), 1e-8));
    return std::clamp(s, -1.0, 1.0);
}

// Checks a result against brute force. Pairs within `tol` of the threshold (or of
// the cap's cut) may go either way, since float rounding decides them.
template <class Scalar>
void check_against_brute_force(const atman::neighborhood& result, const std::vector<Scalar>& e,
                               index_t n, index_t dim, const atman::neighborhood_options& options) {
    const double tol = std::is_same_v<Scalar, float> ? 2e-5 : 1e-10;
    std::vector<bool> candidate(std::size_t(n), options.candidates.empty());
    for (index_t c : options.candidates) candidate[std::size_t(c)] = true;

    REQUIRE(result.size() == n);
    REQUIRE(result.offsets.front() == 0);
    REQUIRE(result.offsets.back() == index_t(result.neighbors.size()));
    REQUIRE(result.similarity.size() == result.neighbors.size());
    for (index_t i = 0; i < n; ++i) {
        INFO("row " << i << ", kappa " << options.kappa << ", cap " << options.max_neighbors
                    << ", block " << options.block);
        REQUIRE(result.offsets[std::size_t(i)] <= result.offsets[std::size_t(i + 1)]);
        const index_t begin = result.offsets[std::size_t(i)],
                      end = result.offsets[std::size_t(i + 1)];
        if (!candidate[std::size_t(i)]) {
            CHECK(begin == end);
            continue;
        }
        std::set<index_t> returned;
        double weakest_returned = 2;
        for (index_t k = begin; k < end; ++k) {
            const index_t j = result.neighbors[std::size_t(k)];
            const double s = result.similarity[std::size_t(k)];
            REQUIRE(j >= 0);
            REQUIRE(j < n);
            CHECK(j != i);
            CHECK(candidate[std::size_t(j)]);
            CHECK(returned.insert(j).second);
            const double expected = cosine(e, dim, i, j);
            CHECK(s == Approx(expected).margin(tol));
            CHECK(expected >= options.kappa - tol);
            weakest_returned = std::min(weakest_returned, expected);
            if (k > begin) {  // decreasing similarity, ties by increasing position
                const double previous = result.similarity[std::size_t(k - 1)];
                CHECK(previous >= s);
                if (previous == s) CHECK(result.neighbors[std::size_t(k - 1)] < j);
            }
        }
        index_t sure = 0, possible = 0;  // neighbours by brute force, certainly / within rounding
        for (index_t j = 0; j < n; ++j) {
            if (j == i || !candidate[std::size_t(j)]) continue;
            const double s = cosine(e, dim, i, j);
            sure += s >= options.kappa + tol;
            possible += s >= options.kappa - tol;
            const bool cut_by_cap =
                options.max_neighbors > 0 && end - begin == options.max_neighbors;
            if (s >= options.kappa + tol && !returned.count(j)) {
                INFO("missing neighbour " << j << " with similarity " << s);
                CHECK(cut_by_cap);
                CHECK(s <= weakest_returned + tol);
            }
        }
        const index_t cap = options.max_neighbors > 0 ? options.max_neighbors : n;
        CHECK(end - begin >= std::min(cap, sure));
        CHECK(end - begin <= std::min(cap, possible));
    }
}

}  // namespace

TEMPLATE_TEST_CASE("find_neighbors matches brute force over blocks, kappas and caps",
                   "[neighborhood]", float, double) {
    std::mt19937 rng(99);
    const index_t n = 37, dim = 19;
    const auto e = clustered_embeddings<TestType>(n, dim, rng);
    int runs = 0;
    for (index_t block : {1, 7, 37, 50}) {
        for (double kappa : {-1.0, 0.0, 0.7, 1.0}) {
            for (index_t cap : {0, 1, 4}) {
                atman::neighborhood_options options;
                options.kappa = kappa;
                options.block = block;
                options.max_neighbors = cap;
                const auto result = atman::find_neighbors(e.data(), n, dim, options);
                check_against_brute_force(result, e, n, dim, options);
                ++runs;
            }
        }
    }
    CHECK(runs == 4 * 4 * 3);
}

TEMPLATE_TEST_CASE("find_neighbors finds duplicates and parallel copies at kappa = 1",
                   "[neighborhood]", float, double) {
    std::mt19937 rng(5);
    const index_t dim = 64;
    auto e = clustered_embeddings<TestType>(12, dim, rng);
    // Positions 3, 7 and 10 share a direction (7 an exact copy, 10 a scaled copy).
    for (index_t d = 0; d < dim; ++d) {
        e[std::size_t(7 * dim + d)] = e[std::size_t(3 * dim + d)];
        e[std::size_t(10 * dim + d)] = TestType(2.5) * e[std::size_t(3 * dim + d)];
    }
    atman::neighborhood_options options;
    options.kappa = 1;
    const auto result = atman::find_neighbors(e.data(), 12, dim, options);
    check_against_brute_force(result, e, 12, dim, options);
    const auto row = [&](index_t i) {
        return std::vector<index_t>(result.neighbors.begin() + result.offsets[std::size_t(i)],
                                    result.neighbors.begin() + result.offsets[std::size_t(i + 1)]);
    };
    CHECK(row(3) == std::vector<index_t>{7, 10});
    CHECK(row(7) == std::vector<index_t>{3, 10});
    CHECK(row(10) == std::vector<index_t>{3, 7});
    for (float s : result.similarity) CHECK(s == 1.f);
    CHECK(result.neighbors.size() == 6);
}

TEST_CASE("find_neighbors treats zero vectors as similarity 0", "[neighborhood]") {
    std::mt19937 rng(8);
    const index_t n = 10, dim = 6;
    auto e = clustered_embeddings<double>(n, dim, rng);
    for (index_t d = 0; d < dim; ++d) {
        e[std::size_t(2 * dim + d)] = 0;
        e[std::size_t(5 * dim + d)] = 0;
    }
    for (double kappa : {-1.0, 0.0, 0.7, 1.0}) {
        atman::neighborhood_options options;
        options.kappa = kappa;
        options.block = 3;
        const auto result = atman::find_neighbors(e.data(), n, dim, options);
        check_against_brute_force(result, e, n, dim, options);
        const index_t zero_row_size = result.offsets[3] - result.offsets[2];
        CHECK(zero_row_size == (kappa <= 0 ? n - 1 : 0));  // s = 0 with everyone
    }
}

TEMPLATE_TEST_CASE("find_neighbors restricted to candidates", "[neighborhood]", float, double) {
    std::mt19937 rng(13);
    const index_t n = 30, dim = 8;
    const auto e = clustered_embeddings<TestType>(n, dim, rng);
    for (index_t block : {1, 4, 100}) {
        atman::neighborhood_options options;
        options.kappa = 0.3;
        options.block = block;
        options.candidates = {25, 3, 4, 17, 9, 4, 29, 0};  // unsorted, with a duplicate
        const auto result = atman::find_neighbors(e.data(), n, dim, options);
        check_against_brute_force(result, e, n, dim, options);
        options.max_neighbors = 2;
        check_against_brute_force(atman::find_neighbors(e.data(), n, dim, options), e, n, dim,
                                  options);
    }
}

TEST_CASE("find_neighbors on empty and single inputs", "[neighborhood]") {
    const std::vector<float> one = {1.f, 2.f};
    const auto single = atman::find_neighbors(one.data(), 1, 2, atman::neighborhood_options{});
    CHECK(single.size() == 1);
    CHECK(single.offsets == std::vector<index_t>{0, 0});
    const auto none = atman::find_neighbors(static_cast<const float*>(nullptr), 0, 4,
                                            atman::neighborhood_options{});
    CHECK(none.size() == 0);
    CHECK(none.neighbors.empty());
}

TEST_CASE("find_neighbors rejects invalid input with a message naming it", "[neighborhood]") {
    const std::vector<float> e(12, 1.f);  // 4 x 3
    auto with = [](auto change) {
        atman::neighborhood_options options;
        change(options);
        return options;
    };
    CHECK_THROWS_WITH(atman::find_neighbors(e.data(), 4, 3, with([](auto& o) { o.kappa = 1.5; })),
                      Catch::Contains("kappa"));
    CHECK_THROWS_WITH(atman::find_neighbors(e.data(), 4, 3, with([](auto& o) { o.kappa = -1.01; })),
                      Catch::Contains("kappa"));
    CHECK_THROWS_AS(atman::find_neighbors(e.data(), 4, 3, with([](auto& o) {
                                              o.kappa = std::numeric_limits<double>::quiet_NaN();
                                          })),
                    atman::invalid_argument);
    CHECK_THROWS_WITH(atman::find_neighbors(e.data(), 4, 3, with([](auto& o) { o.block = 0; })),
                      Catch::Contains("block"));
    CHECK_THROWS_WITH(
        atman::find_neighbors(e.data(), 4, 3, with([](auto& o) { o.max_neighbors = -1; })),
        Catch::Contains("max_neighbors"));
    CHECK_THROWS_WITH(atman::find_neighbors(e.data(), 4, 3, with([](auto& o) {
                                                o.candidates = {0, 4};
                                            })),
                      Catch::Contains("candidate 4"));
    CHECK_THROWS_WITH(
        atman::find_neighbors(e.data(), 4, 3, with([](auto& o) { o.candidates = {-1}; })),
        Catch::Contains("candidate -1"));
    const atman::neighborhood_options defaults;
    CHECK_THROWS_WITH(atman::find_neighbors(e.data(), 4, 0, defaults), Catch::Contains("dim"));
    CHECK_THROWS_AS(atman::find_neighbors(e.data(), -1, 3, defaults), atman::invalid_argument);
    CHECK_THROWS_AS(atman::find_neighbors(static_cast<const float*>(nullptr), 4, 3, defaults),
                    atman::invalid_argument);

    std::vector<float> bad = e;
    bad[7] = std::numeric_limits<float>::infinity();  // position 2
    CHECK_THROWS_AS(atman::find_neighbors(bad.data(), 4, 3, defaults), atman::numeric_error);
    CHECK_THROWS_WITH(atman::find_neighbors(bad.data(), 4, 3, defaults),
                      Catch::Contains("position 2"));
    // A bad embedding outside the candidates is never read.
    CHECK_NOTHROW(atman::find_neighbors(bad.data(), 4, 3, with([](auto& o) {
                                            o.candidates = {0, 3};
                                        })));
}
