"""benchmarks/atman-eval-gradients.py on a small random Llama (no download):
its gradient methods against finite differences and plain autograd, integrated
gradients' completeness with many steps, and the tokenizer check."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

TOOL = pathlib.Path(__file__).resolve().parents[2] / "benchmarks" / "atman-eval-gradients.py"
spec = importlib.util.spec_from_file_location("atman_eval_gradients", TOOL)
tool = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tool)

# Six prompt tokens, two target tokens; units: {0, 1}, {2}, {3, 4}, {5}.
QUESTION = {"line": 7, "prompt": "p", "prompt_tokens": [3, 17, 29, 41, 5, 11], "target": "t",
            "target_tokens": [23, 7], "labels": [0, 1, 0, 0],
            "units": [{"positions": [0, 1]}, {"positions": [2]}, {"positions": [3, 4]}, {"positions": [5]}]}


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         initializer_range=0.3)
    return LlamaForCausalLM(config).eval().double()


def log_probability(model, embeddings):
    """The targets' summed log-probability, from the full model's logits."""
    with torch.no_grad():
        logits = model(inputs_embeds=embeddings[None]).logits[0]
    first = len(QUESTION["prompt_tokens"]) - 1
    logp = torch.log_softmax(logits[first:first + 2], dim=-1)
    return float(logp[0, 23] + logp[1, 7])


def test_input_x_gradient_is_the_derivative_of_scaling_a_unit(model):
    f = tool.Objective(model, QUESTION)
    scores = tool.gradient(f, QUESTION, None)["input-x-gradient"][0]
    # The model's RMSNorm rounds to float32 even in float64: steps large against
    # that rounding, small against the curvature.
    eps = 1e-2
    for u, unit in enumerate(QUESTION["units"]):
        scaled = f.embeddings.clone()
        scaled[unit["positions"]] *= 1 + eps
        minus = f.embeddings.clone()
        minus[unit["positions"]] *= 1 - eps
        derivative = (log_probability(model, scaled) - log_probability(model, minus)) / (2 * eps)
        assert scores[u] == pytest.approx(derivative, rel=1e-2, abs=1e-4)


def test_gradient_norm_is_the_norm_over_the_units_tokens(model):
    f = tool.Objective(model, QUESTION)
    scores = tool.gradient(f, QUESTION, None)["gradient-norm"][0]
    x = f.embeddings.clone().requires_grad_(True)
    logits = model(inputs_embeds=x[None]).logits[0]
    logp = torch.log_softmax(logits[5:7], dim=-1)
    (grad,) = torch.autograd.grad(logp[0, 23] + logp[1, 7], x)
    for u, unit in enumerate(QUESTION["units"]):
        assert scores[u] == pytest.approx(float(grad[unit["positions"]].norm()), rel=1e-9)


def test_integrated_gradients_approach_completeness_with_more_steps(model):
    class Args:
        ig_batch = 64

    f = tool.Objective(model, QUESTION)
    rise = log_probability(model, f.embeddings) - log_probability(model, torch.zeros_like(f.embeddings))
    errors = []
    for Args.steps in (8, 256):
        scores, extra = tool.integrated_gradients(f, QUESTION, Args)["integrated-gradients"]
        assert extra["f_x_minus_f_baseline"] == pytest.approx(rise, rel=1e-6)
        assert len(scores) == len(QUESTION["units"]) and all(np.isfinite(scores))
        # attribution_sum is over every position, the prompt's and the target's inputs.
        errors.append(abs(extra["attribution_sum"] - rise))
    # RMSNorm makes f(a E) change fastest near a = 0, where the midpoint rule is coarsest.
    assert errors[1] < errors[0]
    assert errors[1] < 0.05 * abs(rise)


class FakeTokenizer:
    all_special_ids = [0, 1]

    def __init__(self, ids):
        self.ids = ids

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": self.ids[text]}


def test_token_ids_must_agree():
    q = dict(QUESTION, prompt_tokens=[0] + QUESTION["prompt_tokens"])  # a sink atman-eval put first
    tool.check_tokens(FakeTokenizer({"p": QUESTION["prompt_tokens"], "t": [23, 7]}), q)
    with pytest.raises(SystemExit, match="the prompt.s tokens differ from atman-eval.s at token .*disagree"):
        tool.check_tokens(FakeTokenizer({"p": [3, 17, 30, 41, 5, 11], "t": [23, 7]}), q)
    with pytest.raises(SystemExit, match="the target's tokens differ"):
        tool.check_tokens(FakeTokenizer({"p": QUESTION["prompt_tokens"], "t": [23]}), q)


def test_merge_joins_disjoint_questions_and_refuses_overlap(tmp_path):
    def scores(lines, steps):
        questions = {str(k): {"relevance": [float(k)], "seconds": 1.0, "cpu_seconds": 2.0} for k in lines}
        return {"schema": "atman.eval-scores/1", "model": "m.gguf",
                "methods": {"integrated-gradients": {"questions": questions, "notes": {"steps": steps}}}}
    paths = []
    for name, lines in (("b.json", [12, 10]), ("a.json", [3, 0])):
        paths.append(tmp_path / name)
        paths[-1].write_text(json.dumps(scores(lines, len(lines))))
    out = tmp_path / "out.json"
    tool.merge([str(p) for p in paths], str(out))
    merged = json.loads(out.read_text())["methods"]["integrated-gradients"]
    assert list(merged["questions"]) == ["0", "3", "10", "12"]
    assert merged["questions"]["10"]["relevance"] == [10.0]
    assert [p["file"] for p in merged["notes"]["parts"]] == ["b.json", "a.json"]
    assert merged["notes"]["parts"][0]["questions"] == ["10", "12"]

    (tmp_path / "c.json").write_text(json.dumps(scores([3], 1)))
    with pytest.raises(SystemExit, match="question 3 in more than one file"):
        tool.merge([str(paths[1]), str(tmp_path / "c.json")], str(out))
