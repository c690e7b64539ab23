#pragma once
// The explainer: drives an engine through the adapter contract (adapter.hpp)
// over the plan of perturbations (scheduler.hpp) and hands the change of the
// target's cross-entropy to scoring (scoring.hpp); atman-method.md, sections
// 4 and 5.
//
//   explain(engine, request, cfg)   the whole method in one call: the request
//                                   is validated once, then planned, run and scored
//
// and its steps, for running a plan in pieces (scale-out), each validating
// its own inputs:
//
//   plan_explanation   input embeddings and neighbourhoods when cfg.conceptual,
//                      then the scheduler's plan;
//   explain_deltas     base pass(es), then each batch of a plan or of a shard of it:
//                      delta_t = CE_t(perturbed) - CE_t(base) per perturbation;
//   merge_deltas       the deltas of several shards of one plan (scoring.hpp);
//   make_explanation   deltas -> scores (scoring.hpp).
//
// Each batch reaches the engine as batch_rows (batch_rows.hpp): a
// perturbation that touches no key (every factor 1) is not run, and its
// deltas are exactly 0.
//
// Contrastive ("why target rather than contrast"): both targets are
// teacher-forced after the same prompt, each with its own base pass; requires
// no earlier-target units.
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
#include "batch_rows.hpp"
#include "config.hpp"
#include "error.hpp"
#include "explanation.hpp"
#include "neighborhood.hpp"
#include "request.hpp"
#include "scheduler.hpp"
#include "scoring.hpp"
#include "sequence.hpp"
#include "units.hpp"

