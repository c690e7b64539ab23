#pragma once
// A weight matrix packed once, at load, in the layout of Eigen's GEMM kernel.
//
// Eigen packs the weights anew for every product: a pass with few positions
// spent most of its time there (61% for 4 positions of 263), and every pass
// paid it in full. Packed once, a product only packs its positions (the small
// operand) and runs Eigen's own kernel on the same blocks. Its result is bit-
// identical to Eigen's single-threaded `in * W^T`, and a position's result
// does not depend on how many positions share the product, for rows in whole
// register panels (a ragged last panel takes another kernel for a leftover
// position, which is why the LM head pads its positions). Uses Eigen 3.4's
// internal GEMM API.
//
// Where that API is not there (an Eigen other than 3.4), or with
// ATMAN_ENGINE_PLAIN_WEIGHTS defined, the plain path keeps the weights as they
// are and runs Eigen's public product: portable and as exact, but it packs
// the weights for every product again, and a position's result may then
// depend on the positions beside it by a rounding step (the engine is no
// longer batch-invariant to the bit).

#include <vector>

#include <Eigen/Core>

#include <atman/config.hpp>

#if !defined(ATMAN_ENGINE_PLAIN_WEIGHTS) && !(EIGEN_WORLD_VERSION == 3 && EIGEN_MAJOR_VERSION == 4)
#define ATMAN_ENGINE_PLAIN_WEIGHTS
#endif

namespace atman::engine {

using matrix_rm = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

class packed_weight {
public:
    packed_weight() = default;
    // W: rows (output features) x depth (input features), row-major.
    explicit packed_weight(const matrix_rm& weight);

    index_t rows() const { return rows_; }
    index_t depth() const { return depth_; }
    // A product may take the output features first..first+count-1 only when
    // first is a multiple of this (the kernel's register panel of rows).
    static index_t row_block();

    // out (+)= in * W[first..first+count)^T for n positions: in is n x depth,
    // out n x count, both row-major with the given row strides. Runs on the
    // calling thread.
    void multiply(float* out, index_t out_stride, const float* in, index_t in_stride, index_t n,
                  index_t first, index_t count, bool accumulate) const;

private:
    index_t rows_ = 0, depth_ = 0;
#ifdef ATMAN_ENGINE_PLAIN_WEIGHTS
    matrix_rm weight_;
#else
    index_t depth_block_ = 0;
    // Block b holds input features b * depth_block_ onwards (depth_block_ or
    // fewer) of every row, in the kernel's panel layout, from block_offset_[b].
    std::vector<index_t> block_offset_;
    std::vector<float, Eigen::aligned_allocator<float>> packed_;
#endif
};

}  // namespace atman::engine
