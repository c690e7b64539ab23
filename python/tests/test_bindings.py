"""The Python bindings, checked against NumPy computations of their own: a
small transformer explained through atman.explain must give the scores of a
brute-force leave-one-out run of the same model, with the manipulation and
the neighbourhoods written here from the method's definitions."""

import json

import numpy as np
import pytest

import atman


# --- a small causal transformer in NumPy, float64 -------------------------

VOCAB, DIM, HEADS, LAYERS = 13, 8, 2, 2


def manipulate(scores, phi, mode):
    """AtMan on one head's T x T scaled scores (causal: key j <= query q)."""
    T = scores.shape[0]
    visible = np.tril(np.ones((T, T), dtype=bool))
    if mode == atman.Mode.multiplicative:
        row_min = np.where(visible, scores, np.inf).min(axis=1, keepdims=True)
        return row_min + phi[None, :] * (scores - row_min)
    bias = np.where(phi == 0, -1e4, np.log(np.where(phi == 0, 1, phi)))
    return scores + bias[None, :]


class NumpyModel:
    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.emb = rng.normal(size=(VOCAB, DIM))
        self.pos = 0.3 * rng.normal(size=(64, DIM))
        self.layers = [
            {name: rng.normal(size=(DIM, DIM)) / np.sqrt(DIM) for name in ("q", "k", "v", "o", "up", "down")}
            for _ in range(LAYERS)
        ]
        self.out = rng.normal(size=(DIM, VOCAB))

    def ce(self, tokens, first_scored, targets, phi=None, mode=atman.Mode.multiplicative):
        """CE of targets[t] at position first_scored + t; phi: T key factors."""
        tokens = np.asarray(tokens)
        T = len(tokens)
        x = self.emb[tokens] + self.pos[:T]
        head = DIM // HEADS
        causal = np.tril(np.ones((T, T), dtype=bool))
        for w in self.layers:
            q, k, v = x @ w["q"], x @ w["k"], x @ w["v"]
            heads = []
            for h in range(HEADS):
                cols = slice(h * head, (h + 1) * head)
                s = q[:, cols] @ k[:, cols].T / np.sqrt(head)
                if phi is not None:
                    s = manipulate(s, np.asarray(phi, dtype=np.float64), mode)
                s = np.where(causal, s, -np.inf)
                p = np.exp(s - s.max(axis=1, keepdims=True))
                heads.append((p / p.sum(axis=1, keepdims=True)) @ v[:, cols])
            x = x + np.concatenate(heads, axis=1) @ w["o"]
            x = x + np.tanh(x @ w["up"]) @ w["down"]
        logits = x @ self.out
        rows = logits[first_scored:first_scored + len(targets)]
        lse = np.log(np.exp(rows - rows.max(axis=1, keepdims=True)).sum(axis=1)) + rows.max(axis=1)
        return lse - rows[np.arange(len(targets)), targets]


class NumpyEngine:
    """The model as an atman engine; counts what the explainer asks of it."""

    def __init__(self, model):
        self.model = model
        self.rows_run = 0

    def base_pass(self, seq):
        return self.model.ce(seq.tokens, seq.first_scored, seq.targets)

    def perturbed_pass(self, seq, batch):
        self.rows_run += len(batch)
        self.mode = batch.mode
        return np.stack([self.model.ce(seq.tokens, seq.first_scored, seq.targets, phi, batch.mode)
                         for phi in batch.key_factors])

    def input_embeddings(self, seq):
        return self.model.emb[np.asarray(seq.tokens)]


# "<s>The capital of France, is" with a BOS and BPE-like tokens: " Fr", "ance", ",".
TEXT = "The capital of France, is"
OFFSETS = [(0, 0), (0, 3), (3, 11), (11, 14), (14, 17), (17, 21), (21, 22), (22, 25)]
SPECIAL = [True] + [False] * 7
WORD_POSITIONS = [[1], [2], [3], [4, 5, 6], [7]]  # "France," is one word
WORD_BYTES = [(0, 3), (4, 11), (12, 14), (15, 22), (23, 25)]
PROMPT_TOKENS = [1, 5, 9, 2, 7, 11, 3, 8]
TARGET_TOKENS = [4, 10, 6]


