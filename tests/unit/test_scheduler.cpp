#include <atman/scheduler.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <vector>

namespace {

using atman::index_t;

std::vector<atman::unit> units_at(const std::vector<std::vector<index_t>>& groups) {
    std::vector<atman::unit> units;
    for (const auto& g : groups) units.push_back({g, 0, 0});
    return units;
}

// A neighbourhood over n positions from undirected edges (i, j, s).
atman::neighborhood neighbourhood_of(
    index_t n, const std::vector<std::tuple<index_t, index_t, float>>& edges) {
    std::vector<std::vector<std::pair<index_t, float>>> rows(static_cast<std::size_t>(n));
    for (const auto& [i, j, s] : edges) {
        rows[i].emplace_back(j, s);
        rows[j].emplace_back(i, s);
    }
    atman::neighborhood nb;
    nb.offsets.push_back(0);
    for (const auto& row : rows) {
        for (const auto& [j, s] : row) {
            nb.neighbors.push_back(j);
            nb.similarity.push_back(s);
        }
        nb.offsets.push_back(index_t(nb.neighbors.size()));
    }
    return nb;
}

// The dense factors of each unit's perturbation, keyed by unit index.
std::map<index_t, std::vector<float>> dense_by_unit(const atman::plan& p) {
    std::map<index_t, std::vector<float>> out;
    for (const auto& x : p.perturbations) {
        REQUIRE(x.kind == atman::perturbation_kind::unit);
        std::vector<float> dense(std::size_t(p.length), 1.0f);
        for (std::size_t k = 0; k < x.positions.size(); ++k) dense[x.positions[k]] = x.factors[k];
        out[x.index] = dense;
    }
    return out;
}

void check_budget(const atman::plan& p) {
    index_t next = 0;
    for (const atman::batch& b : p.batches) {
        CHECK(b.begin == next);
        CHECK(b.end > b.begin);
        CHECK(b.end - b.begin <= p.max_rows);
        index_t rows = 0;
        for (index_t i = b.begin; i < b.end; ++i)
            rows += p.length - p.perturbations[i].first_affected;
        CHECK(b.token_rows == rows);
        if (p.max_token_rows > 0 && b.end - b.begin > 1) CHECK(rows <= p.max_token_rows);
        next = b.end;
    }
    CHECK(next == index_t(p.perturbations.size()));
}

}  // namespace

TEST_CASE("one perturbation per unit, sorted by first affected position") {
    const auto units = units_at({{7, 8}, {2}, {4, 6}, {0}, {9}});
    atman::config cfg;
    cfg.factor = 0.25;
    const atman::plan p = atman::make_plan(units, {12, 9, nullptr}, cfg);
    REQUIRE(p.perturbations.size() == units.size());
    std::vector<index_t> order, firsts;
    for (const auto& x : p.perturbations) {
        order.push_back(x.index);
        firsts.push_back(x.first_affected);
        CHECK(x.positions == units[x.index].positions);
        CHECK(x.factors == std::vector<float>(units[x.index].positions.size(), 0.25f));
    }
    CHECK(order == std::vector<index_t>{3, 1, 2, 0, 4});
    CHECK(firsts == std::vector<index_t>{0, 2, 4, 7, 9});
    CHECK(dense_by_unit(p)[2] == std::vector<float>{1, 1, 1, 1, 0.25f, 1, 0.25f, 1, 1, 1, 1, 1});
}

TEST_CASE("batches respect the row and token-row budgets") {
    std::vector<std::vector<index_t>> groups;
    for (index_t i = 0; i < 20; ++i) groups.push_back({i});
    const auto units = units_at(groups);
    const index_t length = 30;
    for (auto [rows, token_rows] : std::vector<std::pair<index_t, index_t>>{
             {0, 0}, {1, 0}, {3, 0}, {0, 50}, {4, 70}, {100, 1}}) {
        atman::config cfg;
        cfg.max_batch_rows = rows;
        cfg.max_batch_token_rows = token_rows;
        const atman::plan p = atman::make_plan(units, {length, 19, nullptr}, cfg);
        INFO("rows " << rows << ", token rows " << token_rows);
        CHECK(p.max_rows == (rows == 0 ? atman::default_max_batch_rows : rows));
        // Both bounds 0 select the automatic token-row budget; otherwise 0 means unbounded.
        CHECK(p.max_token_rows == (rows == 0 && token_rows == 0 ? atman::default_batch_token_rows : token_rows));
        check_budget(p);
        CHECK(p.token_rows() == length * 20 - 19 * 20 / 2);
        if (rows == 3 && token_rows == 0) CHECK(p.batches.size() == 7);
        if (rows == 0 && token_rows == 50) CHECK(p.batches.front().end == 1);  // 30 + 29 > 50
        if (token_rows == 1) CHECK(p.batches.size() == 20);  // every row above the bound: alone
    }
}

