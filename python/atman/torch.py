"""AtMan for Hugging Face transformers causal LMs, planned and scored by the C++ library.

    from atman.torch import explain
    e = explain(model, tokenizer, "The capital of France is", " Paris")
    print(atman.to_terminal(e))

The model runs as an atman engine (atman.explain): one base pass keeps its KV
cache; each batch of perturbations reuses the cache for the positions before
the batch's first affected position and recomputes only the rest.
multiplicative mode runs through a custom attention function registered in
transformers' attention interface; log_additive adds log(phi) to an additive
4D attention mask, which every attention implementation accepts.
"""

import contextlib
import inspect

import numpy as np
import torch

import atman

ATTENTION_NAME = "atman_multiplicative"

# The key coefficients (phi - 1, batch x keys) of the pass in progress; read
# by the attention function, which transformers calls without extra arguments.
_coefficients = None


def _multiplicative_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention with AtMan's multiplicative manipulation:
    S' = m + phi (S - m), m the minimum of the scores a query row may see."""
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    scaling = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    q_len, k_len = scores.shape[-2:]
    if attention_mask is None:  # causal: the queries are the last q_len positions
        rows = torch.arange(k_len - q_len, k_len, device=scores.device)[:, None]
        visible = torch.arange(k_len, device=scores.device)[None, :] <= rows
    elif attention_mask.dtype == torch.bool:
        visible = attention_mask[..., :k_len]
    else:
        visible = attention_mask[..., :k_len] == 0
    if _coefficients is not None:
        row_min = scores.masked_fill(~visible, float("inf")).amin(dim=-1, keepdim=True)
        scores = scores + _coefficients[:, None, None, :k_len] * (scores - row_min)
    scores = scores.masked_fill(~visible, torch.finfo(scores.dtype).min)
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(value.dtype)
    return torch.matmul(probs, value).transpose(1, 2).contiguous(), None


def _register():
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION_NAME, _multiplicative_attention)
    try:  # transformers >= 4.53 builds masks per attention implementation
        from transformers.masking_utils import AttentionMaskInterface, eager_mask

        AttentionMaskInterface.register(ATTENTION_NAME, eager_mask)
    except ImportError:
        pass


_register()


@contextlib.contextmanager
def _attention(model, name):
    previous = model.config._attn_implementation
    model.config._attn_implementation = name
    try:
        yield
    finally:
        model.config._attn_implementation = previous


def _prefix_cache(cache, p, rows):
    """The base pass's KV cache cut to positions < p, repeated for `rows` rows."""
    from transformers import DynamicCache

    if hasattr(cache, "layers"):
        kv = [(layer.keys, layer.values) for layer in cache.layers]
    else:
        kv = list(zip(cache.key_cache, cache.value_cache))
    prefix = DynamicCache()
    for index, (k, v) in enumerate(kv):
        prefix.update(k[:, :, :p].expand(rows, -1, -1, -1).contiguous(),
                      v[:, :, :p].expand(rows, -1, -1, -1).contiguous(), index)
    return prefix


