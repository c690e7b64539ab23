// The quality metrics, labels, baselines and deletion helpers of atman-eval
// (benchmarks/eval/), on hand-computed cases.

#include <catch2/catch.hpp>

#include <atman/units.hpp>

#include <cmath>
#include <limits>
#include <set>
#include <vector>

#include "../../benchmarks/eval/agreement.hpp"
#include "../../benchmarks/eval/baselines.hpp"
#include "../../benchmarks/eval/deletion.hpp"
#include "../../benchmarks/eval/labels.hpp"
#include "../../benchmarks/eval/metrics.hpp"
#include "../../benchmarks/eval/random.hpp"

using atman::byte_range;
using atman::index_t;

TEST_CASE("average precision and recall on hand-computed samples") {
    // |x| = 1 2 0 4, sum 7, max 4; positives are units 0 and 3.
    const std::vector<double> x{1, -2, 0, 4};
    const std::vector<int> y{1, 0, 0, 1};
    CHECK(atman::eval::average_precision(x, y) == Approx(5.0 / 7.0));
    CHECK(atman::eval::average_recall(x, y) == Approx((0.25 + 1.0) / 2.0));

    // Relevance only on the answer: perfect; only off it: zero.
    CHECK(atman::eval::average_precision({0, 3, 0}, {0, 1, 0}) == Approx(1.0));
    CHECK(atman::eval::average_recall({0, 3, 0}, {0, 1, 0}) == Approx(1.0));
    CHECK(atman::eval::average_precision({2, 0, 5}, {0, 1, 0}) == 0.0);
    CHECK(atman::eval::average_recall({2, 0, 5}, {0, 1, 0}) == 0.0);

    // The negative sign counts as relevance: AP and AR use |x|.
    CHECK(atman::eval::average_precision({-3, 1}, {1, 0}) == Approx(0.75));
    CHECK(atman::eval::average_recall({-3, 1}, {0, 1}) == Approx(1.0 / 3.0));
}

TEST_CASE("uniform and all-zero relevance give the share of positives and full recall") {
    const std::vector<int> y{0, 1, 1, 0, 0};
    for (const std::vector<double>& x : {std::vector<double>{2, 2, 2, 2, 2}, std::vector<double>(5, 0.0)}) {
        CHECK(atman::eval::average_precision(x, y) == Approx(0.4));
        CHECK(atman::eval::average_recall(x, y) == Approx(1.0));
    }
}

TEST_CASE("metrics reject samples they cannot score") {
    using atman::invalid_argument;
    CHECK_THROWS_AS(atman::eval::average_precision({}, {}), invalid_argument);
    CHECK_THROWS_AS(atman::eval::average_precision({1, 2}, {1}), invalid_argument);
    CHECK_THROWS_AS(atman::eval::average_recall({1, 2}, {0, 0}), invalid_argument);
    CHECK_THROWS_AS(atman::eval::average_recall({1, 2}, {2, 0}), invalid_argument);
    CHECK_THROWS_AS(atman::eval::average_precision({1, std::nan("")}, {1, 0}), invalid_argument);
    CHECK_THROWS_AS(atman::eval::average_precision({1, std::numeric_limits<double>::infinity()}, {1, 0}),
                    invalid_argument);
}

TEST_CASE("interquartile mean keeps the values between the outward-rounded quartiles") {
    // n = 9: q25 = v_2 = 3, q75 = v_6 = 7 -> mean of 3..7.
    CHECK(atman::eval::interquartile_mean({9, 1, 8, 2, 7, 3, 6, 4, 5}) == Approx(5.0));
    // n = 6: sorted 0 1 3 5 8 10, q25 = v_floor(1.25) = 1, q75 = v_ceil(3.75) = 8.
    CHECK(atman::eval::interquartile_mean({10, 0, 5, 1, 8, 3}) == Approx((1 + 3 + 5 + 8) / 4.0));
    // n = 2 keeps both, n = 1 the one value.
    CHECK(atman::eval::interquartile_mean({1, 3}) == Approx(2.0));
    CHECK(atman::eval::interquartile_mean({0.25}) == Approx(0.25));
    // Ties with a quartile are all kept: q25 = q75 = 2.
    CHECK(atman::eval::interquartile_mean({1, 2, 2, 2, 10}) == Approx(2.0));
    CHECK(atman::eval::mean({1, 2, 6}) == Approx(3.0));
    CHECK_THROWS_AS(atman::eval::interquartile_mean({}), atman::invalid_argument);
}