TEST_CASE("conceptual suppression: neighbour factors, minimum combination, first affected") {
    // Units {1}, {2, 3}, {5}, {6}; position 7 is outside every unit.
    const auto units = units_at({{1}, {2, 3}, {5}, {6}});
    const auto nb = neighbourhood_of(8, {{6, 1, 0.9f},
                                         {6, 2, 0.8f},
                                         {5, 2, 0.75f},
                                         {3, 6, 0.95f},
                                         {6, 7, 0.99f},
                                         {5, 6, 0.7f},
                                         {1, 0, 0.9f}});
    atman::config cfg;
    cfg.conceptual = true;
    cfg.factor = 0.1;
    const atman::plan p = atman::make_plan(units, {8, 7, &nb}, cfg);
    const auto dense = dense_by_unit(p);
    const auto f = [](float s) { return float(1 - (1 - 0.1) * double(s)); };
    CHECK(dense.at(3) == std::vector<float>{1, f(0.9f), f(0.8f), f(0.95f), 1, f(0.7f), 0.1f, 1});
    CHECK(dense.at(1) ==
          std::vector<float>{1, 1, 0.1f, 0.1f, 1, f(0.75f), std::min(f(0.8f), f(0.95f)), 1});
    CHECK(dense.at(0) == std::vector<float>{1, 0.1f, 1, 1, 1, 1, f(0.9f), 1});
    const std::map<index_t, index_t> first_affected = {{0, 1}, {1, 2}, {2, 2}, {3, 1}};
    for (const auto& x : p.perturbations) CHECK(x.first_affected == first_affected.at(x.index));

    cfg.factor = 2;  // amplification: the strongest is the largest
    const auto amplified = dense_by_unit(atman::make_plan(units, {8, 7, &nb}, cfg));
    CHECK(amplified.at(1)[6] == float(1 + double(0.95f)));
    CHECK(amplified.at(1)[2] == 2.0f);

    cfg.conceptual = false;
    CHECK(dense_by_unit(atman::make_plan(units, {8, 7, &nb}, cfg)).at(3) ==
          std::vector<float>{1, 1, 1, 1, 1, 1, 2, 1});
}

TEST_CASE("earlier-target perturbations cover the in-sequence targets") {
    const auto units = units_at({{1}, {3}});
    atman::config cfg;
    cfg.explain_targets_by_earlier_targets = true;
    const atman::plan p = atman::make_plan(units, {10, 5, nullptr}, cfg);  // n = 6, m = 5
    std::vector<std::pair<index_t, index_t>> targets;
    for (const auto& x : p.perturbations) {
        if (x.kind != atman::perturbation_kind::target) continue;
        targets.emplace_back(x.index, x.first_affected);
        CHECK(x.positions == std::vector<index_t>{x.first_affected});
    }
    CHECK(targets == std::vector<std::pair<index_t, index_t>>{{0, 6}, {1, 7}, {2, 8}, {3, 9}});
    CHECK(p.perturbations.size() == 6);
    check_budget(p);
}

