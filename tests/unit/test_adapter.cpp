#include <atman/adapter.hpp>
#include <catch2/catch.hpp>

namespace {
struct complete_engine {
    void base_pass(const atman::sequence_view&, double*) {}
    void perturbed_pass(const atman::sequence_view&, const atman::batch_view&, double*) {}
};
struct engine_with_embeddings : complete_engine {
    atman::index_t embedding_dim() const { return 4; }
    void input_embeddings(const atman::sequence_view&, float*) {}
};
struct engine_without_perturbed_pass {
    void base_pass(const atman::sequence_view&, double*) {}
};
}  // namespace

TEST_CASE("adapter detection traits recognise the contract's members") {
    STATIC_REQUIRE(atman::detail::has_base_pass<complete_engine>::value);
    STATIC_REQUIRE(atman::detail::has_perturbed_pass<complete_engine>::value);
    STATIC_REQUIRE_FALSE(atman::supports_embeddings<complete_engine>);
    STATIC_REQUIRE(atman::supports_embeddings<engine_with_embeddings>);
    STATIC_REQUIRE_FALSE(atman::detail::has_perturbed_pass<engine_without_perturbed_pass>::value);
}
