// cuda::attend (fused manipulated attention) against its CPU twin atman::attend,
// run in float32 on the same (rounded) inputs.
#include <atman/attention.hpp>
#include <atman/cuda/attention.cuh>
#include <random>
#include <string>
#include <vector>

#include "harness.hpp"
#include "support.hpp"

namespace {

using atman::index_t;
using atman::manipulation_mode;
using namespace atman::cuda_test;

struct row_plan {
    index_t q_begin, n_queries, prefix_length;
    bool has_factors = true;
};

struct attention_case {
    index_t n_head = 6, n_kv_head = 2, head_dim = 64;
    index_t n_positions = 77;  // T: keys of the full sequence
    manipulation_mode mode = manipulation_mode::multiplicative;
    std::vector<row_plan> rows;
    float magnitude = 1;                                        // of the q and k entries
    std::vector<float> factor_choices = {1, 1, 1, 0.1f, 0, 2.5f};  // phi drawn uniformly from these
    index_t unit_begin = 0, unit_length = 0;  // keys forced to unit_factor (one suppressed unit)
    float unit_factor = 0.1f;
    bool head_major = false;  // (head, pos, d) instead of (pos, head, d)
    unsigned seed = 1;
};

// A (positions x heads x head_dim) tensor and its strides in the case's layout.
struct tensor_layout {
    index_t pos_stride, head_stride;
};
tensor_layout layout_of(const attention_case& c, index_t positions, index_t heads) {
    if (c.head_major) return {c.head_dim, positions * c.head_dim};
    return {heads * c.head_dim, c.head_dim};
}

// All data of one case: host float copies for the CPU, device copies in Scalar.
// Moving a vector keeps its elements in place, so the pointers handed out stay valid.
template <class Scalar>
struct attention_data {
    std::vector<std::vector<float>> host;
    std::vector<device_array<Scalar>> device;
    std::vector<device_array<float>> device_factors;