TEST_CASE("shards partition the plan and balance token-rows, not unit counts") {
    // One expensive unit at the start, many cheap ones at the end.
    std::vector<std::vector<index_t>> groups = {{0}, {50}};
    for (index_t i = 60; i < 100; ++i) groups.push_back({i});
    atman::config cfg;
    cfg.max_batch_rows = 3;
    const atman::plan full = atman::make_plan(units_at(groups), {100, 99, nullptr}, cfg);
    index_t max_cost = 0;
    for (const auto& x : full.perturbations) max_cost = std::max(max_cost, 100 - x.first_affected);

    for (index_t count : {1, 2, 3, 5, 50}) {
        INFO(count << " shards");
        std::multiset<index_t> seen;
        std::vector<index_t> loads, sizes;
        for (index_t k = 0; k < count; ++k) {
            const atman::plan part = atman::shard(full, k, count);
            check_budget(part);
            CHECK(std::is_sorted(
                part.perturbations.begin(), part.perturbations.end(),
                [](const auto& a, const auto& b) { return a.first_affected < b.first_affected; }));
            for (const auto& x : part.perturbations) seen.insert(x.index);
            loads.push_back(part.token_rows());
            sizes.push_back(index_t(part.perturbations.size()));
            const atman::plan again = atman::shard(full, k, count);
            CHECK(again.perturbations.size() == part.perturbations.size());
        }
        CHECK(seen.size() == groups.size());
        CHECK(std::set<index_t>(seen.begin(), seen.end()).size() == groups.size());
        const auto [lo, hi] = std::minmax_element(loads.begin(), loads.end());
        if (count < index_t(groups.size())) CHECK(*hi - *lo <= max_cost);
        if (count == 2) {
            CHECK(*hi - *lo <= 2);  // 100 + 50 + sum(1..40) = 970 splits almost evenly
            CHECK(sizes[0] != sizes[1]);
        }
    }
}

TEST_CASE("the scheduler rejects bad input") {
    const auto units = units_at({{1}, {2}});
    atman::config cfg;
    CHECK_NOTHROW(atman::make_plan(units, {5, 3, nullptr}, cfg));
    atman::config bad = cfg;
    bad.factor = -0.5;
    CHECK_THROWS_AS(atman::make_plan(units, {5, 3, nullptr}, bad), atman::invalid_argument);
    bad = cfg;
    bad.max_batch_rows = -1;
    CHECK_THROWS_AS(atman::make_plan(units, {5, 3, nullptr}, bad), atman::invalid_argument);
    CHECK_THROWS_AS(atman::make_plan({}, {5, 3, nullptr}, cfg), atman::invalid_argument);
    CHECK_THROWS_AS(atman::make_plan(units_at({{1}, {1}}), {5, 3, nullptr}, cfg),
                    atman::invalid_argument);
    CHECK_THROWS_AS(atman::make_plan(units_at({{4}}), {5, 3, nullptr}, cfg),
                    atman::invalid_argument);  // target position
    CHECK_THROWS_AS(atman::make_plan(units, {5, 5, nullptr}, cfg), atman::invalid_argument);
    bad = cfg;
    bad.conceptual = true;
    CHECK_THROWS_AS(atman::make_plan(units, {5, 3, nullptr}, bad), atman::invalid_argument);
    const auto small = neighbourhood_of(4, {});
    CHECK_THROWS_AS(atman::make_plan(units, {5, 3, &small}, bad), atman::invalid_argument);
    const atman::plan p = atman::make_plan(units, {5, 3, nullptr}, cfg);
    CHECK_THROWS_AS(atman::shard(p, 2, 2), atman::invalid_argument);
    CHECK_THROWS_AS(atman::shard(p, 0, 0), atman::invalid_argument);

    CHECK_NOTHROW(atman::validate_plan(p));
    atman::plan tampered = p;
    tampered.perturbations[0].factors[0] = -1;
    CHECK_THROWS_AS(atman::validate_plan(tampered), atman::invalid_argument);
    tampered = p;
    tampered.perturbations[1].positions[0] = 7;
    CHECK_THROWS_AS(atman::validate_plan(tampered), atman::invalid_argument);
    tampered = p;
    tampered.batches.clear();
    CHECK_THROWS_AS(atman::validate_plan(tampered), atman::invalid_argument);
}

TEST_CASE("the automatic budget batches by recomputed token-rows, not by rows") {
    std::vector<std::vector<index_t>> groups;
    for (index_t i = 0; i < 200; ++i) groups.push_back({i});
    const index_t length = 500;
    const atman::plan p = atman::make_plan(units_at(groups), {length, length - 1, nullptr}, atman::config{});
    check_budget(p);
    // Rows near the start recompute ~500 positions each, so the first batch
    // holds as many as the token-row budget allows, far below the row bound.
    const index_t first_rows = atman::default_batch_token_rows / length;
    REQUIRE(first_rows < atman::default_max_batch_rows);
    CHECK(p.batches.front().end - p.batches.front().begin == first_rows);
    for (const atman::batch& b : p.batches) CHECK(b.token_rows <= atman::default_batch_token_rows);
}
