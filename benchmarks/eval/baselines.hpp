#pragma once
// Relevance of context units from methods other than AtMan, over the same
// units, for comparison (docs/quality.md):
//
//   random             independent uniform [0, 1) draws, seeded per sample;
//   uniform            1 for every unit: no preference at all;
//   attention_last     the last layer's head-averaged attention from the
//                      target's scoring positions (first_scored .. T-1) to the
//                      unit's positions, summed over both;
//   attention_rollout  the same read from attention rollout (Abnar & Zuidema
//                      2020): R = A'_L ... A'_1 with A'_l = (A_l + I) / 2,
//                      rows renormalised, so R[q, j] is the share of position j
//                      in the representation at q after all layers.
//
// Attention maps are one T x T matrix per layer, row = query, column = key.

#include <atman/config.hpp>
#include <atman/error.hpp>
#include <atman/units.hpp>

#include <Eigen/Core>

#include <string>
#include <vector>

#include "random.hpp"

namespace atman::eval {

inline std::vector<double> random_relevance(index_t n_units, splitmix64& rng) {
    std::vector<double> relevance(static_cast<std::size_t>(n_units));
    for (double& x : relevance) x = rng.uniform();
    return relevance;
}

inline std::vector<double> uniform_relevance(index_t n_units) {
    return std::vector<double>(std::size_t(n_units), 1.0);
}

namespace detail {

inline void require_maps(const std::vector<Eigen::MatrixXf>& maps, index_t first_scored) {
    atman::detail::require(!maps.empty(), "attention relevance: no attention maps");
    const index_t length = index_t(maps.front().rows());
    for (std::size_t l = 0; l < maps.size(); ++l) {
        atman::detail::require(maps[l].rows() == length && maps[l].cols() == length,
                               "attention relevance: map of layer " + std::to_string(l) + " is " +
                                   std::to_string(maps[l].rows()) + " x " +
                                   std::to_string(maps[l].cols()) + ", expected " +
                                   std::to_string(length) + " x " + std::to_string(length));
    }
    atman::detail::require(0 <= first_scored && first_scored < length,
                           "attention relevance: first scored position " +
                               std::to_string(first_scored) + " is outside [0, " +
                               std::to_string(length) + ")");
}

// Per unit: the sum of flow(r, j) over all rows r (one per scored query) and
// the unit's positions j.
inline std::vector<double> unit_sums(const Eigen::MatrixXf& flow, const std::vector<unit>& units) {
    std::vector<double> relevance;
    for (const unit& u : units) {
        double sum = 0;
        for (index_t j : u.positions) {
            atman::detail::require(0 <= j && j < flow.cols(),
                                   "attention relevance: unit position " + std::to_string(j) +
                                       " is outside the attention maps");
            sum += double(flow.col(j).sum());
        }
        relevance.push_back(sum);
    }
    return relevance;
}

}  // namespace detail

inline std::vector<double> attention_last_relevance(const std::vector<Eigen::MatrixXf>& maps,
                                                    const std::vector<unit>& units,
                                                    index_t first_scored) {
    detail::require_maps(maps, first_scored);
    const Eigen::MatrixXf& last = maps.back();
    return detail::unit_sums(last.bottomRows(last.rows() - first_scored), units);
}

inline std::vector<double> attention_rollout_relevance(const std::vector<Eigen::MatrixXf>& maps,
                                                       const std::vector<unit>& units,
                                                       index_t first_scored) {
    detail::require_maps(maps, first_scored);
    const index_t length = index_t(maps.front().rows());
    // Only the scored rows of R are needed: start from those rows of the
    // identity and multiply by A'_L, ..., A'_1 from the right.
    Eigen::MatrixXf flow = Eigen::MatrixXf::Identity(length, length).bottomRows(length - first_scored);
    const Eigen::MatrixXf identity = Eigen::MatrixXf::Identity(length, length);
    for (auto layer = maps.rbegin(); layer != maps.rend(); ++layer) {
        Eigen::MatrixXf mixed = 0.5f * (*layer + identity);
        mixed.array().colwise() /= mixed.rowwise().sum().array();
        // Row by row (GEMV): cheap at these sizes, and GCC 12 with AVX-512
        // reports false maybe-uninitialized warnings in Eigen's GEMM packing.
        for (index_t r = 0; r < flow.rows(); ++r) {
            const Eigen::RowVectorXf row = flow.row(r);
            flow.row(r).noalias() = row * mixed;
        }
    }
    return detail::unit_sums(flow, units);
}

}  // namespace atman::eval
