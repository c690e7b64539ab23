#include <atman/batch_rows.hpp>
#include <catch2/catch.hpp>

#include <vector>

namespace {

using atman::index_t;

// A plan of hand-made perturbations (positions, factors) in one batch.
atman::plan plan_of(index_t length,
                    const std::vector<std::pair<std::vector<index_t>, std::vector<float>>>& rows) {
    atman::plan p;
    p.length = length;
    for (std::size_t i = 0; i < rows.size(); ++i) {
        p.perturbations.push_back({atman::perturbation_kind::unit, index_t(i), rows[i].first.front(),
                                   rows[i].first, rows[i].second});
    }
    p.batches.push_back({0, index_t(rows.size()), 0});
    atman::validate_plan(p);
    return p;
}

}  // namespace

TEST_CASE("batch_rows: sparse touched keys and the dense view agree with the plan") {
    const atman::plan p = plan_of(8, {{{2, 5}, {0.1f, 0.3f}}, {{0}, {0.0f}}, {{6, 7}, {2.0f, 0.5f}}});
    atman::batch_rows rows;
    rows.assign(p, p.batches[0], 8, atman::manipulation_mode::log_additive);
    REQUIRE(rows.size() == 3);
    const atman::batch_view view = rows.view();
    CHECK(view.mode == atman::manipulation_mode::log_additive);
    REQUIRE(view.n_rows == 3);
    for (index_t r = 0; r < 3; ++r) {
        const atman::perturbation& x = p.perturbations[rows.plan_index(r)];
        const atman::row_view& row = view.rows[r];
        CHECK(row.first_affected == x.positions.front());
        CHECK(std::vector<index_t>(row.touched, row.touched + row.n_touched) == x.positions);
        CHECK(std::vector<float>(row.touched_factors, row.touched_factors + row.n_touched) == x.factors);
        std::vector<float> expected(8, 1.0f);
        for (std::size_t k = 0; k < x.positions.size(); ++k) expected[x.positions[k]] = x.factors[k];
        CHECK(std::vector<float>(row.key_factors, row.key_factors + 8) == expected);
    }
    CHECK(rows.token_rows() == (8 - 2) + (8 - 0) + (8 - 6));
}

TEST_CASE("batch_rows: keys with factor 1 are not touched, a row touching none is not run") {
    // Perturbation 0 has a factor-1 key first: its row starts at the next key.
    // Perturbation 1 touches nothing (factor 1 everywhere, as with phi = 1).
    const atman::plan p = plan_of(6, {{{1, 3}, {1.0f, 0.2f}}, {{2, 4}, {1.0f, 1.0f}}, {{5}, {0.0f}}});
    atman::batch_rows rows;
    rows.assign(p, p.batches[0], 6, atman::manipulation_mode::multiplicative);
    REQUIRE(rows.size() == 2);
    CHECK(rows.plan_index(0) == 0);
    CHECK(rows.plan_index(1) == 2);
    CHECK(rows.row(0).first_affected == 3);
    CHECK(rows.row(0).n_touched == 1);
    CHECK(rows.row(0).key_factors[1] == 1.0f);
    CHECK(rows.token_rows() == (6 - 3) + (6 - 5));

    // Reassigning reuses the object: the old rows are gone.
    const atman::plan untouched = plan_of(6, {{{2, 4}, {1.0f, 1.0f}}});
    rows.assign(untouched, untouched.batches[0], 6, atman::manipulation_mode::multiplicative);
    CHECK(rows.size() == 0);
    CHECK(rows.view().n_rows == 0);
    CHECK(rows.token_rows() == 0);
}
