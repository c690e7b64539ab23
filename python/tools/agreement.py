"""The PyTorch adapter against the C++ reference engine: the same GGUF model,
raw prompts and prompts in the chat template, word units, both modes. Checks
the token ids and unit positions, prints the largest score difference per prompt and mode,
and that factor 1 gives zeros on both sides; exits 1 when a difference
exceeds --tolerance.

    python python/tools/agreement.py --cli build/release/examples/atman-explain --model "$ATMAN_MODEL"
"""

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

import atman
from atman.torch import explain, load_gguf

PROMPTS = [
    ("The capital of France is", " Paris"),
    ("Water boils at a temperature of 100 degrees", " Celsius"),
    ("The author of Romeo and Juliet is William", " Shakespeare"),
    ("My favourite fruit is a yellow banana, and my friend likes red", " apples"),
    ("In 1969, Neil Armstrong walked on the", " Moon"),
    ("The quick brown fox jumps over the lazy", " dog"),
]
# In the chat template: the user's question, the assistant's reply.
CHAT_PROMPTS = [
    ("What is the capital of France?", "Paris"),
    ("Name the largest planet in our solar system.", "Jupiter"),
    ("Tom has three apples and buys two more. How many apples does Tom have now?", "Tom has five apples."),
    ("Translate to French: the cat sleeps on the red sofa.", "Le chat dort sur le canapé rouge."),
    ("Which gas do plants absorb from the air to make their food?", "Carbon dioxide"),
    ("Write one word that rhymes with moon, and explain nothing else.", "Spoon"),
]
MODES = {"multiplicative": atman.Mode.multiplicative, "log_additive": atman.Mode.log_additive}


def reference(cli, model, prompt, target, mode, factor, threads, chat):
    out = subprocess.run([cli, "--model", model, *([] if chat else ["--raw"]), "--prompt", prompt, "--target", target,
                          "--mode", mode, "--factor", str(factor), "--format", "json", "-q",
                          "--threads", str(threads)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", required=True, help="the C++ atman-explain")
    parser.add_argument("--model", required=True, help="the GGUF file")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--tolerance", type=float, default=1e-3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, tokenizer = load_gguf(args.model)

    worst = 0.0
    print(f"{'mode':<15} {'prompt':<6} {'units':>5} {'max |diff|':>17} {'max |score|':>12}  prompt")
    runs = [(prompt, target, False) for prompt, target in PROMPTS] + [(p, t, True) for p, t in CHAT_PROMPTS]
    for mode, m in MODES.items():
        for prompt, target, chat in runs:
            ref = reference(args.cli, args.model, prompt, target, mode, 0.1, args.threads, chat)
            e = explain(model, tokenizer, prompt, target, mode=m, progress=None, chat=chat)
            assert e.prompt == ref["prompt"], (e.prompt, ref["prompt"])
            # Same sequence length on both sides (the JSON has no prompt token ids; the units' token
            # ranges, the target ids and the base CE below pin them down).
            assert e.stats.token_forwards == ref["stats"]["token_forwards"], prompt
            ids = [t.id for t in e.targets]
            assert ids == [t["id"] for t in ref["target_tokens"]], (prompt, ids, ref["target_tokens"])
            assert [[u.first_token, u.last_token] for u in e.units] == [u["tokens"] for u in ref["units"]], prompt
            diff = float(np.max(np.abs(e.scores - np.array([u["score"] for u in ref["units"]]))))
            diff = max(diff, max(abs(t.base_ce - r["base_ce"]) for t, r in zip(e.targets, ref["target_tokens"])))
            worst = max(worst, diff)
            print(f"{mode:<15} {'chat' if chat else 'raw':<6} {len(e.units):>5} {diff:>17.2e} {np.max(np.abs(e.scores)):>12.3f}  {prompt!r} -> {target!r}")
        prompt, target = PROMPTS[0]
        ones = explain(model, tokenizer, prompt, target, mode=m, factor=1.0, progress=None).scores
        ref_ones = [u["score"] for u in reference(args.cli, args.model, prompt, target, mode, 1.0, args.threads,
                                                  False)["units"]]
        assert np.all(ones == 0) and all(s == 0 for s in ref_ones), (ones, ref_ones)
        print(f"{mode:<15} factor 1: all scores 0 on both sides")
    print(f"largest difference {worst:.2e} (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"{time.perf_counter() - started:.1f} s")
    sys.exit(code)
