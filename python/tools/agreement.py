"""The PyTorch adapter against the C++ reference engine: the same GGUF model,
raw prompts (no chat template), word units, both modes. Checks the token ids
and unit positions, prints the largest score difference per prompt and mode,
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
MODES = {"multiplicative": atman.Mode.multiplicative, "log_additive": atman.Mode.log_additive}


def reference(cli, model, prompt, target, mode, factor, threads):
    out = subprocess.run([cli, "--model", model, "--raw", "--prompt", prompt, "--target", target,
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
    print(f"{'mode':<15} {'units':>5} {'max |score diff|':>17} {'max |score|':>12}  prompt")
    for mode, m in MODES.items():
        for prompt, target in PROMPTS:
            ref = reference(args.cli, args.model, prompt, target, mode, 0.1, args.threads)
            e = explain(model, tokenizer, prompt, target, mode=m, progress=None)
            ids = [t.id for t in e.targets]
            assert ids == [t["id"] for t in ref["target_tokens"]], (prompt, ids, ref["target_tokens"])
            assert [[u.first_token, u.last_token] for u in e.units] == [u["tokens"] for u in ref["units"]], prompt
            diff = float(np.max(np.abs(e.scores - np.array([u["score"] for u in ref["units"]]))))
            worst = max(worst, diff)
            print(f"{mode:<15} {len(e.units):>5} {diff:>17.2e} {np.max(np.abs(e.scores)):>12.3f}  {prompt!r} -> {target!r}")
        prompt, target = PROMPTS[0]
        ones = explain(model, tokenizer, prompt, target, mode=m, factor=1.0, progress=None).scores
        ref_ones = [u["score"] for u in reference(args.cli, args.model, prompt, target, mode, 1.0, args.threads)["units"]]
        assert np.all(ones == 0) and all(s == 0 for s in ref_ones), (ones, ref_ones)
        print(f"{mode:<15} factor 1: all scores 0 on both sides")
    print(f"largest difference {worst:.2e} (tolerance {args.tolerance:g})")
    return 0 if worst <= args.tolerance else 1


if __name__ == "__main__":
    started = time.perf_counter()
    code = main()
    print(f"{time.perf_counter() - started:.1f} s")
    sys.exit(code)
