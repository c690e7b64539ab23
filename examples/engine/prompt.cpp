#include "prompt.hpp"

#include <atman/error.hpp>

#include <algorithm>

namespace atman::engine {

namespace {

void append_piece(const text_codec& tok, prompt_tokens& out, index_t start, index_t end,
                  bool parse_special) {
    if (start == end) return;
    const std::string_view piece = std::string_view(out.text).substr(start, end - start);
    for (const token& t : tok.encode(piece, parse_special)) {
        out.ids.push_back(t.id);
        out.offsets.push_back({start + t.start, start + t.end, parse_special && tok.is_special(t.id)});
    }
}

// The token a raw prompt starts with to hold the attention sink: the end-of-text
// token (documents are separated by it in pretraining, so the model has seen
// it first) where the vocabulary has one, else BOS. SmolLM2's GGUF names
// <|im_start|> its BOS; the sink stays on the first word after it.
std::int32_t sink_token(const text_codec& tok) {
    for (std::string_view end_of_text : {"<|endoftext|>", "<|end_of_text|>"}) {
        const std::int32_t id = tok.find(end_of_text);
        if (id >= 0 && tok.is_special(id)) return id;
    }
    if (tok.bos_id() < 0) throw atman::invalid_argument("the model has no BOS or end-of-text token to put first");
    return tok.bos_id();
}

}  // namespace

prompt_tokens tokenize_prompt(const text_codec& tok, const chat_format* tmpl, std::string_view user,
                              std::string_view system, bool bos_sink) {
    if (user.empty()) throw atman::invalid_argument("the prompt is empty");
    prompt_tokens out;
    if (tok.add_bos()) {
        out.ids.push_back(tok.bos_id());
        out.offsets.push_back({0, 0, true});
    } else if (bos_sink && tmpl == nullptr) {  // a template begins with its own markers
        out.ids.push_back(sink_token(tok));
        out.offsets.push_back({0, 0, true});
    }
    if (tmpl == nullptr) {
        out.text = std::string(user);
        out.user_ranges.push_back({0, index_t(out.text.size())});
        append_piece(tok, out, 0, index_t(out.text.size()), false);
        return out;
    }
    const chat_prompt rendered = tmpl->render(user, system);
    out.text = rendered.text;
    index_t done = 0;
    for (const auto& [start, end] : rendered.user_ranges) {
        append_piece(tok, out, done, start, true);
        append_piece(tok, out, start, end, false);
        out.user_ranges.push_back({start, end});
        done = end;
    }
    append_piece(tok, out, done, index_t(out.text.size()), true);
    return out;
}

std::vector<std::int32_t> stop_ids(const text_codec& tok, const chat_format* tmpl) {
    std::vector<std::int32_t> ids{tok.eos_id()};
    const auto add = [&](std::string_view text) {
        const std::int32_t id = tok.find(text);
        if (id >= 0 && tok.is_special(id) && std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
    };
    if (tmpl != nullptr) add(tmpl->end_of_turn());
    // Where EOS is the end of a turn, a model may still close with the end of its text.
    for (std::string_view end_of_text : {"<|endoftext|>", "<|end_of_text|>"}) add(end_of_text);
    return ids;
}

atman::explain_request make_request(const text_codec& tok, const prompt_tokens& prompt,
                                    const std::vector<std::int32_t>& target_ids,
                                    atman::unit_options units,
                                    const std::vector<std::int32_t>& contrast_ids) {
    if (target_ids.empty()) throw atman::invalid_argument("the target is empty: nothing to explain");
    atman::explain_request request;
    request.prompt = prompt.text;
    request.prompt_tokens = prompt.ids;
    request.target_tokens = target_ids;
    request.target = tok.decode(target_ids);
    for (std::int32_t id : target_ids) request.target_texts.push_back(tok.token_bytes(id));
    if (units.range.bytes.empty() && units.range.positions.empty()) units.range.bytes = prompt.user_ranges;
    request.units = atman::make_units(prompt.text, prompt.offsets, units);
    request.units_by = units.by;
    if (!contrast_ids.empty()) {
        request.contrast_tokens = contrast_ids;
        request.contrast = tok.decode(contrast_ids);
    }
    return request;
}

}  // namespace atman::engine