    // Stores values (rounded to Scalar) on both sides; returns {host, device} pointers.
    std::pair<float*, Scalar*> add(const std::vector<float>& values) {
        typed_values<Scalar> rounded = round_to<Scalar>(values);
        host.push_back(std::move(rounded.exact));
        device.emplace_back(rounded.typed);
        return {host.back().data(), device.back().data()};
    }
};

template <class Scalar>
void check_attention(const attention_case& c) {
    std::mt19937 rng(c.seed);
    const index_t d = c.head_dim;
    attention_data<Scalar> data;
    const atman::attention_shape shape{c.n_head, c.n_kv_head, d, 0};  // one type for both sides

    const tensor_layout base_layout = layout_of(c, c.n_positions, c.n_kv_head);
    const auto base_k = data.add(random_values(std::size_t(c.n_positions * c.n_kv_head * d), c.magnitude, rng));
    const auto base_v = data.add(random_values(std::size_t(c.n_positions * c.n_kv_head * d), 1, rng));

    std::vector<atman::attention_row<float>> cpu_rows;
    std::vector<atman::cuda::attention_row<Scalar>> gpu_rows;
    std::vector<std::vector<float>> factors;
    std::vector<std::size_t> out_index;
    std::uniform_int_distribution<std::size_t> pick(0, c.factor_choices.size() - 1);
    for (const row_plan& plan : c.rows) {
        const index_t own_length = c.n_positions - plan.prefix_length;
        const tensor_layout own_layout = layout_of(c, own_length, c.n_kv_head);
        const tensor_layout q_layout = layout_of(c, plan.n_queries, c.n_head);
        const std::size_t own_size = std::size_t(own_length * c.n_kv_head * d);
        const std::size_t q_size = std::size_t(plan.n_queries * c.n_head * d);
        const auto own_k = data.add(random_values(own_size, c.magnitude, rng));
        const auto own_v = data.add(random_values(own_size, 1, rng));
        const auto q = data.add(random_values(q_size, c.magnitude, rng));
        out_index.push_back(data.host.size());
        const auto out = data.add(std::vector<float>(q_size, 0.0f));

        factors.emplace_back();
        for (index_t j = 0; j < c.n_positions; ++j) factors.back().push_back(c.factor_choices[pick(rng)]);
        for (index_t j = c.unit_begin; j < c.unit_begin + c.unit_length; ++j) factors.back()[j] = c.unit_factor;
        data.device_factors.emplace_back(factors.back());

        atman::attention_row<float> cpu;
        atman::cuda::attention_row<Scalar> gpu;
        cpu.q = q.first, gpu.q = q.second;
        cpu.q_pos_stride = gpu.q_pos_stride = q_layout.pos_stride;
        cpu.q_head_stride = gpu.q_head_stride = q_layout.head_stride;
        cpu.q_begin = gpu.q_begin = plan.q_begin;
        cpu.n_queries = gpu.n_queries = plan.n_queries;
        cpu.prefix = {base_k.first, base_v.first, plan.prefix_length, base_layout.pos_stride,
                      base_layout.head_stride};
        gpu.prefix = {base_k.second, base_v.second, plan.prefix_length, base_layout.pos_stride,
                      base_layout.head_stride};
        cpu.own = {own_k.first, own_v.first, own_length, own_layout.pos_stride, own_layout.head_stride};
        gpu.own = {own_k.second, own_v.second, own_length, own_layout.pos_stride, own_layout.head_stride};
        cpu.key_factors = plan.has_factors ? factors.back().data() : nullptr;
        gpu.key_factors = plan.has_factors ? data.device_factors.back().data() : nullptr;
        cpu.mode = gpu.mode = c.mode;
        cpu.out = out.first, gpu.out = out.second;
        cpu.out_pos_stride = gpu.out_pos_stride = q_layout.pos_stride;
        cpu.out_head_stride = gpu.out_head_stride = q_layout.head_stride;
        cpu_rows.push_back(cpu);
        gpu_rows.push_back(gpu);
    }

    atman::attend(shape, cpu_rows.data(), index_t(cpu_rows.size()));
    atman::cuda::attend(shape, gpu_rows.data(), index_t(gpu_rows.size()));
    atman::cuda::check(cudaDeviceSynchronize(), "attend");

    for (std::size_t r = 0; r < c.rows.size(); ++r) {
        const std::vector<float> gpu_out = to_floats(data.device[out_index[r]].download());
        const std::string problem = mismatch(gpu_out, data.host[out_index[r]], tolerance<Scalar>());
        ATMAN_REQUIRE(problem.empty(), std::string(atman::cuda::scalar_name<Scalar>()) + " " +
                                           atman::to_string(c.mode) + ", row " + std::to_string(r) +
                                           ": " + problem);
    }
}

template <class Scalar>
void check_both_modes(attention_case c) {
    for (manipulation_mode mode : {manipulation_mode::multiplicative, manipulation_mode::log_additive}) {
        c.mode = mode;
        check_attention<Scalar>(c);
    }
}

// Rows of one batch: the whole sequence, a suffix after the prefix, queries
// inside the prefix region, and a row without factors.
attention_case mixed_rows(index_t head_dim) {
    attention_case c;
    c.head_dim = head_dim;
    c.rows = {{0, 77, 0}, {40, 37, 40}, {23, 30, 50}, {5, 60, 70, false}, {76, 1, 76}, {10, 0, 10}};
    return c;
}

ATMAN_GPU_TEST(attention_random_float32_d64) { check_both_modes<float>(mixed_rows(64)); }
ATMAN_GPU_TEST(attention_random_float16_d64) { check_both_modes<__half>(mixed_rows(64)); }
ATMAN_GPU_TEST(attention_random_bfloat16_d64) { check_both_modes<__nv_bfloat16>(mixed_rows(64)); }
ATMAN_GPU_TEST(attention_random_float32_d128) { check_both_modes<float>(mixed_rows(128)); }
ATMAN_GPU_TEST(attention_random_float16_d128) { check_both_modes<__half>(mixed_rows(128)); }
ATMAN_GPU_TEST(attention_random_bfloat16_d128) { check_both_modes<__nv_bfloat16>(mixed_rows(128)); }

ATMAN_GPU_TEST(attention_gqa_ratios_1_3_8) {
    for (index_t n_kv_head : {8, 3, 1}) {
        attention_case c = mixed_rows(64);
        c.n_head = n_kv_head == 3 ? 9 : 8;
        c.n_kv_head = n_kv_head;
        check_both_modes<float>(c);
        check_both_modes<__half>(c);
    }
}

ATMAN_GPU_TEST(attention_single_key) {
    for (index_t prefix : {0, 1}) {
        attention_case c;
        c.n_positions = 1;
        c.rows = {{0, 1, prefix}};
        for (float phi : {0.0f, 0.1f, 3.0f}) {
            c.factor_choices = {phi};
            check_both_modes<float>(c);
            check_both_modes<__nv_bfloat16>(c);
        }
    }
}

// Scores of a few hundred: exp overflows without the running max, and the
// softmax is close to one-hot.
ATMAN_GPU_TEST(attention_very_large_scores) {
    attention_case c = mixed_rows(64);
    c.magnitude = 20;
    c.factor_choices = {1, 1, 0, 0.1f, 4};
    check_both_modes<float>(c);
    check_both_modes<__half>(c);
    check_both_modes<__nv_bfloat16>(c);
}

// Every key at phi = 0 (multiplicative: all scores pulled to the row minimum,
// a uniform softmax), every key amplified, and all keys untouched (phi = 1).
ATMAN_GPU_TEST(attention_uniform_factors) {
    for (float phi : {0.0f, 2.5f, 1.0f}) {
        attention_case c = mixed_rows(64);
        c.factor_choices = {phi};
        check_both_modes<float>(c);
        check_both_modes<__half>(c);
    }
}

ATMAN_GPU_TEST(attention_prefix_split_anywhere) {
    attention_case c;
    c.n_positions = 50;
    c.rows.clear();
    for (index_t prefix = 0; prefix <= 50; prefix += 7) c.rows.push_back({prefix, 50 - prefix, prefix});
    c.rows.push_back({0, 50, 50});  // every key from the shared prefix
    c.rows.push_back({13, 20, 31});
    check_both_modes<float>(c);
    check_both_modes<__half>(c);
}

ATMAN_GPU_TEST(attention_head_major_strides) {
    attention_case c = mixed_rows(128);
    c.head_major = true;
    check_both_modes<float>(c);
    check_both_modes<__nv_bfloat16>(c);
}

// Many key tiles, few manipulated keys (one unit, as AtMan perturbs): the
// multiplicative second sweep visits only the tiles that hold them.
ATMAN_GPU_TEST(attention_long_sequence_sparse_factors) {
    attention_case c;
    c.n_positions = 1000;
    c.rows = {{0, 1000, 0}, {600, 400, 600}, {990, 10, 300}};
    c.factor_choices = {1};
    c.unit_begin = 610;
    c.unit_length = 5;
    for (float phi : {0.1f, 0.0f, 3.0f}) {
        c.unit_factor = phi;
        check_both_modes<float>(c);
        check_both_modes<__half>(c);
    }
    c.factor_choices = {1, 0.5f, 0, 2};  // the worst case: every tile manipulated
    check_both_modes<float>(c);
}

ATMAN_HOST_TEST(attention_rejects_bad_descriptors) {
    atman::cuda::attention_row<float> row;
    row.n_queries = 3;
    row.q_begin = 2;
    row.own.length = 4;  // queries end at 5 > 4 keys
    float dummy = 0;
    row.q = row.out = &dummy;
    row.own.k = row.own.v = &dummy;
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::attend<float>({4, 2, 64, 0}, &row, 1), atman::invalid_argument);
    row.own.length = 5;
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::attend<float>({4, 2, 32, 0}, &row, 1), atman::invalid_argument);
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::attend<float>({4, 3, 64, 0}, &row, 1), atman::invalid_argument);
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::attend<float>({4, 2, 64, -1}, &row, 1), atman::invalid_argument);
    row.q = nullptr;
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::attend<float>({4, 2, 64, 0}, &row, 1), atman::invalid_argument);
}

}  // namespace
