#include <atman/atman.hpp>

#include <cmath>
#include <vector>

// Your engine. Here: a one-layer, one-head toy whose logits at position q are
// E * sum_j softmax_j(e_q . e_j / sqrt(d)) e_j; yours is a real transformer.
struct toy_engine {
    static constexpr int vocab = 16, dim = 8;
    std::vector<float> emb = std::vector<float>(vocab * dim);
    toy_engine() {
        for (int i = 0; i < vocab * dim; ++i) emb[i] = float(std::sin(1.3 * i));
    }
    float dot(int a, int b) const {
        float s = 0;
        for (int d = 0; d < dim; ++d) s += emb[a * dim + d] * emb[b * dim + d];
        return s;
    }

    // One forward pass; factors == nullptr is the plain model.
    void run(const atman::sequence_view& s, const float* factors, atman::manipulation_mode mode,
             double* ce) const {
        for (atman::index_t t = 0; t < s.n_targets; ++t) {
            const atman::index_t q = s.first_scored + t;
            std::vector<float> p(q + 1);
            for (atman::index_t j = 0; j <= q; ++j)
                p[j] = dot(s.tokens[q], s.tokens[j]) / std::sqrt(float(dim));
            // The one line AtMan adds to an attention loop: before the softmax.
            if (factors) atman::manipulate_scores(mode, p.data(), q + 1, factors);
            float max = p[0], sum = 0;
            for (float x : p) max = std::max(max, x);
            for (float& x : p) sum += (x = std::exp(x - max));
            double lse_sum = 0, target_logit = 0;
            for (int v = 0; v < vocab; ++v) {
                double logit = 0;
                for (atman::index_t j = 0; j <= q; ++j) logit += p[j] / sum * dot(v, s.tokens[j]);
                lse_sum += std::exp(logit);
                if (v == s.targets[t]) target_logit = logit;
            }
            ce[t] = std::log(lse_sum) - target_logit;
        }
    }

    // The adapter contract (atman/adapter.hpp).
    void base_pass(const atman::sequence_view& s, double* ce) {
        run(s, nullptr, atman::manipulation_mode::multiplicative, ce);
    }
    void perturbed_pass(const atman::sequence_view& s, const atman::batch_view& batch, double* ce) {
        for (atman::index_t r = 0; r < batch.n_rows; ++r)
            run(s, batch.rows[r].key_factors, batch.mode, ce + r * s.n_targets);
    }
};

// Explain: which words of "red green blue sky" make the toy predict tokens 5, 6?
inline atman::explanation explain_toy() {
    toy_engine engine;
    atman::explain_request request;
    request.prompt = "red green blue sky";
    request.prompt_tokens = {1, 2, 3, 4};
    request.target = "tokens 5 6";  // the target's text, for reports
    request.target_tokens = {5, 6};
    const std::vector<atman::token_offsets> offsets = {{0, 3}, {3, 9}, {9, 14}, {14, 18}};
    const atman::unit_options words;  // granularity::word
    request.units = atman::make_units(request.prompt, offsets, words);
    request.units_by = words.by;  // what the reports call the units
    return atman::explain(engine, request, atman::config{});  // paper defaults: multiplicative, 0.1
}