def _token_ce(logits, targets):
    """CE in nats of targets (rows x m) under logits (rows x m x vocab)."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    return -logp.gather(-1, targets[..., None])[..., 0].double()


class TransformersEngine:
    """A transformers causal LM as an atman engine (see atman.explain)."""

    def __init__(self, model, prefix_reuse=True):
        self.model = model
        self.prefix_reuse = prefix_reuse  # False: every row recomputes all positions
        self.device = next(model.parameters()).device
        # transformers 5.2x renamed the cache argument from past_key_values to cache.
        parameters = inspect.signature(model.forward).parameters
        self._cache_argument = "cache" if "cache" in parameters else "past_key_values"
        # Logits only where targets are scored: on SmolLM2-135M the vocabulary
        # projection is 28M of the 134M multiply-adds per position (counted from
        # the shapes, not timed).
        self._keeps_logits = "logits_to_keep" in parameters
        self._cache = None
        self._base_ce = None

    def _targets(self, seq, rows):
        return torch.tensor(seq.targets, dtype=torch.long, device=self.device).expand(rows, -1)

    def _logits_from(self, first, T):
        """The forward's arguments that keep the logits of positions >= first only."""
        return {"logits_to_keep": max(T - first, 1)} if self._keeps_logits else {}

    def base_pass(self, seq):
        tokens = torch.tensor(seq.tokens, dtype=torch.long, device=self.device)[None]
        with torch.inference_mode():
            out = self.model(input_ids=tokens, use_cache=True, **self._logits_from(seq.first_scored, seq.length))
            first = seq.first_scored - (seq.length - out.logits.shape[1])
            scored = out.logits[:, first:first + seq.n_targets]
            ce = _token_ce(scored, self._targets(seq, 1))[0]
        self._cache = getattr(out, self._cache_argument)
        self._base_ce = ce
        return ce.cpu().numpy()

    def perturbed_pass(self, seq, batch):
        global _coefficients
        rows, T = len(batch), seq.length
        # The rows share the positions before their first affected one.
        p = int(batch.first_affected.min()) if self.prefix_reuse else 0
        # Copies: the views are valid only during this call.
        factors = torch.tensor(batch.key_factors, device=self.device)
        tokens = torch.tensor(seq.tokens[p:], dtype=torch.long, device=self.device)
        kwargs = {"input_ids": tokens[None].expand(rows, -1),
                  "position_ids": torch.arange(p, T, device=self.device)[None].expand(rows, -1),
                  "use_cache": p > 0}
        if p > 0:
            kwargs[self._cache_argument] = _prefix_cache(self._cache, p, rows)
        first = max(seq.first_scored, p)  # targets scored before p cannot change
        last = seq.first_scored + seq.n_targets
        kwargs.update(self._logits_from(first, T))
        dtype = next(self.model.parameters()).dtype
        with torch.inference_mode():
            if batch.mode == atman.Mode.multiplicative:
                _coefficients = (factors - 1).to(dtype)
                try:
                    with _attention(self.model, ATTENTION_NAME):
                        logits = self.model(**kwargs).logits
                finally:
                    _coefficients = None
            else:
                logits = self.model(attention_mask=_log_additive_mask(factors, p, dtype), **kwargs).logits
            ce = self._base_ce.expand(rows, -1).clone()
            if last > first:
                kept = T - logits.shape[1]  # the position of the first logits row
                ce[:, first - seq.first_scored:] = _token_ce(logits[:, first - kept:last - kept],
                                                             self._targets(seq, rows)[:, first - seq.first_scored:])
        return ce.cpu().numpy()


def _log_additive_mask(factors, p, dtype):
    """rows x 1 x (T - p) x T: causal, plus log(phi_j) on key j (the library's
    log_additive_zero_bias for phi = 0)."""
    rows, T = factors.shape
    zero = torch.full_like(factors, atman.log_additive_zero_bias)
    bias = torch.where(factors == 0, zero, torch.log(torch.where(factors == 0, torch.ones_like(factors), factors)))
    queries = torch.arange(p, T, device=factors.device)[:, None]
    causal = torch.arange(T, device=factors.device)[None, :] <= queries
    mask = torch.where(causal, 0.0, torch.finfo(dtype).min).to(dtype)
    return (mask[None] + bias[:, None, :].to(dtype)).clamp(min=torch.finfo(dtype).min)[:, None]


