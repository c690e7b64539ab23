"""Wall time and peak memory of one explanation, side by side on one CPU and
thread count, same model and ~256-token raw prompt, word units, multiplicative:
  (a) the C++ reference engine (atman-explain),
  (b) the PyTorch adapter (atman.torch: batched, prefix reuse),
  (c) a plain PyTorch AtMan loop as a researcher would write it: one forward
      per unit, batched, no prefix reuse, no library.
Each runs in its own process; peak memory is that process's maximum RSS.

    python python/tools/speed.py --cli build/release/examples/atman-explain --model "$ATMAN_MODEL" --threads 2
"""

import argparse
import json
import resource
import subprocess
import sys
import time

PROMPT = " ".join(
    ["The committee met on a cold Tuesday morning to decide where the new library would be built."] * 1
    + ["Some members wanted the old railway station, close to the river and the market square,"
       " while others argued for the park behind the school, which children could reach on foot."] * 3
    + ["After three hours of debate, the mayor asked everyone to vote, and the result surprised"
       " nobody who had followed the local newspaper during the previous months."] * 2
    + ["In the end the new library was built next to the old railway station, and its first"
       " visitors were the children from the school, who came every afternoon. The library"
       " stands beside the"])
TARGET = " river"


def peer(model, tokenizer, prompt, target, batch=8):
    """(c): the loop a researcher would write around the same attention function."""
    import torch

    import atman.torch as at

    ids = tokenizer(prompt, return_offsets_mapping=True, add_special_tokens=False)
    target_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
    tokens = torch.tensor(ids["input_ids"] + target_ids[:-1])[None]
    # Word units: tokens grouped by the whitespace-separated word they start in.
    words, current, previous_end = [], [], 0
    for i, (start, end) in enumerate(ids["offset_mapping"]):
        if current and (start > previous_end or prompt[start:end][:1].isspace()):
            words.append(current)
            current = []
        current.append(i)
        previous_end = end
    words.append(current)
    n, T = len(ids["input_ids"]), tokens.shape[1]
    targets = torch.tensor(target_ids)

    def ce(logits):
        logp = torch.log_softmax(logits[:, n - 1:n - 1 + len(target_ids)].float(), dim=-1)
        return -logp.gather(-1, targets.expand(logits.shape[0], -1)[..., None])[..., 0].sum(-1)

    with torch.inference_mode():
        base = ce(model(input_ids=tokens).logits)
        scores = []
        for first in range(0, len(words), batch):
            group = words[first:first + batch]
            factors = torch.ones(len(group), T)
            for r, w in enumerate(group):
                factors[r, w] = 0.1
            at._coefficients = factors - 1
            with at._attention(model, at.ATTENTION_NAME):
                scores += (ce(model(input_ids=tokens.expand(len(group), -1)).logits) - base).tolist()
            at._coefficients = None
    return scores


def child(which, model_path, threads):
    import torch

    torch.set_num_threads(threads)
    from atman.torch import explain, load_gguf

    model, tokenizer = load_gguf(model_path)
    started = time.perf_counter()
    if which == "adapter":
        units = len(explain(model, tokenizer, PROMPT, TARGET, progress=None, sink="none").units)  # as (a) and (c)
    else:
        units = len(peer(model, tokenizer, PROMPT, TARGET))
    seconds = time.perf_counter() - started
    tokens = len(tokenizer(PROMPT, add_special_tokens=False)["input_ids"])
    print(json.dumps({"seconds": seconds, "units": units, "prompt_tokens": tokens,
                      "max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def run(command):
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cli", required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--child", choices=["adapter", "peer"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.model, args.threads)

    results = {}
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    ref = json.loads(run([args.cli, "--model", args.model, "--raw", "--sink", "none", "--prompt", PROMPT, "--target", TARGET,
                          "--format", "json", "-q", "--threads", str(args.threads)]))
    wall = time.perf_counter() - started
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # atman-explain's own figure excludes loading; RSS of the largest child so far.
    results["a_cpp"] = {"seconds": ref["stats"]["seconds"], "wall_with_load": wall, "units": len(ref["units"]),
                        "max_rss_mib": max(rss, before) / 1024}
    print("a_cpp", json.dumps(results["a_cpp"]), flush=True)  # each as it comes: runs are long
    for which in ("adapter", "peer"):
        line = run([sys.executable, __file__, "--cli", args.cli, "--model", args.model,
                    "--threads", str(args.threads), "--child", which]).strip().splitlines()[-1]
        results["b_adapter" if which == "adapter" else "c_peer"] = json.loads(line)
        print(which, line, flush=True)
    c = results["c_peer"]["seconds"]
    results["ratio_peer_over_adapter"] = c / results["b_adapter"]["seconds"]
    results["ratio_peer_over_cpp"] = c / results["a_cpp"]["seconds"]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