// "Zürich – 日本 😀 ok": code points (bytes) Z0(0) ü1(1-2) r2(3) i3(4) c4(5) h5(6)
// ' '6(7) –7(8-10) ' '8(11) 日9(12-14) 本10(15-17) ' '11(18) 😀12(19-22) ' '13(23)
// o14(24) k15(25), 26 bytes.
static const std::string multi_byte = "Z\xC3\xBCrich \xE2\x80\x93 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 ok";

TEST_CASE("code point offsets become byte offsets across multi-byte characters") {
    REQUIRE(multi_byte.size() == 26);
    const std::vector<std::pair<index_t, index_t>> expected{
        {0, 0}, {1, 1}, {2, 3}, {7, 8}, {8, 11}, {9, 12}, {10, 15}, {12, 19}, {13, 23}, {14, 24}, {16, 26}};
    for (const auto& [code_points, bytes] : expected) {
        INFO("code point " << code_points);
        CHECK(atman::eval::code_points_to_bytes(multi_byte, code_points) == bytes);
    }
    CHECK_THROWS_AS(atman::eval::code_points_to_bytes(multi_byte, 17), atman::invalid_argument);
    CHECK_THROWS_AS(atman::eval::code_points_to_bytes(multi_byte, -1), atman::invalid_argument);
    CHECK_THROWS_AS(atman::eval::code_points_to_bytes("a\xFF" "b", 3), atman::invalid_argument);
}

TEST_CASE("an answer is found only at its code point offset") {
    const auto japan = atman::eval::answer_bytes(multi_byte, "\xE6\x97\xA5\xE6\x9C\xAC", 9);
    REQUIRE(japan);
    CHECK(japan->start == 12);
    CHECK(japan->end == 18);
    // Off by one code point, the byte offset read as code points, past the end, empty text.
    CHECK_FALSE(atman::eval::answer_bytes(multi_byte, "\xE6\x97\xA5\xE6\x9C\xAC", 10));
    CHECK_FALSE(atman::eval::answer_bytes(multi_byte, "\xE6\x97\xA5\xE6\x9C\xAC", 12));
    CHECK_FALSE(atman::eval::answer_bytes(multi_byte, "ok", 40));
    CHECK_FALSE(atman::eval::answer_bytes(multi_byte, "ok", 15));
    CHECK_FALSE(atman::eval::answer_bytes(multi_byte, "", 0));
    const auto ok = atman::eval::answer_bytes(multi_byte, "ok", 14);
    REQUIRE(ok);
    CHECK(ok->start == 24);
    CHECK(ok->end == 26);
}

TEST_CASE("word units of a multi-byte text are labelled by overlap with the answers") {
    // Byte-level BPE style tokens: each word after the first carries its leading space.
    const std::vector<atman::token_offsets> tokens{{0, 7}, {7, 11}, {11, 18}, {18, 23}, {23, 26}};
    const std::vector<atman::unit> units = atman::make_units(multi_byte, tokens, {});
    REQUIRE(units.size() == 5);
    std::vector<byte_range> ranges;
    for (const atman::unit& u : units) ranges.push_back({u.start, u.end});
    // Trimmed word ranges: Zürich [0,7) – [8,11) 日本 [12,18) 😀 [19,23) ok [24,26).
    CHECK(ranges[1].start == 8);
    CHECK(ranges[2].start == 12);
    CHECK(ranges[3].end == 23);

    const auto japan = atman::eval::answer_bytes(multi_byte, "\xE6\x97\xA5\xE6\x9C\xAC", 9);
    CHECK(atman::eval::unit_labels(ranges, {*japan}) == std::vector<int>{0, 0, 1, 0, 0});
    // "h – 日" (code points 5..9) overlaps three words; a second answer adds "ok".
    const auto across = atman::eval::answer_bytes(multi_byte, "h \xE2\x80\x93 \xE6\x97\xA5", 5);
    const auto ok = atman::eval::answer_bytes(multi_byte, "ok", 14);
    REQUIRE(across);
    REQUIRE(ok);
    CHECK(atman::eval::unit_labels(ranges, {*across, *ok}) == std::vector<int>{1, 1, 1, 0, 1});
    // The space between 日本 and 😀 touches both words and overlaps neither.
    CHECK(atman::eval::unit_labels(ranges, {{18, 19}}) == std::vector<int>{0, 0, 0, 0, 0});
    CHECK(atman::eval::unit_labels(ranges, {}) == std::vector<int>{0, 0, 0, 0, 0});
}

