#pragma once
// From user text to what the explainer needs: the prompt as the model sees it
// (chat template or raw), its tokens with byte offsets, which bytes the user
// wrote (the default explain range), and the stop tokens for generation.

#include <atman/explainer.hpp>
#include <atman/units.hpp>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat_format.hpp"
#include "text_codec.hpp"

namespace atman::engine {

struct prompt_tokens {
    std::string text;                        // the full prompt, template included
    std::vector<std::int32_t> ids;
    std::vector<atman::token_offsets> offsets;  // one per id; template markers are special
    std::vector<atman::byte_range> user_ranges; // bytes of text the user supplied
};

// With a template: its rendering of one user turn (system empty = the
// template's default), template pieces tokenised with special tokens parsed and
// user text without, so user text can never inject a control token. Without
// (raw): the text itself, after BOS when the model wants one; else, with
// bos_sink, after its end-of-text token (or BOS where it has none): the first
// position of a prompt is the model's attention sink, and a beginning-of-text
// token there keeps the sink out of the user's words (docs/quality.md).
prompt_tokens tokenize_prompt(const text_codec& tok, const chat_format* tmpl, std::string_view user,
                              std::string_view system = {}, bool bos_sink = false);

// Generation stops at EOS, at the template's end-of-turn token and at an
// end-of-text token (<|endoftext|>, <|end_of_text|>) the vocabulary has.
std::vector<std::int32_t> stop_ids(const text_codec& tok, const chat_format* tmpl);

// The explain request for `target_ids` after `prompt`, with units of the
// given options over the user's text unless options.range says otherwise.
// An empty contrast_ids means no contrastive explanation.
atman::explain_request make_request(const text_codec& tok, const prompt_tokens& prompt,
                                    const std::vector<std::int32_t>& target_ids,
                                    atman::unit_options units,
                                    const std::vector<std::int32_t>& contrast_ids = {});

}  // namespace atman::engine
