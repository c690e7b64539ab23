"""atman.torch on a small random Llama (transformers' own code, no download).
Run by scripts/test-torch in the torch venv; the agreement with the C++
engine on the real model is python/tools/agreement.py."""

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import atman
from atman.torch import TransformersEngine

PROMPT = "one two three four five six"
PROMPT_TOKENS = [3, 17, 29, 41, 5, 11]
TARGET_TOKENS = [23, 7]


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         initializer_range=0.3)  # large weights: units matter
    return LlamaForCausalLM(config).eval()


def request():
    offsets = [(0, 3), (3, 7), (7, 13), (13, 18), (18, 23), (23, 27)]
    units = atman.make_units(PROMPT, offsets)
    return atman.ExplainRequest(PROMPT, PROMPT_TOKENS, " x", TARGET_TOKENS, units)


def ce_with_key_mask(model, keep):
    """CE of the targets with the keys where keep is 0 removed by a padding mask."""
    tokens = torch.tensor([PROMPT_TOKENS + TARGET_TOKENS[:-1]])
    with torch.no_grad():
        logits = model(input_ids=tokens, attention_mask=torch.tensor([keep])).logits[0]
    first = len(PROMPT_TOKENS) - 1
    logp = torch.log_softmax(logits[first:first + len(TARGET_TOKENS)].double(), dim=-1)
    return -logp[torch.arange(len(TARGET_TOKENS)), torch.tensor(TARGET_TOKENS)].numpy()


def test_log_additive_factor_zero_removes_the_unit_like_a_padding_mask(model):
    e = atman.explain(TransformersEngine(model), request(),
                      atman.Config(mode=atman.Mode.log_additive, factor=0.0, max_batch_rows=4))
    T = len(PROMPT_TOKENS) + len(TARGET_TOKENS) - 1
    base = ce_with_key_mask(model, [1] * T)
    for u, score in zip(request().units, e.scores):
        keep = [1] * T
        for p in u.positions:
            keep[p] = 0
        assert score == pytest.approx((ce_with_key_mask(model, keep) - base).sum(), abs=1e-5)
    assert np.abs(e.scores).max() > 1e-3


@pytest.mark.parametrize("mode", [atman.Mode.multiplicative, atman.Mode.log_additive])
def test_prefix_reuse_and_batching_change_nothing(model, mode):
    cfg = atman.Config(mode=mode, factor=0.3, max_batch_rows=2)
    reused = atman.explain(TransformersEngine(model), request(), cfg).scores
    full = atman.explain(TransformersEngine(model, prefix_reuse=False), request(),
                         atman.Config(mode=mode, factor=0.3, max_batch_rows=1)).scores
    np.testing.assert_allclose(reused, full, atol=1e-5)
    assert np.abs(full).max() > 1e-3


@pytest.mark.parametrize("mode", [atman.Mode.multiplicative, atman.Mode.log_additive])
def test_factor_one_gives_zeros(model, mode):
    assert np.all(atman.explain(TransformersEngine(model), request(), atman.Config(mode=mode, factor=1.0)).scores == 0)


def test_multiplicative_attention_with_factors_one_is_the_plain_model(model):
    engine = TransformersEngine(model, prefix_reuse=False)
    req = request()
    plan = atman.make_plan(req.units, 7, 5, atman.Config())
    seq = type("Seq", (), {"tokens": np.array(PROMPT_TOKENS + TARGET_TOKENS[:-1]), "length": 7,
                           "first_scored": 5, "targets": np.array(TARGET_TOKENS), "n_targets": 2})()
    base = engine.base_pass(seq)
    batch = atman.batch_rows(plan, 0, atman.Mode.multiplicative)
    ones = type("Batch", (), {"key_factors": np.ones_like(batch.key_factors), "first_affected": batch.first_affected,
                              "mode": atman.Mode.multiplicative, "__len__": lambda self: len(batch)})()
    np.testing.assert_allclose(engine.perturbed_pass(seq, ones), np.tile(base, (len(batch), 1)), atol=1e-5)


def word_tokenizer():
    """A whitespace word-level fast tokenizer with <s>/</s> as special tokens and
    a chat template that wraps each turn in them."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<unk>", "<s>", "</s>", "user", "one", "two", "three", "<", "s", ">", "x", "<|endoftext|>"]
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>",
                                        additional_special_tokens=["<s>", "</s>", "<|endoftext|>"])
    tokenizer.chat_template = ("{% for m in messages %}<s> {{ m['role'] }} {{ m['content'] }} </s> {% endfor %}"
                               "{% if add_generation_prompt %}<s> {% endif %}")
    return tokenizer


def test_chat_request_has_units_over_the_user_text_only_and_parses_no_control_token_in_it():
    from atman.torch import request_for

    tokenizer = word_tokenizer()
    req = request_for(tokenizer, "one two three", "x", chat=True)
    assert req.prompt == "<s> user one two three </s> <s> "
    special, close = tokenizer.convert_tokens_to_ids(["<s>", "</s>"])
    assert list(req.prompt_tokens)[:2] == [special, tokenizer.convert_tokens_to_ids("user")]
    assert list(req.prompt_tokens)[-2:] == [close, special]
    assert [req.prompt[u.start:u.end].strip() for u in req.units] == ["one", "two", "three"]
    # The user's own "<s>" stays text: split into ordinary tokens, never the control token.
    user = request_for(tokenizer, "one <s> two", "x", chat=True)
    assert list(user.prompt_tokens).count(special) == 2
    assert tokenizer.convert_tokens_to_ids(["<", "s", ">"]) == list(user.prompt_tokens)[3:6]


def test_raw_request_puts_the_sink_token_first_outside_every_unit():
    from atman.torch import request_for

    tokenizer = word_tokenizer()
    words = [tokenizer.convert_tokens_to_ids(w) for w in ("one", "two")]
    req = request_for(tokenizer, "one two", "x")
    assert list(req.prompt_tokens) == [tokenizer.convert_tokens_to_ids("<|endoftext|>")] + words
    assert [list(u.positions) for u in req.units] == [[1], [2]]
    assert list(request_for(tokenizer, "one two", "x", sink="none").prompt_tokens) == words
    with pytest.raises(ValueError, match="sink"):
        request_for(tokenizer, "one two", "x", sink="first")