TEST_CASE("the seeded generator repeats, and its permutations are permutations") {
    atman::eval::splitmix64 a = atman::eval::sample_generator(7, 3, 0);
    atman::eval::splitmix64 b = atman::eval::sample_generator(7, 3, 0);
    atman::eval::splitmix64 other_sample = atman::eval::sample_generator(7, 4, 0);
    atman::eval::splitmix64 other_purpose = atman::eval::sample_generator(7, 3, 1);
    const double first = a.uniform();
    CHECK(first == b.uniform());
    CHECK(first != other_sample.uniform());
    CHECK(first != other_purpose.uniform());
    for (int i = 0; i < 1000; ++i) {
        const double u = a.uniform();
        CHECK((0.0 <= u && u < 1.0));
    }
    const std::vector<index_t> order = atman::eval::random_permutation(50, a);
    CHECK(std::set<index_t>(order.begin(), order.end()).size() == 50);
    CHECK(*std::min_element(order.begin(), order.end()) == 0);
    CHECK(*std::max_element(order.begin(), order.end()) == 49);
    // SplitMix64's first output for seed 0 (Steele, Lea and Flood's reference sequence).
    CHECK(atman::eval::splitmix64(0).next() == 0xE220A8397B1DCDAFull);
}

// Three layers of causal attention over 5 positions, rows summing to 1.
static std::vector<Eigen::MatrixXf> causal_maps() {
    std::vector<Eigen::MatrixXf> maps;
    for (int layer = 0; layer < 3; ++layer) {
        Eigen::MatrixXf a = Eigen::MatrixXf::Zero(5, 5);
        for (int q = 0; q < 5; ++q) {
            float sum = 0;
            for (int k = 0; k <= q; ++k) sum += a(q, k) = float(1 + (q * 7 + k * 3 + layer * 5) % 11);
            a.row(q) /= sum;
        }
        maps.push_back(a);
    }
    return maps;
}

TEST_CASE("attention baselines sum the attention from the scored positions to each unit") {
    const std::vector<Eigen::MatrixXf> maps = causal_maps();
    const std::vector<atman::unit> units{{{0, 1}, 0, 1}, {{2}, 2, 3}};
    const index_t first_scored = 3;  // queries 3 and 4 score the target

    const std::vector<double> last = atman::eval::attention_last_relevance(maps, units, first_scored);
    const Eigen::MatrixXf& a = maps.back();
    REQUIRE(last.size() == 2);
    CHECK(last[0] == Approx(double(a(3, 0) + a(3, 1) + a(4, 0) + a(4, 1))));
    CHECK(last[1] == Approx(double(a(3, 2) + a(4, 2))));

    // Naive rollout: r = identity; for each layer r = ((A + I) / 2) r, element by element.
    double r[5][5] = {};
    for (int i = 0; i < 5; ++i) r[i][i] = 1;
    for (const Eigen::MatrixXf& map : maps) {
        double next[5][5] = {};
        for (int q = 0; q < 5; ++q)
            for (int j = 0; j < 5; ++j)
                for (int k = 0; k < 5; ++k)
                    next[q][j] += (0.5 * map(q, k) + (q == k ? 0.5 : 0.0)) * r[k][j];
        std::copy(&next[0][0], &next[0][0] + 25, &r[0][0]);
    }
    const std::vector<double> rollout = atman::eval::attention_rollout_relevance(maps, units, first_scored);
    REQUIRE(rollout.size() == 2);
    CHECK(rollout[0] == Approx(r[3][0] + r[3][1] + r[4][0] + r[4][1]));
    CHECK(rollout[1] == Approx(r[3][2] + r[4][2]));

    CHECK_THROWS_AS(atman::eval::attention_last_relevance({}, units, 3), atman::invalid_argument);
    CHECK_THROWS_AS(atman::eval::attention_last_relevance(maps, units, 5), atman::invalid_argument);
    CHECK_THROWS_AS(atman::eval::attention_last_relevance(maps, {{{7}, 0, 0}}, 3), atman::invalid_argument);
    std::vector<Eigen::MatrixXf> ragged = maps;
    ragged[1] = Eigen::MatrixXf::Zero(4, 4);
    CHECK_THROWS_AS(atman::eval::attention_rollout_relevance(ragged, units, 3), atman::invalid_argument);
}

