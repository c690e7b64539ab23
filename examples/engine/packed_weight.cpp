#include "engine/packed_weight.hpp"

#include <algorithm>
#include <string>

#include <Eigen/Core>

#include <atman/error.hpp>

namespace atman::engine {

namespace {
// The check of a slice of output features, shared by both paths.
void check_slice(index_t n, index_t first, index_t count, index_t rows, index_t block) {
    // A slice of the packed rows is the packing of those rows only where it
    // starts and ends on a register panel (or at the last row).
    if (!(n >= 0 && first >= 0 && count >= 0 && first + count <= rows && first % block == 0 &&
          (count % block == 0 || first + count == rows))) {
        throw invalid_argument("packed_weight: rows [" + std::to_string(first) + ", " +
                               std::to_string(first + count) + ") of " + std::to_string(rows) +
                               " do not start and end on panels of " + std::to_string(block));
    }
}
}  // namespace

#ifdef ATMAN_ENGINE_PLAIN_WEIGHTS

packed_weight::packed_weight(const matrix_rm& weight) : rows_(weight.rows()), depth_(weight.cols()), weight_(weight) {}

index_t packed_weight::row_block() { return 1; }

void packed_weight::multiply(float* out, index_t out_stride, const float* in, index_t in_stride, index_t n,
                             index_t first, index_t count, bool accumulate) const {
    check_slice(n, first, count, rows_, row_block());
    if (n == 0 || count == 0) return;
    using strided = Eigen::OuterStride<>;
    const Eigen::Map<const matrix_rm, 0, strided> x(in, n, depth_, strided(in_stride));
    Eigen::Map<matrix_rm, 0, strided> y(out, n, count, strided(out_stride));
    if (accumulate) {
        y.noalias() += x * weight_.middleRows(first, count).transpose();
    } else {
        y.noalias() = x * weight_.middleRows(first, count).transpose();
    }
}

#else

namespace {

namespace internal = Eigen::internal;
using traits = internal::gebp_traits<float, float>;
using weight_mapper = internal::const_blas_data_mapper<float, index_t, Eigen::RowMajor>;
using input_mapper = internal::const_blas_data_mapper<float, index_t, Eigen::ColMajor>;
using output_mapper = internal::blas_data_mapper<float, index_t, Eigen::ColMajor>;

// Eigen's blocking of a product: the depth block depends on the depth and the
// L1 size only, the positions' block also on the number of positions.
struct blocks {
    index_t depth, positions;
};
blocks eigen_blocking(index_t depth, index_t rows, index_t positions) {
    index_t k = depth, m = rows, n = positions;
    internal::computeProductBlockingSizes<float, float, 1, index_t>(k, m, n, 1);
    return {k, n};
}

// The packed positions of the current product, per thread.
float* positions_buffer(index_t size) {
    thread_local std::vector<float, Eigen::aligned_allocator<float>> buffer;
    if (static_cast<index_t>(buffer.size()) < size) buffer.resize(static_cast<std::size_t>(size));
    return buffer.data();
}

}  // namespace

packed_weight::packed_weight(const matrix_rm& weight) : rows_(weight.rows()), depth_(weight.cols()) {
    if (weight.size() == 0) return;
    depth_block_ = eigen_blocking(depth_, rows_, 1024).depth;
    // The packing stores whole vectors with aligned stores: every block starts aligned.
    constexpr index_t alignment = EIGEN_MAX_ALIGN_BYTES / index_t(sizeof(float));
    index_t size = 0;
    for (index_t k = 0; k < depth_; k += depth_block_) {
        block_offset_.push_back(size);
        size += detail::round_up(rows_ * std::min(depth_block_, depth_ - k), alignment);
    }
    packed_.resize(static_cast<std::size_t>(size));
    internal::gemm_pack_lhs<float, index_t, weight_mapper, traits::mr, traits::LhsProgress,
                            traits::LhsPacket4Packing, Eigen::RowMajor>
        pack;
    const weight_mapper source(weight.data(), depth_);
    for (std::size_t b = 0; b < block_offset_.size(); ++b) {
        const index_t k = index_t(b) * depth_block_;
        pack(packed_.data() + block_offset_[b], source.getSubMapper(0, k), std::min(depth_block_, depth_ - k), rows_);
    }
}

index_t packed_weight::row_block() { return traits::mr; }

void packed_weight::multiply(float* out, index_t out_stride, const float* in, index_t in_stride, index_t n,
                             index_t first, index_t count, bool accumulate) const {
    check_slice(n, first, count, rows_, row_block());
    if (n == 0 || count == 0) return;
    if (!accumulate)
        for (index_t p = 0; p < n; ++p) std::fill_n(out + p * out_stride, count, 0.0f);

    const index_t position_block = eigen_blocking(depth_, count, n).positions;
    internal::gemm_pack_rhs<float, index_t, input_mapper, traits::nr, Eigen::ColMajor> pack_positions;
    internal::gebp_kernel<float, float, index_t, output_mapper, traits::mr, traits::nr, false, false> kernel;
    const input_mapper positions(in, in_stride);
    const output_mapper result(out, out_stride);
    float* const block = positions_buffer(depth_block_ * position_block);
    // Depth blocks in order, each added to the result: Eigen's own order.
    for (std::size_t b = 0; b < block_offset_.size(); ++b) {
        const index_t k = index_t(b) * depth_block_, depth_count = std::min(depth_block_, depth_ - k);
        const float* const weights = packed_.data() + block_offset_[b] + first * depth_count;
        for (index_t p = 0; p < n; p += position_block) {
            const index_t position_count = std::min(position_block, n - p);
            pack_positions(block, positions.getSubMapper(k, p), depth_count, position_count);
            kernel(result.getSubMapper(0, p), weights, block, count, depth_count, position_count, 1.0f);
        }
    }
}

#endif

}  // namespace atman::engine
