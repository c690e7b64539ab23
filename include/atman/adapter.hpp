#pragma once
// The adapter contract: the one place an engine touches the library.
//
// An engine E is usable by atman::explain when it has these members
// (checked at compile time by atman::check_adapter<E>()):
//
//   void base_pass(const atman::sequence_view& seq, double* ce);
//       The plain forward pass over seq.tokens[0..T). Writes into ce[t], for
//       t in [0, seq.n_targets), the cross-entropy of target t in nats:
//           ce[t] = -log softmax(logits at position seq.first_scored + t)[seq.targets[t]]
//       (natural log, computed in float32 or better). Keeps what it needs
//       (its KV cache) to reuse positions < p in the perturbed passes.
//
//   void perturbed_pass(const atman::sequence_view& seq,
//                       const atman::batch_view& batch, double* ce);
//       One pass per row r of the batch, each with its attention manipulated:
//       in every layer, every head and every query row, the row's key factors
//       act on the pre-softmax scores after the scale, before the softmax
//       (manipulation.hpp): call atman::manipulate_scores(batch.mode, scores,
//       n_visible, row.key_factors) on each query row of scores, or use the
//       fused atman::attend (attention.hpp; cuda::attend on a GPU), or, in
//       log_additive mode, add atman::key_bias(phi_j) to key j's additive
//       attention mask. Writes ce[r * seq.n_targets + t] as base_pass does.
//
// The library's promises to the engine:
//   - Every perturbed_pass follows a base_pass of the same sequence (same
//     tokens, first_scored and targets), with no other pass in between; an
//     explanation with a contrast target runs a second base pass, for the
//     contrast sequence, before that sequence's perturbed passes.
//   - A row's key factors are 1 except at its touched positions, which are
//     ascending, start at first_affected and lie before first_scored + 1 (the
//     prompt) unless the row suppresses an earlier target token; every factor
//     is finite and >= 0; every row touches at least one key. Batches are
//     validated once, by the library: an engine need not check them again.
//   - Positions < first_affected are not changed by the manipulation, so an
//     engine may take their keys and values from the base pass and recompute
//     only positions first_affected..T-1. An engine may also ignore it and
//     recompute everything: the result must be the same.
//
// Optional, for conceptual suppression:
//
//   index_t embedding_dim() const;
//   void input_embeddings(const atman::sequence_view& seq, float* out);
//       Writes the T x embedding_dim() input embeddings (the embedding layer's
//       output, before the first block), row-major.

#include <cstdint>
#include <type_traits>
#include <utility>

#include "config.hpp"

namespace atman {

// The teacher-forced sequence x_0..x_{n-1}, y_0..y_{m-2} and its targets
// y_0..y_{m-1} (sequence.hpp builds one).
struct sequence_view {
    const std::int32_t* tokens = nullptr;
    index_t length = 0;                    // T = n + m - 1
    index_t first_scored = 0;              // n - 1: the logits there score y_0
    const std::int32_t* targets = nullptr;
    index_t n_targets = 0;                 // m
};

// One perturbation as the engine sees it: the keys it touches with their
// factors, and the same as a dense vector for engines that want one.
struct row_view {
    index_t first_affected = 0;            // touched[0]: positions before it are unchanged
    const float* key_factors = nullptr;    // T factors, 1 = untouched
    const index_t* touched = nullptr;      // the positions whose factor is not 1, ascending
    const float* touched_factors = nullptr;  // their factors: key_factors[touched[k]]
    index_t n_touched = 0;                 // >= 1
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