def word_units():
    return atman.make_units(TEXT, OFFSETS, SPECIAL, atman.UnitOptions(by=atman.Granularity.word))


def request(units=None):
    return atman.ExplainRequest(TEXT, PROMPT_TOKENS, " Paris.", TARGET_TOKENS,
                                word_units() if units is None else units,
                                units_by=atman.Granularity.word, target_texts=[" Par", "is", "."])


def sequence():
    tokens = PROMPT_TOKENS + TARGET_TOKENS[:-1]
    return tokens, len(PROMPT_TOKENS) - 1


# --- units ----------------------------------------------------------------

def test_word_units_keep_punctuation_with_the_word_and_leave_special_tokens_out():
    units = word_units()
    assert [u.positions.tolist() for u in units] == WORD_POSITIONS
    assert [(u.start, u.end) for u in units] == WORD_BYTES


def test_units_take_byte_offsets_and_byte_offsets_converts_character_offsets():
    text = "Zürich liegt"
    offsets = atman.byte_offsets(text, [(0, 3), (3, 6), (6, 12)])  # "Zür", "ich", " liegt"
    assert offsets == [(0, 4), (4, 7), (7, 13)]
    units = atman.make_units(text, offsets)
    assert [(u.start, u.end) for u in units] == [(0, 7), (8, 13)]
    assert text.encode()[units[0].start:units[0].end].decode() == "Zürich"


def test_unit_positions_are_a_read_only_view():
    u = word_units()[3]
    a, b = u.positions, u.positions
    assert np.shares_memory(a, b) and not a.flags.writeable
    with pytest.raises(ValueError):
        a[0] = 0


# --- plans and batches ----------------------------------------------------

def test_batches_carry_each_units_key_factors_and_first_affected_position():
    tokens, first_scored = sequence()
    cfg = atman.Config(factor=0.25, max_batch_rows=2)
    plan = atman.make_plan(word_units(), len(tokens), first_scored, cfg)
    assert [(b.begin, b.end) for b in plan.batches] == [(0, 2), (2, 4), (4, 5)]
    seen = []
    for b in range(len(plan.batches)):
        rows = atman.batch_rows(plan, b, cfg.mode)
        factors = rows.key_factors
        assert factors.shape == (len(rows), len(tokens))
        assert np.shares_memory(factors, rows.key_factors) and not factors.flags.writeable
        for r, i in enumerate(rows.plan_index):
            unit = WORD_POSITIONS[plan.perturbations[i].index]
            expected = np.ones(len(tokens), dtype=np.float32)
            expected[unit] = np.float32(0.25)
            np.testing.assert_array_equal(factors[r], expected)
            assert rows.first_affected[r] == unit[0]
            lo, hi = rows.touched_offsets[r], rows.touched_offsets[r + 1]
            assert rows.touched[lo:hi].tolist() == unit
            seen.append(unit)
    assert sorted(seen) == WORD_POSITIONS


def test_neighbourhoods_match_numpy_cosine_similarity():
    rng = np.random.default_rng(3)
    e = rng.normal(size=(6, 4)).astype(np.float32)
    e[4] = 2 * e[1]  # same direction as row 1
    nb = atman.find_neighbors(e, kappa=0.5)
    unit = e / np.linalg.norm(e, axis=1, keepdims=True)
    s = unit @ unit.T
    for i in range(6):
        got = nb.neighbors[nb.offsets[i]:nb.offsets[i + 1]].tolist()
        expected = sorted((j for j in range(6) if j != i and s[i, j] >= 0.5), key=lambda j: -s[i, j])
        assert got == expected
        np.testing.assert_allclose(nb.similarity[nb.offsets[i]:nb.offsets[i + 1]], s[i, expected], atol=1e-6)
    assert 4 in nb.neighbors[nb.offsets[1]:nb.offsets[2]]


# --- scores against leave-one-out ------------------------------------------

