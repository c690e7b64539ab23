// cuda::find_neighbors against its CPU twin atman::find_neighbors (float32 on
// the same rounded embeddings).
#include <atman/cuda/neighborhood.cuh>
#include <random>
#include <string>
#include <vector>

#include "harness.hpp"
#include "neighborhood_compare.hpp"
#include "support.hpp"

namespace {

using atman::index_t;
using namespace atman::cuda_test;

// Runs on the stream of a fresh handle, released at the end of the test.
struct cublas_handle {
    cublasHandle_t handle = nullptr;
    cublas_handle() { atman::cuda::check(cublasCreate(&handle), "cublasCreate"); }
    ~cublas_handle() { cublasDestroy(handle); }
};

// n points around a few random directions, so that similarities spread over [-1, 1].
std::vector<float> clustered_embeddings(index_t n, index_t dim, index_t clusters, float noise, unsigned seed) {
    std::mt19937 rng(seed);
    const std::vector<float> centres = random_values(std::size_t(clusters * dim), 1, rng);
    std::uniform_int_distribution<index_t> pick(0, clusters - 1);
    std::vector<float> embeddings = random_values(std::size_t(n * dim), noise, rng);
    for (index_t i = 0; i < n; ++i) {
        const index_t c = pick(rng);
        for (index_t d = 0; d < dim; ++d) embeddings[std::size_t(i * dim + d)] += centres[std::size_t(c * dim + d)];
    }
    return embeddings;
}

template <class Scalar>
void check_neighbors(const std::vector<float>& embeddings, index_t n, index_t dim,
                     const atman::neighborhood_options& options) {
    const typed_values<Scalar> values = round_to<Scalar>(embeddings);
    const atman::neighborhood expected = atman::find_neighbors(values.exact.data(), n, dim, options);
    const device_array<Scalar> device(values.typed);
    cublas_handle cublas;
    const atman::neighborhood actual = atman::cuda::find_neighbors(device.data(), n, dim, options, cublas.handle);
    const std::string problem = neighborhood_mismatch(actual, expected, options.kappa, options.max_neighbors, 1e-5);
    ATMAN_REQUIRE(problem.empty(), std::string(atman::cuda::scalar_name<Scalar>()) + ", kappa " +
                                       std::to_string(options.kappa) + ", cap " +
                                       std::to_string(options.max_neighbors) + ": " + problem);
    ATMAN_REQUIRE(expected.neighbors.empty() || !actual.neighbors.empty(), "the GPU found no neighbours at all");
}

template <class Scalar>
void check_clusters() {
    const index_t n = 301, dim = 64;  // n not a multiple of the block
    const std::vector<float> embeddings = clustered_embeddings(n, dim, 7, 0.6f, 5);
    for (double kappa : {0.7, 0.3, -1.0}) {
        for (index_t cap : {0, 3}) {
            atman::neighborhood_options options;
            options.kappa = kappa;
            options.max_neighbors = cap;
            options.block = 64;
            check_neighbors<Scalar>(embeddings, n, dim, options);
        }
    }
}

ATMAN_GPU_TEST(neighbors_clusters_float32) { check_clusters<float>(); }
ATMAN_GPU_TEST(neighbors_clusters_float16) { check_clusters<__half>(); }
ATMAN_GPU_TEST(neighbors_clusters_bfloat16) { check_clusters<__nv_bfloat16>(); }

// Duplicates (s = 1, so kappa = 1 finds them), opposite vectors (s = -1), a zero
// embedding (norm guard: s = 0 with everything) and a candidate subset.
ATMAN_GPU_TEST(neighbors_adversarial) {
    const index_t dim = 16;
    std::vector<float> embeddings = clustered_embeddings(40, dim, 3, 0.3f, 9);
    for (index_t d = 0; d < dim; ++d) {
        embeddings[std::size_t(5 * dim + d)] = embeddings[std::size_t(2 * dim + d)];
        embeddings[std::size_t(9 * dim + d)] = 3 * embeddings[std::size_t(2 * dim + d)];
        embeddings[std::size_t(11 * dim + d)] = -embeddings[std::size_t(2 * dim + d)];
        embeddings[std::size_t(17 * dim + d)] = 0;
    }
    for (double kappa : {1.0, 0.7, 0.0, -1.0}) {
        atman::neighborhood_options options;
        options.kappa = kappa;
        options.block = 7;
        check_neighbors<float>(embeddings, 40, dim, options);
        options.candidates = {30, 2, 5, 17, 11, 9, 2, 39};
        check_neighbors<float>(embeddings, 40, dim, options);
        options.max_neighbors = 1;
        check_neighbors<float>(embeddings, 40, dim, options);
    }
}

ATMAN_GPU_TEST(neighbors_tiny_inputs) {
    const std::vector<float> one = {0.5f, -1, 2};
    check_neighbors<float>(one, 1, 3, {});
    check_neighbors<float>({}, 0, 3, {});
    atman::neighborhood_options none_of_them;
    none_of_them.candidates = {0};
    check_neighbors<float>(clustered_embeddings(10, 3, 2, 0.1f, 1), 10, 3, none_of_them);
}

ATMAN_GPU_TEST(neighbors_non_finite_embedding_throws) {
    std::vector<float> embeddings = clustered_embeddings(20, 8, 2, 0.1f, 3);
    embeddings[13 * 8 + 4] = NAN;
    const device_array<float> device(embeddings);
    cublas_handle cublas;
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::find_neighbors(device.data(), 20, 8, {}, cublas.handle),
                            atman::numeric_error);
}

ATMAN_HOST_TEST(neighbors_rejects_bad_options) {
    const float dummy = 0;
    atman::neighborhood_options options;
    options.kappa = 1.5;
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::find_neighbors(&dummy, 1, 1, options, nullptr), atman::invalid_argument);
    options = {};
    options.block = 0;
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::find_neighbors(&dummy, 1, 1, options, nullptr), atman::invalid_argument);
    options = {};
    options.candidates = {1};
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::find_neighbors(&dummy, 1, 1, options, nullptr), atman::invalid_argument);
    ATMAN_REQUIRE_THROWS_AS(atman::cuda::find_neighbors(&dummy, 1, 0, {}, nullptr), atman::invalid_argument);
}

}  // namespace