def _chat_pieces(tokenizer, prompt, system):
    """prompt as one user turn in tokenizer's chat template (system None: the
    template's default), cut into (text, is_user) pieces around the user's text."""
    messages = ([] if system is None else [{"role": "system", "content": system}]) + [
        {"role": "user", "content": prompt}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    start = text.rfind(prompt)
    if start < 0:
        raise ValueError("the chat template does not hold the prompt verbatim")
    return [(text[:start], False), (prompt, True), (text[start + len(prompt):], False)]


def sink_token(tokenizer):
    """The token a raw prompt starts with to hold the model's attention sink, as
    atman-explain --sink bos chooses it: the end-of-text token, else BOS."""
    for end_of_text in ("<|endoftext|>", "<|end_of_text|>"):
        if end_of_text in tokenizer.all_special_tokens:
            return tokenizer.convert_tokens_to_ids(end_of_text)
    if tokenizer.bos_token_id is None:
        raise ValueError("the tokenizer has no BOS or end-of-text token to put first")
    return tokenizer.bos_token_id


def request_for(tokenizer, prompt, target, units_by=atman.Granularity.word, add_special_tokens=False,
                chat=False, system=None, sink="bos"):
    """The explain request of target after prompt with tokenizer's tokens
    (a fast tokenizer: units come from its offsets) and units_by's units.
    chat: prompt as a user turn in the tokenizer's chat template, units over the
    user's text only; template pieces are tokenised with special tokens parsed,
    the user's text without, so it cannot inject a control token (as atman-explain).
    sink (raw prompts without add_special_tokens): "bos" puts sink_token first,
    outside every unit, so no word holds the attention sink; "none" does not."""
    if sink not in ("bos", "none"):
        raise ValueError(f"sink must be 'bos' or 'none', not {sink!r}")
    pieces = _chat_pieces(tokenizer, prompt, system) if chat else [(prompt, True)]
    text, ids, offsets, special, user = "", [], [], [], []
    if sink == "bos" and not chat and not add_special_tokens:
        ids, offsets, special = [sink_token(tokenizer)], [(0, 0)], [True]
    for piece, is_user in pieces:
        if not piece:
            continue
        encoded = tokenizer(piece, return_offsets_mapping=True, add_special_tokens=add_special_tokens and not text,
                            split_special_tokens=is_user)
        start = len(text.encode("utf-8"))
        ids += encoded["input_ids"]
        offsets += [(start + a, start + b) for a, b in atman.byte_offsets(piece, encoded["offset_mapping"])]
        special += [i in tokenizer.all_special_ids for i in encoded["input_ids"]]
        text += piece
        if is_user:
            user.append(atman.ByteRange(start, len(text.encode("utf-8"))))
    units = atman.make_units(text, offsets, special, atman.UnitOptions(by=units_by, range_bytes=user))
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    texts = [tokenizer.decode([t]) for t in target_ids]
    return atman.ExplainRequest(text, ids, target, target_ids, units, units_by=units_by, target_texts=texts)


def explain(model, tokenizer, prompt, target, *, mode=atman.Mode.multiplicative, factor=0.1,
            units_by=atman.Granularity.word, config=None, progress=True, chat=False, system=None, sink="bos"):
    """The AtMan explanation of `target` following `prompt` under model: raw
    text, or with chat=True a user turn in the tokenizer's chat template (system
    None: the template's default system message), as atman-explain without and
    with --raw (sink: as its --sink, see request_for); config (an atman.Config)
    overrides mode and factor.
    progress: a tqdm bar on stderr (True), a callable(done, total), or None."""
    cfg = config if config is not None else atman.Config(mode=mode, factor=factor)
    req = request_for(tokenizer, prompt, target, units_by, chat=chat, system=system, sink=sink)
    bar, callback = None, progress if callable(progress) else None
    if progress is True:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(req.units), unit="unit", leave=False)

        def callback(done, total):
            bar.total = total
            bar.update(done - bar.n)
    try:
        return atman.explain(TransformersEngine(model), req, cfg, progress=callback)
    finally:
        if bar is not None:
            bar.close()


def load_gguf(path, dtype=torch.float32):
    """Model and tokenizer from a GGUF file (dequantised), as the C++ engine loads it."""
    import os

    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = os.path.split(os.path.abspath(path))
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    try:
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=dtype)
    except TypeError:  # transformers before 4.56 names it torch_dtype
        model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, torch_dtype=dtype)
    return model.eval(), tokenizer