TEST_CASE("deletion ranks by signed relevance, breaks ties by the given order, and rounds up") {
    CHECK(atman::eval::ranking({0.5, -2, 3, 0.5}, {0, 1, 2, 3}) == std::vector<index_t>{2, 0, 3, 1});
    CHECK(atman::eval::ranking({0.5, -2, 3, 0.5}, {3, 2, 1, 0}) == std::vector<index_t>{2, 3, 0, 1});
    CHECK(atman::eval::ranking({1, 1, 1}, {2, 0, 1}) == std::vector<index_t>{2, 0, 1});
    CHECK_THROWS_AS(atman::eval::ranking({1, 1}, {0, 0}), atman::invalid_argument);
    CHECK_THROWS_AS(atman::eval::ranking({1, 1}, {0}), atman::invalid_argument);

    CHECK(atman::eval::deleted_count(7, 10) == 1);
    CHECK(atman::eval::deleted_count(7, 20) == 2);
    CHECK(atman::eval::deleted_count(7, 50) == 4);
    CHECK(atman::eval::deleted_count(10, 50) == 5);
    CHECK(atman::eval::deleted_count(3, 10) == 1);
    CHECK_THROWS_AS(atman::eval::deleted_count(0, 10), atman::invalid_argument);
    CHECK_THROWS_AS(atman::eval::deleted_count(5, 0), atman::invalid_argument);

    const std::vector<atman::unit> units{{{1, 2}, 0, 1}, {{4}, 2, 3}, {{5}, 4, 5}};
    const atman::perturbation deleted = atman::eval::deletion_perturbation(units, {2, 0, 1}, 2, 7, 0.1f);
    CHECK(deleted.positions == std::vector<atman::index_t>{1, 2, 5});
    CHECK(deleted.factors == std::vector<float>(3, 0.1f));
    CHECK(deleted.first_affected == 1);
    CHECK_THROWS_AS(atman::eval::deletion_perturbation(units, {2, 0, 1}, 4, 7, 0.1f), atman::invalid_argument);
    CHECK_THROWS_AS(atman::eval::deletion_perturbation(units, {2, 0, 1}, 0, 7, 0.1f), atman::invalid_argument);
    CHECK_THROWS_AS(atman::eval::deletion_perturbation(units, {2, 0, 1}, 3, 5, 0.1f), atman::invalid_argument);
}

TEST_CASE("agreement: top-k overlap and Spearman on hand-computed cases") {
    // top 2 of a: units 1, 3; of b: units 3, 0.
    const std::vector<double> a{0.1, 5, -1, 3}, b{2, 0, 1, 9};
    CHECK(atman::eval::top_k_overlap(a, b, 2) == Approx(0.5));
    CHECK(atman::eval::top_k_overlap(a, a, 3) == Approx(1.0));
    CHECK(atman::eval::top_k_overlap(a, b, 10) == Approx(1.0));  // k beyond the size: all units
    CHECK(atman::eval::top_indices({1, 2, 2, 0}, 2) == std::vector<index_t>{1, 2});  // ties: lower index
    // ranks of a: 2 4 1 3, of b: 3 1 2 4; d = -1 3 -1 -1, sum d^2 = 12, rho = 1 - 6*12/(4*15) = -0.2.
    CHECK(atman::eval::spearman(a, b) == Approx(-0.2));
    CHECK(atman::eval::spearman(a, {1, 3, 0, 2}) == Approx(1.0));
    // ties get mid-ranks: (1, 2.5, 2.5, 4) against (1, 2, 3, 4): rho = 4.5 / sqrt(4.5 * 5)
    CHECK(atman::eval::mid_ranks({0, 1, 1, 2}) == std::vector<double>{1, 2.5, 2.5, 4});
    CHECK(atman::eval::spearman({0, 1, 1, 2}, {0, 1, 2, 3}) == Approx(4.5 / std::sqrt(4.5 * 5)));
    CHECK(std::isnan(atman::eval::spearman({1, 1, 1}, {0, 1, 2})));
    CHECK_THROWS_WITH(atman::eval::spearman({1}, {1}), Catch::Contains("at least 2"));
    CHECK_THROWS_WITH(atman::eval::top_k_overlap(a, {1}, 2), Catch::Contains("of one size"));
    // a ranks 1 3 0 2: the best labelled unit of {0, 0, 1, 1} is 3, second; of {1, 0, 0, 0} unit 0, third.
    CHECK(atman::eval::answer_rank(a, {0, 0, 1, 1}) == 2);
    CHECK(atman::eval::answer_rank(a, {1, 0, 0, 0}) == 3);
    CHECK(atman::eval::answer_rank({1, 1, 1}, {0, 0, 1}) == 3);  // ties to the lower index
    CHECK(atman::eval::answer_rank(a, {0, 0, 0, 0}) == 0);
    CHECK_THROWS_WITH(atman::eval::answer_rank(a, {1}), Catch::Contains("one label per score"));
}
