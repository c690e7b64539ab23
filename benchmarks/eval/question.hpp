#pragma once
// One SQuAD question turned into an explain request (docs/quality.md): the
// model's chat template with one user message, the context, a blank line and
// the question; the first answer teacher-forced; the words of the context as
// units, with their labels (labels.hpp). Shared by atman-eval and atman-long.

#include <atman/request.hpp>
#include <atman/units.hpp>

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "engine/chat_template.hpp"
#include "engine/prompt.hpp"
#include "engine/tokenizer.hpp"
#include "eval/labels.hpp"
#include "eval/squad.hpp"

namespace atman::eval {

// One question turned into what the methods need, or the reason it is skipped.
struct prepared_question {
    atman::explain_request request;
    std::vector<int> labels;  // one per unit of request
    std::string skip_reason;  // empty: evaluate it
    engine::prompt_tokens prompt;
    atman::unit_options units;  // request's units: words of the context's bytes
};

inline prepared_question prepare(const squad_question& q, const engine::tokenizer& tok,
                                 const engine::chat_template& tmpl) {
    prepared_question out;
    if (q.context.find_first_not_of(" \t\r\n") == std::string::npos) {
        out.skip_reason = "empty context";
        return out;
    }
    if (q.answers.empty()) {
        out.skip_reason = "no answer";
        return out;
    }
    std::vector<atman::byte_range> answers;
    for (const squad_answer& a : q.answers) {
        const std::optional<atman::byte_range> bytes = answer_bytes(q.context, a.text, a.start_code_point);
        if (!bytes) {
            out.skip_reason = "answer not found at its offset";
            return out;
        }
        answers.push_back(*bytes);
    }

    // The context's bytes are the explain range.
    out.prompt = engine::tokenize_prompt(tok, &tmpl, q.context + "\n\nQuestion: " + q.question);
    const index_t context_start = out.prompt.user_ranges.front().start;
    out.units.by = atman::granularity::word;
    out.units.range.bytes = {{context_start, context_start + index_t(q.context.size())}};
    out.request = engine::make_request(tok, out.prompt, tok.encode_ids(q.answers.front().text), out.units);

    std::vector<atman::byte_range> unit_bytes;
    for (const atman::unit& u : out.request.units) unit_bytes.push_back({u.start - context_start, u.end - context_start});
    out.labels = unit_labels(unit_bytes, answers);
    if (std::find(out.labels.begin(), out.labels.end(), 1) == out.labels.end())
        out.skip_reason = "no unit overlaps an answer";
    return out;
}

}  // namespace atman::eval
