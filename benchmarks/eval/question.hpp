#pragma once
// One SQuAD question turned into an explain request (docs/quality.md): the
// model's chat template with one user message, the context, a blank line and
// the question; the first answer teacher-forced; the words of the context as
// units, with their labels (labels.hpp). Shared by atman-eval and atman-long.
// Raw prompts (no template) end in "Answer:" and the target is the answer
// after a space; how their first position, the attention sink, is treated is
// a raw_sink (docs/quality.md, "Raw prompts and the attention sink").

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

enum class raw_sink {
    none,        // the prompt as the tokenizer gives it: the first word holds the sink
    bos,         // BOS first when the tokenizer adds none, outside every unit
    unscored,    // position 0 is never suppressed: it leaves its unit (a unit of it alone is dropped)
};

// How the prompt is built: the chat template (tmpl set) or raw with a sink policy.
struct prompt_style {
    const engine::chat_template* tmpl = nullptr;  // nullptr: raw
    raw_sink sink = raw_sink::bos;
};

// One question turned into what the methods need, or the reason it is skipped.
struct prepared_question {
    atman::explain_request request;
    std::vector<int> labels;  // one per unit of request
    std::string skip_reason;  // empty: evaluate it
    engine::prompt_tokens prompt;
    atman::unit_options units;  // request's units: words of the context's bytes
};

inline prepared_question prepare(const squad_question& q, const engine::tokenizer& tok, prompt_style style) {
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
    const std::string user = q.context + "\n\nQuestion: " + q.question;
    const bool raw = style.tmpl == nullptr;
    out.prompt = engine::tokenize_prompt(tok, style.tmpl, raw ? user + "\nAnswer:" : user, {},
                                         raw && style.sink == raw_sink::bos);
    const index_t context_start = out.prompt.user_ranges.front().start;
    out.units.by = atman::granularity::word;
    out.units.range.bytes = {{context_start, context_start + index_t(q.context.size())}};
    const std::string target = raw ? " " + q.answers.front().text : q.answers.front().text;
    out.request = engine::make_request(tok, out.prompt, tok.encode_ids(target), out.units);
    if (raw && style.sink == raw_sink::unscored) {
        std::vector<atman::unit>& units = out.request.units;
        for (atman::unit& u : units)
            if (!u.positions.empty() && u.positions.front() == 0) u.positions.erase(u.positions.begin());
        units.erase(std::remove_if(units.begin(), units.end(), [](const atman::unit& u) { return u.positions.empty(); }),
                    units.end());
    }

    std::vector<atman::byte_range> unit_bytes;
    for (const atman::unit& u : out.request.units) unit_bytes.push_back({u.start - context_start, u.end - context_start});
    out.labels = unit_labels(unit_bytes, answers);
    if (std::find(out.labels.begin(), out.labels.end(), 1) == out.labels.end())
        out.skip_reason = "no unit overlaps an answer";
    return out;
}

}  // namespace atman::eval