def leave_one_out(model, phis, mode):
    tokens, first_scored = sequence()
    base = model.ce(tokens, first_scored, TARGET_TOKENS)
    return np.array([(model.ce(tokens, first_scored, TARGET_TOKENS, phi, mode) - base).sum() for phi in phis])


def unit_factors(factor):
    T = len(sequence()[0])
    phis = []
    for positions in WORD_POSITIONS:
        phi = np.ones(T)
        phi[positions] = factor
        phis.append(phi)
    return phis


@pytest.mark.parametrize("mode", [atman.Mode.multiplicative, atman.Mode.log_additive])
def test_scores_equal_a_numpy_leave_one_out(mode):
    model = NumpyModel()
    engine = NumpyEngine(model)
    e = atman.explain(engine, request(), atman.Config(mode=mode, factor=0.1, max_batch_rows=2))
    expected = leave_one_out(model, unit_factors(np.float32(0.1)), mode)
    assert engine.mode == mode and engine.rows_run == len(WORD_POSITIONS)
    np.testing.assert_allclose(e.scores, expected, rtol=1e-9, atol=1e-12)
    assert np.abs(expected).max() > 1e-3  # the model does depend on its prompt
    assert [t.id for t in e.targets] == TARGET_TOKENS
    tokens, first_scored = sequence()
    np.testing.assert_allclose([t.base_ce for t in e.targets], model.ce(tokens, first_scored, TARGET_TOKENS))


def test_factor_one_gives_zero_scores_without_running_a_perturbed_pass():
    engine = NumpyEngine(NumpyModel())
    e = atman.explain(engine, request(), atman.Config(factor=1.0))
    assert engine.rows_run == 0
    np.testing.assert_array_equal(e.scores, np.zeros(len(WORD_POSITIONS)))


def test_conceptual_suppression_matches_numpy_neighbourhoods():
    model = NumpyModel(seed=1)
    tokens, _ = sequence()
    # Positions 2 (token 9, "capital") and 5 (token 11, in "France,") get
    # nearly one embedding direction, so each is the other's neighbour.
    model.emb[11] = 3 * model.emb[9] + 0.1 * model.emb[2]
    kappa, factor = 0.6, 0.2
    e = atman.explain(NumpyEngine(model), request(), atman.Config(factor=factor, conceptual=True, kappa=kappa))

    emb = model.emb[np.asarray(tokens)]
    unit = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    s = unit @ unit.T
    in_units = sorted(p for u in WORD_POSITIONS for p in u)
    phis = []
    for positions in WORD_POSITIONS:
        phi = np.ones(len(tokens))
        for j in in_units:
            if j in positions:
                phi[j] = np.float32(factor)
                continue
            sims = [s[i, j] for i in positions if s[i, j] >= kappa]
            if sims:
                phi[j] = min(np.float32(1 - (1 - factor) * max(x, 0)) for x in sims)
        phis.append(phi)
    assert any((phi < 1).sum() > len(p) for phi, p in zip(phis, WORD_POSITIONS))  # a neighbour was hit
    np.testing.assert_allclose(e.scores, leave_one_out(model, phis, atman.Mode.multiplicative), rtol=1e-6)


def test_scores_from_raw_deltas_and_merged_shards():
    tokens, first_scored = sequence()
    cfg = atman.Config(post=atman.Postprocess.square)
    plan = atman.make_plan(word_units(), len(tokens), first_scored, cfg)
    rng = np.random.default_rng(7)
    deltas = {p.index: rng.normal(size=len(TARGET_TOKENS)) for p in plan.perturbations}

    def raw(part):
        return atman.RawDeltas([1.0, 2.0, 3.0], [atman.PerturbationDeltas(p.kind, p.index, deltas[p.index])
                                                 for p in part.perturbations])

    parts = [raw(atman.shard(plan, k, 2)) for k in range(2)]
    e = atman.make_explanation(request(), cfg, atman.merge_deltas(parts))
    np.testing.assert_allclose(e.scores, [deltas[k].sum() ** 2 for k in range(len(WORD_POSITIONS))])
    np.testing.assert_allclose(e.units[0].scores_per_target, deltas[0] ** 2)
    with pytest.raises(ValueError, match="no deltas for unit"):
        atman.make_explanation(request(), cfg, parts[0])


