#pragma once
// The explainer: drives an engine through the adapter contract (adapter.hpp)
// and turns the change of the target's cross-entropy under each perturbation
// into an explanation (atman-method.md, sections 4 and 5).
//
//   explain(engine, request, cfg)   the whole method in one call; it is
//                                   make_explanation(explain_deltas(plan_explanation(...)))
//
// and the three steps, for running a plan in pieces (scale-out):
//
//   plan_explanation   input embeddings and neighbourhoods when cfg.conceptual,
//                      then the scheduler's plan (scheduler.hpp);
//   explain_deltas     base pass(es), then each batch of a plan or of a shard of it:
//                      delta_t = CE_t(perturbed) - CE_t(base) per perturbation;
//   merge_deltas       the deltas of several shards of one plan, concatenated;
//   make_explanation   deltas -> scores: target aggregation, postprocessing,
//                      normalisation, texts and statistics.
//
// Scores, per unit k (prompt units first, in request order, then with
// cfg.explain_targets_by_earlier_targets one unit per in-sequence target y_t):
//   scores_per_target[t] = post(delta_{k,t})
//   score                = post(sum_t delta_{k,t})       (contrastive: minus sum_t
//   delta_{k,t}(contrast))
// where post is cfg.post; with cfg.normalize each of score and
// scores_per_target[t] is then min-max scaled to [0, 1] over the units (all 0
// when they are all equal). cfg.targets tells reports which of the two is the
// explanation: `complete` the score, `token` one explanation per target token.
// A perturbation cannot change a target scored before its first affected
// position; such deltas are exactly 0. Earlier-target units have first_token =
// n + t, and their start/end are byte offsets into the concatenated
// target_texts (= `target` when that is their concatenation), not the prompt.
//
// Contrastive ("why target rather than contrast"): both targets are
// teacher-forced after the same prompt, each with its own base pass; requires
// cfg.targets == complete and no earlier-target units. scores_per_target holds
// the deltas of the explained target.
//
// Errors: invalid_argument for a bad request or config (also when
// cfg.conceptual and the engine has no input_embeddings), numeric_error when
// the engine reports a non-finite CE or embedding (naming the unit and target),
// cancelled when options.cancel is set or options.progress returns false.

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "adapter.hpp"
#include "config.hpp"
#include "error.hpp"
#include "explanation.hpp"
#include "neighborhood.hpp"
#include "scheduler.hpp"
#include "units.hpp"

namespace atman {

struct explain_request {
    std::string prompt;                         // the text the units' byte ranges refer to
    std::vector<std::int32_t> prompt_tokens;    // x_0..x_{n-1}
    std::string target;                         // the explained target's text
    std::vector<std::int32_t> target_tokens;    // y_0..y_{m-1}
    std::vector<std::string> target_texts;      // decoded text of each target token; may be empty
    std::vector<unit> units;                    // over prompt positions (units.hpp)
    std::string contrast;                       // contrastive target's text
    std::vector<std::int32_t> contrast_tokens;  // non-empty: explain "target rather than contrast"

    bool contrastive() const { return !contrast_tokens.empty(); }
};

struct explain_options {
    // Called after each batch with perturbed rows done and in total (counting
    // both targets when contrastive); returning false cancels.
    std::function<bool(index_t done, index_t total)> progress;
    // Polled before each pass; true cancels.
    const std::atomic<bool>* cancel = nullptr;
};

// The deltas of one perturbation, identified by kind and index (scheduler.hpp).
struct perturbation_deltas {
    perturbation_kind kind = perturbation_kind::unit;
    index_t index = 0;
    std::vector<double> target;    // one per target token
    std::vector<double> contrast;  // one per contrast token; empty unless contrastive
};

struct raw_deltas {
    std::vector<double> base_ce;           // unperturbed CE per target token
    std::vector<double> contrast_base_ce;  // the same for the contrast; empty unless contrastive
    std::vector<perturbation_deltas> rows;
    explanation_stats stats;  // passes, token_forwards, seconds (naive cost: make_explanation)
};

namespace detail {

// The teacher-forced sequence x_0..x_{n-1}, y_0..y_{m-2} with targets y.
struct teacher_forced {
    std::vector<std::int32_t> tokens, targets;

