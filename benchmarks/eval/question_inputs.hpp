#pragma once
// What a method outside atman-eval needs to score a question exactly as
// atman-eval's methods do (docs/quality.md, "External methods"): one JSON
// object per question (atman.eval-inputs/1, written by --write-inputs) with
// the token ids of the rendered prompt and the target, the units' positions
// and bytes, and the labels. The model sees prompt_tokens followed by
// target_tokens without the last one; target k is scored at position
// len(prompt_tokens) - 1 + k.

#include <nlohmann/json.hpp>

#include "eval/question.hpp"
#include "eval/squad.hpp"

namespace atman::eval {

inline nlohmann::ordered_json question_inputs(const numbered_question& nq, const prepared_question& q) {
    nlohmann::ordered_json units = nlohmann::ordered_json::array();
    for (const atman::unit& u : q.request.units)
        units.push_back({{"positions", u.positions}, {"start", u.start}, {"end", u.end}});
    return {{"schema", "atman.eval-inputs/1"},
            {"line", nq.line},
            {"id", nq.question.id},
            {"prompt", q.request.prompt},
            {"prompt_tokens", q.request.prompt_tokens},
            {"target", q.request.target},
            {"target_tokens", q.request.target_tokens},
            {"units", units},
            {"labels", q.labels}};
}

}  // namespace atman::eval