# --- errors ---------------------------------------------------------------

def test_library_errors_are_python_exceptions_with_the_library_message():
    with pytest.raises(ValueError, match="factor must be a number from 0 to"):
        atman.explain(NumpyEngine(NumpyModel()), request(), atman.Config(factor=float("nan")))
    with pytest.raises(atman.InvalidArgument, match="token 1 has byte offsets"):
        atman.make_units("abc", [(0, 1), (1, 9)])
    with pytest.raises(ValueError, match="batch 3 is outside the plan's 1 batches"):
        atman.batch_rows(atman.make_plan(word_units(), 10, 7, atman.Config()), 3)
    assert issubclass(atman.InvalidArgument, ValueError) and issubclass(atman.Cancelled, atman.Error)


class BrokenEngine(NumpyEngine):
    def __init__(self, result):
        super().__init__(NumpyModel())
        self.result = result

    def perturbed_pass(self, seq, batch):
        if isinstance(self.result, Exception):
            raise self.result
        return self.result(seq, batch)


def test_engine_failures_surface_as_exceptions():
    with pytest.raises(atman.NumericError, match=r'unit \d+ ".*": CE of target 0'):
        atman.explain(BrokenEngine(lambda s, b: np.full((len(b), s.n_targets), np.nan)), request(), atman.Config())
    with pytest.raises(ArithmeticError, match="returned 3 CE values, expected 15"):
        atman.explain(BrokenEngine(lambda s, b: np.zeros(3)), request(), atman.Config())
    with pytest.raises(KeyError, match="from the engine"):
        atman.explain(BrokenEngine(KeyError("from the engine")), request(), atman.Config())
    with pytest.raises(atman.Cancelled, match="cancelled by the progress callback"):
        atman.explain(NumpyEngine(NumpyModel()), request(), atman.Config(max_batch_rows=1),
                      progress=lambda done, total: done < 2)
    with pytest.raises(ValueError, match="conceptual needs an engine with input_embeddings"):
        class NoEmbeddings:
            base_pass = NumpyEngine.base_pass
            perturbed_pass = NumpyEngine.perturbed_pass
        atman.explain(NoEmbeddings(), request(), atman.Config(conceptual=True))


# --- reports ----------------------------------------------------------------

def test_reports_show_the_explanation():
    e = atman.explain(NumpyEngine(NumpyModel()), request(), atman.Config())
    doc = json.loads(atman.to_json(e, extra_members=[("model", '{"name": "numpy"}')]))
    assert doc["schema"] == atman.explanation_json_schema
    assert doc["config"]["granularity"] == "word" and doc["model"] == {"name": "numpy"}
    assert [u["score"] for u in doc["units"]] == list(e.scores)
    assert [u["text"] for u in doc["units"]] == ["The", "capital", "of", "France,", "is"]
    html = atman.to_html(e, title="a <title>")
    assert html.startswith("<!DOCTYPE html>") and "a &lt;title&gt;" in html
    text = atman.to_terminal(e, top_k=2)
    assert 'AtMan explanation of " Paris."' in text and "top 2 units" in text and "\x1b[" not in text
    assert "\x1b[" in atman.to_terminal(e, colour=True)
    heatmap = text.split("\n\n")[1]
    narrow = atman.to_terminal(e, top_k=2, width=12).split("\n\n")[1]
    assert narrow.count("\n") > heatmap.count("\n")


def test_a_plan_run_in_shards_gives_the_scores_of_one_run():
    model = NumpyModel(seed=2)
    cfg = atman.Config(max_batch_rows=2)
    whole = atman.explain(NumpyEngine(model), request(), cfg)
    plan = atman.plan_explanation(NumpyEngine(model), request(), cfg)
    parts = [atman.explain_deltas(NumpyEngine(model), request(), cfg, atman.shard(plan, k, 3)) for k in range(3)]
    assert sum(len(p.rows) for p in parts) == len(WORD_POSITIONS)
    np.testing.assert_array_equal(atman.make_explanation(request(), cfg, atman.merge_deltas(parts)).scores,
                                  whole.scores)