namespace atman {

struct explain_options {
    // Called with the plan (or shard) before the first pass, e.g. to check
    // that the engine can hold its largest batch; may throw to refuse it.
    std::function<void(const plan&)> before_running;
    // Called after each batch with perturbations done and in total (counting
    // both targets when contrastive); returning false cancels.
    std::function<bool(index_t done, index_t total)> progress;
    // Polled before each pass; true cancels.
    const std::atomic<bool>* cancel = nullptr;
};

namespace detail {

inline void check_cancel(const explain_options& options) {
    if (options.cancel != nullptr && options.cancel->load()) throw cancelled("explain: cancelled");
}

inline std::string describe(const explain_request& request, const perturbation& x) {
    if (x.kind == perturbation_kind::target) return "earlier target " + std::to_string(x.index);
    const unit& u = request.units[x.index];
    return "unit " + std::to_string(x.index) + " \"" +
           request.prompt.substr(u.start, u.end - u.start) + "\"";
}

// Throws numeric_error unless ce[0..targets.size()) are finite; where() names
// the pass, and is called only then.
template <class Where>
void require_finite_ce(const double* ce, const std::vector<std::int32_t>& targets, Where&& where) {
    for (std::size_t t = 0; t < targets.size(); ++t) {
        if (!std::isfinite(ce[t])) {
            throw numeric_error(where() + ": CE of target " + std::to_string(t) + " (token id " +
                                std::to_string(targets[t]) + ") is not finite: " +
                                std::to_string(ce[t]));
        }
    }
}

// Base pass, then every batch of p on one teacher-forced sequence; deltas go to
// column `which` (target or contrast) of out.rows, which parallels p.perturbations.
template <class Engine>
void run_sequence(Engine& engine, const explain_request& request, const config& cfg, const plan& p,
                  const teacher_forced_sequence& seq, bool contrast, const explain_options& options,
                  index_t& done, index_t total, raw_deltas& out) {
    const sequence_view view = seq.view();
    const index_t m = view.n_targets;
    check_cancel(options);
    std::vector<double> base(std::size_t(m), std::numeric_limits<double>::quiet_NaN());
    engine.base_pass(view, base.data());
    require_finite_ce(base.data(), seq.targets, [] { return std::string("base pass"); });
    out.stats.passes += 1;
    out.stats.token_forwards += view.length;
    (contrast ? out.contrast_base_ce : out.base_ce) = base;

    const auto deltas_of = [&](index_t i) -> std::vector<double>& {
        return contrast ? out.rows[i].contrast : out.rows[i].target;
    };
    batch_rows rows;
    std::vector<double> ce;
    for (const batch& b : p.batches) {
        check_cancel(options);
        rows.assign(p, b, view.length, cfg.mode);
        for (index_t i = b.begin; i < b.end; ++i) deltas_of(i).assign(std::size_t(m), 0.0);
        if (rows.size() > 0) {
            ce.assign(std::size_t(rows.size() * m), std::numeric_limits<double>::quiet_NaN());
            engine.perturbed_pass(view, rows.view(), ce.data());
            for (index_t r = 0; r < rows.size(); ++r) {
                const index_t i = rows.plan_index(r);
                const double* const row_ce = ce.data() + r * m;
                require_finite_ce(row_ce, seq.targets, [&] {
                    return "perturbed pass, " + describe(request, p.perturbations[i]);
                });
                std::vector<double>& deltas = deltas_of(i);
                for (index_t t = 0; t < m; ++t) {
                    if (view.first_scored + t >= rows.row(r).first_affected)
                        deltas[t] = row_ce[t] - base[t];
                }
            }
            out.stats.passes += rows.size();
            out.stats.token_forwards += rows.token_rows();
        }
        done += b.end - b.begin;
        if (options.progress && !options.progress(done, total))
            throw cancelled("explain: cancelled by the progress callback");
    }
}

// plan_explanation for a request validated already.
template <class Engine>
plan plan_request(Engine& engine, const explain_request& request, const config& cfg) {
    const teacher_forced_sequence seq(request.prompt_tokens, request.target_tokens);
    neighborhood neighbours;
    if (cfg.conceptual) {
        if constexpr (supports_embeddings<Engine>) {
            const index_t dim = index_t(engine.embedding_dim());
            require(dim >= 1, "explain: engine.embedding_dim() must be >= 1, got " +
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
    return build_plan(request.units,
                      {seq.length(), seq.first_scored(), cfg.conceptual ? &neighbours : nullptr},
                      cfg);
}

// explain_deltas for a request and plan validated already; stats.seconds is left 0.
template <class Engine>
raw_deltas run_plan(Engine& engine, const explain_request& request, const config& cfg,
                    const plan& p, const explain_options& options) {
    if (options.before_running) options.before_running(p);
    raw_deltas out;
    for (const perturbation& x : p.perturbations) out.rows.push_back({x.kind, x.index, {}, {}});
    const index_t total = index_t(p.perturbations.size()) * (request.contrastive() ? 2 : 1);
    index_t done = 0;
    run_sequence(engine, request, cfg, p,
                 teacher_forced_sequence(request.prompt_tokens, request.target_tokens), false,
                 options, done, total, out);
    if (request.contrastive()) {
        run_sequence(engine, request, cfg, p,
                     teacher_forced_sequence(request.prompt_tokens, request.contrast_tokens), true,
                     options, done, total, out);
    }
    return out;
}

inline double seconds_since(std::chrono::steady_clock::time_point started) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
}

}  // namespace detail

// The plan for request: with cfg.conceptual, the engine's input embeddings of
// the teacher-forced sequence give the neighbourhoods among the units' positions.
template <class Engine>
plan plan_explanation(Engine& engine, const explain_request& request, const config& cfg) {
    check_adapter<Engine>();
    detail::validate_request(request, cfg);
    return detail::plan_request(engine, request, cfg);
}

// Runs p (a plan of request, or a shard of one) and returns its deltas.
template <class Engine>
raw_deltas explain_deltas(Engine& engine, const explain_request& request, const config& cfg,
                          const plan& p, const explain_options& options = {}) {
    check_adapter<Engine>();
    const auto started = std::chrono::steady_clock::now();
    detail::validate_request(request, cfg);
    validate_plan(p);
    const index_t length =
        index_t(request.prompt_tokens.size() + request.target_tokens.size()) - 1;
    detail::require(p.length == length, "explain: the plan is for " + std::to_string(p.length) +
                                             " positions, the sequence has " +
                                             std::to_string(length));
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
    raw_deltas out = detail::run_plan(engine, request, cfg, p, options);
    out.stats.seconds = detail::seconds_since(started);
    return out;
}

// The whole method: plan, run, score. stats.seconds covers all three.
template <class Engine>
explanation explain(Engine& engine, const explain_request& request, const config& cfg,
                    const explain_options& options = {}) {
    check_adapter<Engine>();
    const auto started = std::chrono::steady_clock::now();
    detail::validate_request(request, cfg);
    raw_deltas deltas =
        detail::run_plan(engine, request, cfg, detail::plan_request(engine, request, cfg), options);
    deltas.stats.seconds = detail::seconds_since(started);
    return detail::score_deltas(request, cfg, deltas);
}

}  // namespace atman
