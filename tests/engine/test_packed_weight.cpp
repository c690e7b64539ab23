// packed_weight: the engine's projections with weights packed once. Checked
// against a naive double-precision product, against Eigen's own product (bit
// for bit: the engine's batch invariance rests on it), and on bad slices.
// Built twice: as the engine uses it, and with ATMAN_ENGINE_PLAIN_WEIGHTS, the
// fallback for other Eigen versions.

#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include <atman/error.hpp>

#include "engine/packed_weight.hpp"

using atman::index_t;
using atman::engine::matrix_rm;
using atman::engine::packed_weight;

namespace {

// out(p, f) = sum_k in(p, k) W(f, k), in double.
Eigen::MatrixXd naive_product(const matrix_rm& in, const matrix_rm& weight) {
    Eigen::MatrixXd out = Eigen::MatrixXd::Zero(in.rows(), weight.rows());
    for (index_t p = 0; p < in.rows(); ++p)
        for (index_t f = 0; f < weight.rows(); ++f)
            for (index_t k = 0; k < weight.cols(); ++k) out(p, f) += double(in(p, k)) * double(weight(f, k));
    return out;
}

// The product computed as the engine does: output features in panels of
// `panel` rows (a multiple of row_block()), each a call of its own.
matrix_rm packed_product(const matrix_rm& in, const packed_weight& packed, index_t panel) {
    matrix_rm out(in.rows(), packed.rows());
    for (index_t first = 0; first < packed.rows(); first += panel) {
        const index_t count = std::min(panel, packed.rows() - first);
        packed.multiply(&out(0, first), out.cols(), in.data(), in.cols(), in.rows(), first, count, false);
    }
    return out;
}

}  // namespace

TEST_CASE("packed_weight equals the naive product, Eigen's product bit for bit, at any panel and position count") {
    Eigen::setNbThreads(1);  // Eigen's threaded GEMM blocks the depth differently
    const index_t block = packed_weight::row_block();
    // Rows: whole register panels, and a ragged tail; depths below and above Eigen's depth block.
    for (const auto& [rows, depth] : std::vector<std::pair<index_t, index_t>>{{4 * block, 576}, {2 * block + 7, 70},
                                                                               {block + 1, 1536}}) {
        const matrix_rm weight = matrix_rm::Random(rows, depth);
        const packed_weight packed(weight);
        REQUIRE(packed.rows() == rows);
        REQUIRE(packed.depth() == depth);
        for (index_t n : {1, 2, 3, 5, 64, 301}) {
            INFO(rows << " x " << depth << " weight, " << n << " positions");
            const matrix_rm in = matrix_rm::Random(n, depth);
            const matrix_rm whole = packed_product(in, packed, rows);
            const Eigen::MatrixXd reference = naive_product(in, weight);
            CHECK((whole.cast<double>() - reference).cwiseAbs().maxCoeff() <= 1e-5 * double(depth));
#ifndef ATMAN_ENGINE_PLAIN_WEIGHTS  // the plain path is Eigen's product, with none of these guarantees
            CHECK(packed_product(in, packed, block) == whole);
            if (n >= 2) {  // Eigen multiplies a single row with another kernel (GEMV)
                const matrix_rm eigen = in * weight.transpose();
                CHECK(whole == eigen);
            }
            // A position's result does not depend on the others in the product
            // (where the rows fill whole register panels, as the engine's do).
            if (rows % block == 0) CHECK(packed_product(in.bottomRows(1), packed, rows) == whole.bottomRows(1));
#endif
        }
    }
}

TEST_CASE("packed_weight accumulates and reads strided rows") {
    const index_t block = packed_weight::row_block();
    const matrix_rm weight = matrix_rm::Random(2 * block, 100);
    const packed_weight packed(weight);
    // Inputs are the left 100 columns of a wider matrix; outputs the middle of one.
    const matrix_rm wide_in = matrix_rm::Random(9, 130);
    matrix_rm wide_out = matrix_rm::Random(9, 2 * block + 10);
    const matrix_rm before = wide_out;
    packed.multiply(&wide_out(0, 5), wide_out.cols(), wide_in.data(), wide_in.cols(), 9, 0, 2 * block, true);
    const Eigen::MatrixXd expected =
        before.middleCols(5, 2 * block).cast<double>() + naive_product(wide_in.leftCols(100), weight);
    CHECK((wide_out.middleCols(5, 2 * block).cast<double>() - expected).cwiseAbs().maxCoeff() <= 1e-3);
    CHECK(wide_out.leftCols(5) == before.leftCols(5));
    CHECK(wide_out.rightCols(5) == before.rightCols(5));
}

TEST_CASE("packed_weight rejects a slice that does not start and end on its panels") {
    const index_t block = packed_weight::row_block();
    const packed_weight packed(matrix_rm::Random(3 * block, 64));
    const matrix_rm in = matrix_rm::Random(2, 64);
    matrix_rm out(2, 3 * block);
    const auto multiply = [&](index_t first, index_t count) {
        packed.multiply(out.data(), out.cols(), in.data(), in.cols(), 2, first, count, false);
    };
    CHECK_NOTHROW(multiply(block, 2 * block));
#ifndef ATMAN_ENGINE_PLAIN_WEIGHTS  // the plain path takes any slice (its panels are single rows)
    CHECK_THROWS_AS(multiply(1, block), atman::invalid_argument);
    CHECK_THROWS_AS(multiply(0, block + 1), atman::invalid_argument);
#endif
    CHECK_THROWS_AS(multiply(-1, block), atman::invalid_argument);
    CHECK_THROWS_WITH(multiply(2 * block, 2 * block), Catch::Contains("do not start and end on panels"));
}
