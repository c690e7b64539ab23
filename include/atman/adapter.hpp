#pragma once
// The adapter contract: the one place an engine touches the library.
//
// An engine E is usable by atman::explain when it has these members
// (checked at compile time by atman::check_adapter<E>()):
//
//   void base_pass(const atman::sequence_view& seq, double* ce);
//       Runs the unmanipulated forward pass over seq.tokens (length T),
//       writes CE_t = -log softmax(logits[seq.first_scored + t])[seq.targets[t]]
//       for t in [0, seq.n_targets) into ce, and keeps what it needs (its KV
//       cache) so that perturbed_pass can reuse positions < p.
//
//   void perturbed_pass(const atman::sequence_view& seq,
//                       const atman::batch_view& batch, double* ce);
//       For each row r: every attention layer/head/query applies the key
//       factors batch.rows[r].key_factors (length T) in mode batch.mode;
//       positions < rows[r].first_affected are unchanged by construction and
//       may be taken from the base pass. Writes ce[r * n_targets + t].
//       An engine may ignore first_affected and recompute everything: the
//       result must be the same.
//
// Optional, for conceptual suppression:
//
//   index_t embedding_dim() const;
//   void input_embeddings(const atman::sequence_view& seq, float* out);
//       Writes the T x embedding_dim() input embeddings, row-major.

#include <cstdint>
#include <type_traits>
#include <utility>

#include "config.hpp"

namespace atman {

// The teacher-forced sequence x_0..x_{n-1}, y_0..y_{m-2} and its targets y_0..y_{m-1}.
struct sequence_view {
    const std::int32_t* tokens = nullptr;
    index_t length = 0;                    // T = n + m - 1
    index_t first_scored = 0;              // n - 1
    const std::int32_t* targets = nullptr;
    index_t n_targets = 0;                 // m
};

// One perturbation as the engine sees it.
struct row_view {
    index_t first_affected = 0;            // smallest key position whose factor != 1
    const float* key_factors = nullptr;    // T factors, 1 = untouched
};

struct batch_view {
    manipulation_mode mode = manipulation_mode::multiplicative;
    const row_view* rows = nullptr;
    index_t n_rows = 0;
};

namespace detail {
template <class E, class = void>
struct has_base_pass : std::false_type {};
template <class E>
struct has_base_pass<E, std::void_t<decltype(std::declval<E&>().base_pass(
                            std::declval<const sequence_view&>(), std::declval<double*>()))>>
    : std::true_type {};

template <class E, class = void>
struct has_perturbed_pass : std::false_type {};
template <class E>
struct has_perturbed_pass<E, std::void_t<decltype(std::declval<E&>().perturbed_pass(
                                 std::declval<const sequence_view&>(),
                                 std::declval<const batch_view&>(), std::declval<double*>()))>>
    : std::true_type {};

template <class E, class = void>
struct has_input_embeddings : std::false_type {};
template <class E>
struct has_input_embeddings<
    E, std::void_t<decltype(std::declval<E&>().input_embeddings(
                       std::declval<const sequence_view&>(), std::declval<float*>())),
                   decltype(index_t(std::declval<const E&>().embedding_dim()))>>
    : std::true_type {};
}  // namespace detail

// True when E can provide input embeddings for conceptual suppression.
template <class E>
inline constexpr bool supports_embeddings = detail::has_input_embeddings<E>::value;

// Fails compilation with a message naming the missing member.
template <class E>
constexpr void check_adapter() {
    static_assert(detail::has_base_pass<E>::value,
                  "atman adapter: engine lacks `void base_pass(const atman::sequence_view&, double* ce)`");
    static_assert(detail::has_perturbed_pass<E>::value,
                  "atman adapter: engine lacks `void perturbed_pass(const atman::sequence_view&, "
                  "const atman::batch_view&, double* ce)`");
}

}  // namespace atman