    teacher_forced(const std::vector<std::int32_t>& prompt, const std::vector<std::int32_t>& target)
        : tokens(prompt), targets(target) {
        tokens.insert(tokens.end(), target.begin(), target.end() - 1);
    }
    index_t length() const { return index_t(tokens.size()); }
    index_t first_scored() const { return length() - index_t(targets.size()); }
    sequence_view view() const {
        return {tokens.data(), length(), first_scored(), targets.data(), index_t(targets.size())};
    }
};

inline void validate_request(const explain_request& request, const config& cfg) {
    cfg.validate();
    require(!request.prompt_tokens.empty(), "explain: the prompt has no tokens");
    require(!request.target_tokens.empty(), "explain: the target has no tokens");
    require(
        request.target_texts.empty() || request.target_texts.size() == request.target_tokens.size(),
        "explain: target_texts holds " + std::to_string(request.target_texts.size()) +
            " texts for " + std::to_string(request.target_tokens.size()) + " target tokens");
    require(!request.units.empty(), "explain: there are no units to explain");
    validate_units(request.units, index_t(request.prompt_tokens.size()),
                   index_t(request.prompt.size()));
    if (request.contrastive()) {
        require(cfg.targets == target_granularity::complete,
                "explain: contrastive explanations compare whole targets; use "
                "target_granularity::complete");
        require(!cfg.explain_targets_by_earlier_targets,
                "explain: contrastive explanations cannot explain targets by earlier targets");
    }
}

inline void check_cancel(const explain_options& options) {
    if (options.cancel != nullptr && options.cancel->load()) throw cancelled("explain: cancelled");
}

inline std::string describe(const explain_request& request, const perturbation& x) {
    if (x.kind == perturbation_kind::target) return "earlier target " + std::to_string(x.index);
    const unit& u = request.units[x.index];
    return "unit " + std::to_string(x.index) + " \"" +
           request.prompt.substr(u.start, u.end - u.start) + "\"";
}

inline void require_finite_ce(double ce, index_t t, const std::vector<std::int32_t>& targets,
                              const std::string& where) {
    if (!std::isfinite(ce)) {
        throw numeric_error(where + ": CE of target " + std::to_string(t) + " (token id " +
                            std::to_string(targets[t]) + ") is not finite: " + std::to_string(ce));
    }
}

// Base pass, then every batch of p on one teacher-forced sequence; deltas go to
// column `which` (target or contrast) of out.rows, which parallels p.perturbations.
template <class Engine>
void run_sequence(Engine& engine, const explain_request& request, const config& cfg, const plan& p,
                  const teacher_forced& seq, bool contrast, const explain_options& options,
                  index_t& done, index_t total, raw_deltas& out) {
    const sequence_view view = seq.view();
    const index_t length = seq.length(), m = index_t(seq.targets.size());
    check_cancel(options);
    std::vector<double> base(std::size_t(m), std::numeric_limits<double>::quiet_NaN());
    engine.base_pass(view, base.data());
    for (index_t t = 0; t < m; ++t) require_finite_ce(base[t], t, seq.targets, "base pass");
    out.stats.passes += 1;
    out.stats.token_forwards += length;
    (contrast ? out.contrast_base_ce : out.base_ce) = base;

    std::vector<float> factors;
    std::vector<row_view> rows;
    std::vector<double> ce;
    for (const batch& b : p.batches) {
        check_cancel(options);
        const index_t n_rows = b.end - b.begin;
        factors.resize(std::size_t(n_rows * length));
        rows.resize(std::size_t(n_rows));
        for (index_t r = 0; r < n_rows; ++r) {
            const perturbation& x = p.perturbations[b.begin + r];
            x.write_factors(factors.data() + r * length, length);
            rows[r] = {x.first_affected, factors.data() + r * length};
            out.stats.token_forwards += x.token_rows(length);
        }
        ce.assign(std::size_t(n_rows * m), std::numeric_limits<double>::quiet_NaN());
        engine.perturbed_pass(view, batch_view{cfg.mode, rows.data(), n_rows}, ce.data());
        for (index_t r = 0; r < n_rows; ++r) {
            const perturbation& x = p.perturbations[b.begin + r];
            std::vector<double>& deltas =
                contrast ? out.rows[b.begin + r].contrast : out.rows[b.begin + r].target;
            deltas.assign(std::size_t(m), 0.0);
            for (index_t t = 0; t < m; ++t) {
                require_finite_ce(ce[r * m + t], t, seq.targets,
                                  "perturbed pass, " + describe(request, x));
                if (view.first_scored + t >= x.first_affected) deltas[t] = ce[r * m + t] - base[t];
            }
        }
        out.stats.passes += n_rows;
        done += n_rows;
        if (options.progress && !options.progress(done, total))
            throw cancelled("explain: cancelled by the progress callback");
    }
}

inline void min_max_normalize(std::vector<double*> values) {
    if (values.empty()) return;
    double lo = *values.front(), hi = lo;
    for (const double* v : values) lo = std::min(lo, *v), hi = std::max(hi, *v);
    for (double* v : values) *v = hi > lo ? (*v - lo) / (hi - lo) : 0.0;
}

inline double postprocessed(double value, postprocess post) {
    switch (post) {
        case postprocess::none:
            return value;
        case postprocess::absolute:
            return std::abs(value);
        case postprocess::square:
            return value * value;
    }
    return value;
}

}  // namespace detail

// The plan for request: with cfg.conceptual, the engine's input embeddings of
// the teacher-forced sequence give the neighbourhoods among the units' positions.
template <class Engine>
plan plan_explanation(Engine& engine, const explain_request& request, const config& cfg) {
    check_adapter<Engine>();
    detail::validate_request(request, cfg);
    const detail::teacher_forced seq(request.prompt_tokens, request.target_tokens);
    neighborhood neighbours;
    if (cfg.conceptual) {
        if constexpr (supports_embeddings<Engine>) {
            const index_t dim = index_t(engine.embedding_dim());
            detail::require(dim >= 1, "explain: engine.embedding_dim() must be >= 1, got " +
                                          std::to_string(dim));
            std::vector<float> embeddings(std::size_t(seq.length() * dim));
            engine.input_embeddings(seq.view(), embeddings.data());
            neighborhood_options options;
            options.kappa = cfg.kappa;
            options.max_neighbors = cfg.max_neighbours;
            for (const unit& u : request.units)
                options.candidates.insert(options.candidates.end(), u.positions.begin(),
                                          u.positions.end());
            neighbours = find_neighbors(embeddings.data(), seq.length(), dim, options);
        } else {
            throw invalid_argument(
                "explain: config.conceptual needs an engine with input_embeddings() and "
                "embedding_dim()");
        }
    }
    return make_plan(request.units,
                     {seq.length(), seq.first_scored(), cfg.conceptual ? &neighbours : nullptr},
                     cfg);
}

// Runs p (a plan of request, or a shard of one) and returns its deltas.
template <class Engine>
raw_deltas explain_deltas(Engine& engine, const explain_request& request, const config& cfg,
                          const plan& p, const explain_options& options = {}) {
    check_adapter<Engine>();
    const auto started = std::chrono::steady_clock::now();
    detail::validate_request(request, cfg);
    validate_plan(p);
    const detail::teacher_forced seq(request.prompt_tokens, request.target_tokens);
    detail::require(p.length == seq.length(),
                    "explain: the plan is for " + std::to_string(p.length) +
                        " positions, the sequence has " + std::to_string(seq.length()));
    for (const perturbation& x : p.perturbations) {
        const index_t count = x.kind == perturbation_kind::unit
                                  ? index_t(request.units.size())
                                  : index_t(request.target_tokens.size()) - 1;
        detail::require(x.index >= 0 && x.index < count,
                        "explain: the plan suppresses " +
                            std::string(x.kind == perturbation_kind::unit ? "unit " : "target ") +
                            std::to_string(x.index) + ", which the request does not have");
        detail::require(
            x.kind == perturbation_kind::unit || !request.contrastive(),
            "explain: contrastive explanations cannot explain targets by earlier targets");
    }

    raw_deltas out;
    for (const perturbation& x : p.perturbations) out.rows.push_back({x.kind, x.index, {}, {}});
    const index_t total = index_t(p.perturbations.size()) * (request.contrastive() ? 2 : 1);
    index_t done = 0;
    detail::run_sequence(engine, request, cfg, p, seq, false, options, done, total, out);
    if (request.contrastive()) {
        const detail::teacher_forced contrast(request.prompt_tokens, request.contrast_tokens);
        detail::run_sequence(engine, request, cfg, p, contrast, true, options, done, total, out);
    }
    out.stats.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return out;
}

// The deltas of all shards of one plan as one: rows concatenated, statistics
// summed (seconds too: compute time, not wall time), base CE from the first.
// Throws invalid_argument when the parts disagree on the base CE sizes.
inline raw_deltas merge_deltas(const std::vector<raw_deltas>& parts) {
    detail::require(!parts.empty(), "merge_deltas: nothing to merge");
    raw_deltas merged;
    merged.base_ce = parts.front().base_ce;
    merged.contrast_base_ce = parts.front().contrast_base_ce;
    for (const raw_deltas& part : parts) {
        detail::require(part.base_ce.size() == merged.base_ce.size() &&
                            part.contrast_base_ce.size() == merged.contrast_base_ce.size(),
                        "merge_deltas: the parts explain different targets");
        merged.rows.insert(merged.rows.end(), part.rows.begin(), part.rows.end());
        merged.stats.passes += part.stats.passes;
        merged.stats.token_forwards += part.stats.token_forwards;
        merged.stats.seconds += part.stats.seconds;
    }
    return merged;
}

// The explanation from the deltas of every perturbation of request's plan
// (each exactly once, in any order).
inline explanation make_explanation(const explain_request& request, const config& cfg,
                                    const raw_deltas& deltas) {
    detail::validate_request(request, cfg);
    const index_t n = index_t(request.prompt_tokens.size()),
                  m = index_t(request.target_tokens.size());
    const index_t m_contrast = index_t(request.contrast_tokens.size());
    const index_t n_units = index_t(request.units.size());
    const index_t n_target_units = cfg.explain_targets_by_earlier_targets ? m - 1 : 0;
    detail::require(index_t(deltas.base_ce.size()) == m &&
                        index_t(deltas.contrast_base_ce.size()) == m_contrast,
                    "make_explanation: the deltas were computed for other targets");

    // slot[k]: the row of unit k (prompt units, then earlier-target units).
    std::vector<const perturbation_deltas*> slot(std::size_t(n_units + n_target_units), nullptr);
    for (const perturbation_deltas& row : deltas.rows) {
        const bool is_unit = row.kind == perturbation_kind::unit;
        const index_t limit = is_unit ? n_units : n_target_units;
        const std::string name =
            std::string(is_unit ? "unit " : "earlier target ") + std::to_string(row.index);
        detail::require(
            row.index >= 0 && row.index < limit,
            "make_explanation: deltas for " + name + ", which the request does not have");
        const perturbation_deltas*& s = slot[std::size_t((is_unit ? 0 : n_units) + row.index)];
        detail::require(s == nullptr, "make_explanation: " + name + " has deltas twice");
        detail::require(
            index_t(row.target.size()) == m && index_t(row.contrast.size()) == m_contrast,
            "make_explanation: " + name + " has deltas for other targets");
        s = &row;
    }
    for (std::size_t k = 0; k < slot.size(); ++k) {
        detail::require(
            slot[k] != nullptr,
            "make_explanation: no deltas for " +
                std::string(index_t(k) < n_units ? "unit " : "earlier target ") +
                std::to_string(index_t(k) < n_units ? index_t(k) : index_t(k) - n_units));
    }

    explanation result;
    result.cfg = cfg;
    result.prompt = request.prompt;
    result.target = request.target;
    result.contrast = request.contrast;
    std::vector<index_t> target_offset(std::size_t(m + 1),
                                       0);  // byte offsets in the concatenated target_texts
    for (index_t t = 0; t < m; ++t) {
        const std::string text =
            request.target_texts.empty() ? std::string() : request.target_texts[t];
        result.targets.push_back({request.target_tokens[t], text, deltas.base_ce[t]});
        target_offset[t + 1] = target_offset[t] + index_t(text.size());
    }
    for (std::size_t k = 0; k < slot.size(); ++k) {
        unit_score s;
        s.index = index_t(k);
        if (index_t(k) < n_units) {
            const unit& u = request.units[k];
            s.text = request.prompt.substr(u.start, u.end - u.start);
            s.start = u.start, s.end = u.end;
            s.first_token = u.positions.front(), s.last_token = u.positions.back() + 1;
        } else {
            const index_t t = index_t(k) - n_units;
            s.text = result.targets[t].text;
            s.start = target_offset[t], s.end = target_offset[t + 1];
            s.first_token = n + t, s.last_token = n + t + 1;
        }
        double complete = 0;
        for (index_t t = 0; t < m; ++t) {
            complete += slot[k]->target[t];
            s.scores_per_target.push_back(detail::postprocessed(slot[k]->target[t], cfg.post));
        }
        for (double d : slot[k]->contrast) complete -= d;
        s.score = detail::postprocessed(complete, cfg.post);
        result.units.push_back(std::move(s));
    }
    if (cfg.normalize) {
        std::vector<double*> column;
        for (unit_score& s : result.units) column.push_back(&s.score);
        detail::min_max_normalize(column);
        for (index_t t = 0; t < m; ++t) {
            column.clear();
            for (unit_score& s : result.units) column.push_back(&s.scores_per_target[t]);
            detail::min_max_normalize(column);
        }
    }

    const index_t n_perturbations = index_t(slot.size());
    result.stats = deltas.stats;
    result.stats.token_forwards_naive = (n_perturbations + 1) * (n + m - 1);
    if (request.contrastive())
        result.stats.token_forwards_naive += (n_perturbations + 1) * (n + m_contrast - 1);
    return result;
}

// The whole method: plan, run, score. stats.seconds covers all three.
template <class Engine>
explanation explain(Engine& engine, const explain_request& request, const config& cfg,
                    const explain_options& options = {}) {
    check_adapter<Engine>();
    const auto started = std::chrono::steady_clock::now();
    raw_deltas deltas =
        explain_deltas(engine, request, cfg, plan_explanation(engine, request, cfg), options);
    deltas.stats.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    return make_explanation(request, cfg, deltas);
}

}  // namespace atman
